"""Push: the dispatcher loop that sends the action queue to ГИС ЖКХ, strictly in order per appeal.

Only the head item of each appeal is sent, many appeals in one importAnswer; the MessageGUID is
stored, getState is polled, and the next item goes only once ГИС answered for the head: done
(GisActionMirrored) or a business error (GisActionFailed, not retried). A crash anywhere re-sends
the same TransportGUID, which ГИС applies once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import Any

import structlog

from zhkh_runtime.errors import TransientError

from . import metrics
from .mapping import ANSWER, zeep_action
from .outcomes import Clock, SyncConfig, failed, mirrored, utc_now
from .ports import Doc, GisApi, GisError, GisFault, GisStore, Publish, StateResult

log = structlog.get_logger(__name__)


class Dispatcher:
    def __init__(self, store: GisStore, client: GisApi, publish: Publish, config: SyncConfig, clock: Clock = utc_now) -> None:
        self.store, self.client, self.publish, self.cfg, self.clock = store, client, publish, config, clock

    async def push(self) -> int:
        """One dispatcher round. Returns how many items reached a final state or were sent."""
        heads: dict[str, Doc] = {}
        for item in await self.store.active_items(limit=self.cfg.batch * 20):
            heads.setdefault(item["appeal_id"], item)
        progressed = 0
        by_message: dict[str, list[Doc]] = {}
        for item in heads.values():
            if item["state"] == "submitted":
                by_message.setdefault(item["message_guid"], []).append(item)
        for message_guid, items in by_message.items():
            progressed += await self._guarded(self._poll(message_guid, items), message_guid=message_guid)
        now = self.clock()
        ready = [i for i in heads.values() if i["state"] == "pending" and i["next_at"] <= now]
        solo = [i for i in ready if i.get("solo")]
        for batch in [[i] for i in solo] + _chunks([i for i in ready if not i.get("solo")], self.cfg.batch):
            progressed += await self._guarded(self._submit(batch), items=len(batch))
        metrics.QUEUE_DEPTH.set(len(heads))
        return progressed

    @staticmethod
    async def _guarded(work: Awaitable[int], **ids: Any) -> int:
        """One message's trouble (MongoDB, Kafka) must not stop the round for the other appeals;
        its items stay as they are and the next round takes them up again."""
        try:
            return await work
        except Exception as exc:  # noqa: BLE001
            log.warning("gis_push_step_failed", error_type=type(exc).__name__, **ids)
            return 0

    async def _submit(self, items: list[Doc]) -> int:
        answer, appeal = [], []
        for item in items:
            section, action = zeep_action(item)
            (answer if section == "answer" else appeal).append(action)
        ids = [i["_id"] for i in items]
        try:
            message_guid = await self.client.submit_import(answer_actions=answer, appeal_actions=appeal)
        except TransientError as exc:
            metrics.REQUESTS.labels("importAnswer", "transient").inc()
            log.warning("gis_submit_transient", items=len(items), error_type=type(exc).__name__)
            return await self._backoff(items, GisError("transient_exhausted", str(exc)))
        except GisFault as exc:
            metrics.REQUESTS.labels("importAnswer", "fault").inc()
            if len(items) > 1:  # find the culprit: send each alone from now on
                await self.store.set_items(ids, {"solo": True}, expect_state="pending")
                return 0
            await self._finish_failed(items[0], GisError(f"gis_fault:{exc.code}", exc.detail))
            return 1
        metrics.REQUESTS.labels("importAnswer", "ok").inc()
        await self.store.set_items(
            ids, {"state": "submitted", "message_guid": message_guid, "submitted_at": self.clock()}, expect_state="pending"
        )
        log.info("gis_submitted", message_guid=message_guid, items=len(items))
        return len(items)

    async def _backoff(self, items: Sequence[Doc], err: GisError) -> int:
        finished = 0
        for item in items:
            attempts = int(item.get("attempts", 0)) + 1
            if attempts >= self.cfg.max_attempts:
                await self._finish_failed({**item, "attempts": attempts}, err)
                finished += 1
                continue
            delay = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** (attempts - 1))
            await self.store.set_item(item["_id"], {
                "state": "pending", "attempts": attempts, "message_guid": None,
                "next_at": self.clock() + timedelta(seconds=delay), "last_error": err.code,
            })
        return finished

    async def _poll(self, message_guid: str, items: list[Doc]) -> int:
        try:
            state = await self.client.get_state(message_guid)
        except TransientError as exc:
            metrics.REQUESTS.labels("getState", "transient").inc()
            log.warning("gis_poll_transient", message_guid=message_guid, error_type=type(exc).__name__)
            return 0
        except GisFault as exc:  # getState itself refused: send the items again (same TransportGUIDs)
            metrics.REQUESTS.labels("getState", "fault").inc()
            return await self._backoff(items, GisError(f"gis_fault:{exc.code}", exc.detail))
        metrics.REQUESTS.labels("getState", "ok").inc()
        if not state.done:
            oldest = min(i["submitted_at"] for i in items)
            if (self.clock() - oldest).total_seconds() > self.cfg.stuck_after_s:
                log.warning("gis_message_stuck", message_guid=message_guid, state=state.state)
                return await self._backoff(items, GisError("transient_exhausted", f"RequestState {state.state} too long"))
            return 0
        return await self._apply_result(state, items)

    async def _apply_result(self, state: StateResult, items: list[Doc]) -> int:
        if state.error is not None:
            if state.error.code in self.cfg.transient_codes or state.error.code.endswith("NOMSG"):
                return await self._backoff(items, state.error)
            for item in items:
                await self._finish_failed(item, state.error)
            return len(items)
        results = {r.transport_guid: r for r in state.import_results}
        finished = 0
        for item in items:
            result = results.get(item["_id"])
            if result is None:
                await self._backoff([item], GisError("no_result", "ГИС returned no result for this TransportGUID"))
                continue
            if result.ok:
                await self._finish_done(item, state.message_guid, result.guid)
            else:
                await self._finish_failed(item, result.errors[0])
            finished += 1
        return finished

    async def _finish_done(self, item: Doc, message_guid: str, guid: str | None) -> None:
        now = self.clock()
        await self.publish([mirrored(item, message_guid, guid, now)])  # first: a crash here re-publishes the same id
        await self.store.set_item(item["_id"], {"state": "done", "done_at": now, "gis_guid": guid})
        await self.store.update_link(item["appeal_id"], confirmation(item))
        metrics.MIRRORED.labels(item["kind"]).inc()
        log.info("gis_mirrored", appeal_id=item["appeal_id"], action=item["kind"], transport_guid=item["_id"])

    async def _finish_failed(self, item: Doc, err: GisError) -> None:
        link = {"_id": item["appeal_id"], "number": item["number"], "appeal_guid": item["appeal_guid"]}
        now = self.clock()
        await self.publish([failed(link, item["kind"], item["_id"], err, int(item.get("attempts", 0)) + 1, now,
                                   item.get("correlation_id"))])
        await self.store.set_item(item["_id"], {"state": "failed", "error_code": err.code, "failed_at": now})


def confirmation(item: Doc) -> Doc:
    """What ГИС has confirmed once this item is done (reconciliation compares it with exports)."""
    p = item["payload"]
    kind = item["kind"]
    if kind == "Performer":
        return {"confirmed.performer": p["Performer"]["AnswererGUID"]}
    if kind == ANSWER:
        return {"confirmed.answer_text": p["Answer"][0]["LoadAnswer"]["AnswerText"],
                "confirmed.answerer": p["Answer"][0]["AnswererGUID"], "confirmed.answer_sent": True}
    if kind == "Executed":
        return {"confirmed.executed": True, "closed": True}
    if kind == "RollOverAppeal":
        return {"confirmed.execution_end_date": p["RollOverAppeal"]["ExecutionDate"]}
    if kind in ("RedirectAppeal", "AnswerIsNotRequired"):
        return {"closed": True}
    return {}


def _chunks(items: list[Doc], size: int) -> list[list[Doc]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
