"""gis_sync logic: pull new appeals from ГИС ЖКХ, push our lifecycle to it, repair drift.

No broker imports: handlers return OutboundRecords; the loops get a ``publish`` callable.

Push, per appeal strictly in order: every lifecycle event of a ГИС appeal becomes zero or more
queue items (``_id`` = a TransportGUID derived from the event id, so a redelivered event maps to
the same items and is stored once through the idempotency guard). The dispatcher sends only the
head item of each appeal, one importAnswer for many appeals, stores the MessageGUID, polls
getState, and moves to the next item only once ГИС answered for the head: done (GisActionMirrored)
or a business error (GisActionFailed, not retried). A crash anywhere re-sends the same TransportGUID,
which ГИС applies once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    Channel,
    CitizenWithdrew,
    Envelope,
    EventData,
    GisActionFailed,
    GisActionMirrored,
    Topics,
)
from zhkh_contracts.events import PartyKind
from zhkh_runtime.errors import TransientError
from zhkh_runtime.mongo import IdempotencyGuard
from zhkh_runtime.records import OutboundRecord

from . import metrics
from .mapping import (
    ANSWER,
    PartyMap,
    action_payload,
    gis_attachment,
    not_required_cause,
    raw_from_export,
    redirect_comment,
    rollover_comment,
    transport_guid,
    zeep_action,
)
from .repository import GisRepository
from .soap import GisClient, GisError, GisFault, StateResult

log = structlog.get_logger(__name__)

SOURCE = "/zhkh-appeals/gis_sync"
NO_OBJECTS = "INT002012"  # "Нет объектов для экспорта": an empty export, not a failure
GIS_TZ = ZoneInfo("Europe/Moscow")  # ГИС ЖКХ's dates are Moscow dates

Publish = Callable[[Iterable[OutboundRecord]], Awaitable[None]]


@dataclass(frozen=True)
class SyncConfig:
    default_answerer: str | None = None
    batch: int = 100
    max_attempts: int = 8
    backoff_s: float = 2.0
    backoff_max_s: float = 300.0
    stuck_after_s: float = 120.0
    poll_interval_s: float = 1.0
    pull_initial_days: int = 7
    pull_overlap_days: int = 1
    transient_codes: frozenset[str] = field(default_factory=frozenset)


class GisSyncService:
    def __init__(
        self, repo: GisRepository, guard: IdempotencyGuard, client: GisClient, topics: Topics, parties: PartyMap,
        config: SyncConfig, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        import asyncio

        self.repo, self.guard, self.client, self.topics, self.parties = repo, guard, client, topics, parties
        self.cfg, self.clock = config, clock
        self.sleep = sleep or asyncio.sleep

    # ---- lifecycle events -> queue ---------------------------------------------------------------

    async def on_registered(self, env: Envelope[AppealRegistered]) -> list[OutboundRecord]:
        a = env.data.appeal
        if a.channel is not Channel.GIS:
            return []
        try:
            guid = str(uuid.UUID(a.source_refs.get("gis_appeal_guid") or a.source_id))
        except ValueError:
            log.warning("gis_appeal_without_guid", appeal_id=str(a.appeal_id))  # not from ГИС's export: nothing to mirror
            return []

        async def work(session: Any) -> list[OutboundRecord]:
            await self.repo.create_link(
                {"_id": str(a.appeal_id), "appeal_guid": guid, "number": a.registration_number,
                 "gis_number": a.source_refs.get("gis_appeal_number"), "next_seq": 0,
                 "execution_end_date": a.source_refs.get("execution_end_date"), "performer": None,
                 "redirected_to": None, "confirmed": {}, "closed": False, "correlation_id": str(env.correlation_id)},
                session,
            )
            return []

        return await self.guard.run(str(env.id), work)

    async def on_assigned(self, env: Envelope[AppealAssigned]) -> list[OutboundRecord]:
        ev = env.data

        def plan(link: dict[str, Any]) -> list[tuple[str, dict[str, Any]] | GisError]:
            if ev.party_kind is PartyKind.FALLBACK_QUEUE:
                return []  # operators route it by hand: nothing to tell ГИС yet
            party = self.parties.get(ev.party_id)
            if party is None:
                return [GisError("unmapped_party", f"party {ev.party_id} has no ГИС answerer or organisation")]
            if party.answerer_guid:
                if party.answerer_guid == link.get("performer"):
                    return []
                link["performer"] = party.answerer_guid
                return [("Performer", {"answerer": party.answerer_guid})]
            link["redirected_to"] = party.org_guid
            comment = redirect_comment(
                registration_number=ev.registration_number, gis_number=link.get("gis_number"), party_id=ev.party_id,
                reason=ev.reason, redirected_on=ev.assigned_at.astimezone(GIS_TZ).date(),
            )
            return [("RedirectAppeal", {"receiver": party.org_guid, "comment": comment})]

        return await self._plan(env, str(ev.appeal_id), plan, "Performer")

    async def on_answered(self, env: Envelope[AppealAnswered]) -> list[OutboundRecord]:
        ev = env.data

        def plan(link: dict[str, Any]) -> list[tuple[str, dict[str, Any]] | GisError]:
            party = self.parties.get(ev.party_id)
            answerer = party.answerer_guid if party and party.answerer_guid else None
            link["answer_text"] = ev.text
            attachments = [gis_attachment(a) for a in ev.attachments]
            steps: list[tuple[str, dict[str, Any]] | GisError] = [
                (ANSWER, {"answerer": answerer, "text": ev.text, "attachments": [a for a in attachments if a]})
            ]
            missing = sum(1 for a in attachments if a is None)
            if missing:  # files not in ГИС's file store: uploading them is not implemented (docs/gis_sync.md)
                steps.append(GisError("attachment_not_in_gis", f"{missing} attachment(s) are not in ГИС ЖКХ's file store"
                                      " and were not sent with the answer"))
            return steps

        return await self._plan(env, str(ev.appeal_id), plan, ANSWER)

    async def on_extended(self, env: Envelope[AppealExtended]) -> list[OutboundRecord]:
        ev = env.data

        def plan(link: dict[str, Any]) -> list[tuple[str, dict[str, Any]] | GisError]:
            current = link.get("execution_end_date")
            base = date.fromisoformat(current) if current else ev.extended_at.astimezone(GIS_TZ).date()
            new = (base + timedelta(days=ev.days)).isoformat()
            link["execution_end_date"] = new
            comment = rollover_comment(days=ev.days, new_date=date.fromisoformat(new), reason=ev.reason)
            return [("RollOverAppeal", {"execution_date": new, "comment": comment})]

        return await self._plan(env, str(ev.appeal_id), plan, "RollOverAppeal")

    async def on_status(self, env: Envelope[AppealStatusChanged]) -> list[OutboundRecord]:
        ev = env.data
        if ev.to_status not in (AppealStatus.CLOSED, AppealStatus.WITHDRAWN):
            return []

        def plan(link: dict[str, Any]) -> list[tuple[str, dict[str, Any]] | GisError]:
            if ev.to_status is AppealStatus.CLOSED:
                return [("Executed", {})]
            if link.get("withdrawn_in_gis"):
                return []  # withdrawn in ГИС itself: nothing to tell it
            cause = not_required_cause(
                registration_number=ev.registration_number, withdrawn_on=ev.changed_at.astimezone(GIS_TZ).date()
            )
            return [("AnswerIsNotRequired", {"cause": cause})]

        return await self._plan(env, str(ev.appeal_id), plan, "status")

    async def _plan(
        self, env: Envelope[Any], appeal_id: str,
        plan: Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]] | GisError]], label: str,
    ) -> list[OutboundRecord]:
        if await self.repo.link(appeal_id) is None:
            return []  # not an appeal from ГИС ЖКХ

        async def work(session: Any) -> list[OutboundRecord]:
            link = await self.repo.link(appeal_id, session)
            if link is None:
                return []
            before = dict(link)
            if link.get("redirected_to") and label != "Performer":
                log.info("gis_skip_redirected", appeal_id=appeal_id, action=label)
                return []
            items: list[dict[str, Any]] = []
            records: list[OutboundRecord] = []
            for n, step in enumerate(plan(link)):
                tg = transport_guid(env.id, n)
                if isinstance(step, GisError):
                    records.append(self._failed(link, label, tg, step, 0, env.correlation_id))
                    continue
                kind, kw = step
                answerer = kw.pop("answerer", None) or before.get("performer") or link.get("performer") or self.cfg.default_answerer
                if not answerer:
                    records.append(self._failed(
                        link, kind, tg, GisError("no_answerer", "no ГИС performer is known for this appeal"), 0, env.correlation_id
                    ))
                    continue
                if kind == ANSWER:
                    kw["answer_transport_guid"] = transport_guid(env.id, n, "answer")
                items.append(self._item(link, tg, kind, action_payload(kind, answerer, **kw), env.id))
            await self.repo.enqueue(link, items, session)
            changes = {k: link.get(k) for k in ("performer", "redirected_to", "execution_end_date", "answer_text")
                       if link.get(k) != before.get(k)}
            await self.repo.update_link(appeal_id, changes, session)
            if items:
                metrics.QUEUED.inc(len(items))
            return records

        return await self.guard.run(str(env.id), work)

    def _item(self, link: dict[str, Any], tg: str, kind: str, payload: dict[str, Any], cause: Any, repair: bool = False) -> dict[str, Any]:
        now = self.clock()
        return {
            "_id": tg, "appeal_id": link["_id"], "appeal_guid": link["appeal_guid"], "number": link["number"],
            "kind": kind, "payload": payload, "state": "pending", "attempts": 0, "next_at": now, "created_at": now,
            "message_guid": None, "cause_event_id": str(cause), "repair": repair,
            "correlation_id": link.get("correlation_id"),
        }

    # ---- records ----------------------------------------------------------------------------------

    def _record(self, data: EventData, appeal_id: str, event_id: uuid.UUID, correlation: Any) -> OutboundRecord:
        env = Envelope.new(
            data, source=SOURCE, appeal_id=appeal_id, event_id=event_id,
            correlation_id=uuid.UUID(str(correlation)) if correlation else None,
        )
        return OutboundRecord.of(self.topics.lifecycle, env)

    def _failed(self, link: dict[str, Any], action: str, tg: str, err: GisError, attempts: int, correlation: Any) -> OutboundRecord:
        metrics.FAILED.labels(err.code).inc()
        log.warning("gis_action_failed", appeal_id=link["_id"], action=action, code=err.code, transport_guid=tg)
        return self._record(
            GisActionFailed(
                appeal_id=uuid.UUID(link["_id"]), registration_number=link["number"],
                gis_appeal_guid=uuid.UUID(link["appeal_guid"]), action=action, transport_guid=uuid.UUID(tg),
                code=err.code, description=err.description[:2000], attempts=attempts, failed_at=self.clock(),
            ),
            link["_id"], uuid.uuid5(uuid.UUID(tg), "failed"), correlation,
        )

    # ---- push: the dispatcher ---------------------------------------------------------------------

    async def push(self, publish: Publish) -> int:
        """One dispatcher round. Returns how many items reached a final state or were sent."""
        heads: dict[str, dict[str, Any]] = {}
        for item in await self.repo.active_items(limit=self.cfg.batch * 20):
            heads.setdefault(item["appeal_id"], item)
        progressed = 0
        by_message: dict[str, list[dict[str, Any]]] = {}
        for item in heads.values():
            if item["state"] == "submitted":
                by_message.setdefault(item["message_guid"], []).append(item)
        for message_guid, items in by_message.items():
            progressed += await self._guarded(self._poll(message_guid, items, publish), message_guid=message_guid)
        now = self.clock()
        ready = [i for i in heads.values() if i["state"] == "pending" and i["next_at"] <= now]
        solo = [i for i in ready if i.get("solo")]
        for batch in [[i] for i in solo] + _chunks([i for i in ready if not i.get("solo")], self.cfg.batch):
            progressed += await self._guarded(self._submit(batch, publish), items=len(batch))
        metrics.QUEUE_DEPTH.set(len(heads))
        return progressed

    @staticmethod
    async def _guarded(work: Awaitable[int], **ids: Any) -> int:
        """One message's trouble (MongoDB, Kafka) must not stop the round for the other appeals;
        its items stay as they are and the next round takes them up again."""
        try:
            return await work
        except Exception as exc:  # noqa: BLE001
            log.warning("gis_push_step_failed", error=f"{exc.__class__.__name__}: {exc}"[:300], **ids)
            return 0

    async def _submit(self, items: list[dict[str, Any]], publish: Publish) -> int:
        answer, appeal = [], []
        for item in items:
            section, action = zeep_action(item)
            (answer if section == "answer" else appeal).append(action)
        ids = [i["_id"] for i in items]
        try:
            message_guid = await self.client.submit_import(answer_actions=answer, appeal_actions=appeal)
        except TransientError as exc:
            metrics.REQUESTS.labels("importAnswer", "transient").inc()
            log.warning("gis_submit_transient", items=len(items), error=str(exc))
            return await self._backoff(items, GisError("transient_exhausted", str(exc)), publish)
        except GisFault as exc:
            metrics.REQUESTS.labels("importAnswer", "fault").inc()
            if len(items) > 1:  # find the culprit: send each alone from now on
                await self.repo.set_items(ids, {"solo": True}, expect_state="pending")
                return 0
            err = GisError(f"gis_fault:{exc.code}", exc.detail)
            await self._finish_failed(items[0], err, publish)
            return 1
        metrics.REQUESTS.labels("importAnswer", "ok").inc()
        await self.repo.set_items(
            ids, {"state": "submitted", "message_guid": message_guid, "submitted_at": self.clock()}, expect_state="pending"
        )
        log.info("gis_submitted", message_guid=message_guid, items=len(items))
        return len(items)

    async def _backoff(self, items: Sequence[dict[str, Any]], err: GisError, publish: Publish) -> int:
        finished = 0
        for item in items:
            attempts = int(item.get("attempts", 0)) + 1
            if attempts >= self.cfg.max_attempts:
                await self._finish_failed({**item, "attempts": attempts}, err, publish)
                finished += 1
                continue
            delay = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** (attempts - 1))
            await self.repo.set_item(item["_id"], {
                "state": "pending", "attempts": attempts, "message_guid": None,
                "next_at": self.clock() + timedelta(seconds=delay), "last_error": err.code,
            })
        return finished

    async def _poll(self, message_guid: str, items: list[dict[str, Any]], publish: Publish) -> int:
        try:
            state = await self.client.get_state(message_guid)
        except TransientError as exc:
            metrics.REQUESTS.labels("getState", "transient").inc()
            log.warning("gis_poll_transient", message_guid=message_guid, error=str(exc))
            return 0
        except GisFault as exc:  # getState itself refused: send the items again (same TransportGUIDs)
            metrics.REQUESTS.labels("getState", "fault").inc()
            return await self._backoff(items, GisError(f"gis_fault:{exc.code}", exc.detail), publish)
        metrics.REQUESTS.labels("getState", "ok").inc()
        if not state.done:
            oldest = min(i["submitted_at"] for i in items)
            if (self.clock() - oldest).total_seconds() > self.cfg.stuck_after_s:
                log.warning("gis_message_stuck", message_guid=message_guid, state=state.state)
                return await self._backoff(items, GisError("transient_exhausted", f"RequestState {state.state} too long"), publish)
            return 0
        return await self._apply_result(state, items, publish)

    async def _apply_result(self, state: StateResult, items: list[dict[str, Any]], publish: Publish) -> int:
        if state.error is not None:
            if state.error.code in self.cfg.transient_codes or state.error.code.endswith("NOMSG"):
                return await self._backoff(items, state.error, publish)
            for item in items:
                await self._finish_failed(item, state.error, publish)
            return len(items)
        results = {r.transport_guid: r for r in state.import_results}
        finished = 0
        for item in items:
            result = results.get(item["_id"])
            if result is None:
                await self._backoff([item], GisError("no_result", "ГИС returned no result for this TransportGUID"), publish)
                continue
            if result.ok:
                await self._finish_done(item, state.message_guid, result.guid, publish)
            else:
                await self._finish_failed(item, result.errors[0], publish)
            finished += 1
        return finished

    async def _finish_done(self, item: dict[str, Any], message_guid: str, guid: str | None, publish: Publish) -> None:
        now = self.clock()
        link = {"_id": item["appeal_id"], "number": item["number"], "appeal_guid": item["appeal_guid"]}
        record = self._record(
            GisActionMirrored(
                appeal_id=uuid.UUID(item["appeal_id"]), registration_number=item["number"],
                gis_appeal_guid=uuid.UUID(item["appeal_guid"]), action=item["kind"], transport_guid=uuid.UUID(item["_id"]),
                message_guid=uuid.UUID(message_guid), gis_object_guid=uuid.UUID(guid) if guid else None,
                repair=bool(item.get("repair")), mirrored_at=now,
            ),
            link["_id"], uuid.uuid5(uuid.UUID(item["_id"]), "mirrored"), item.get("correlation_id"),
        )
        await publish([record])  # before the state change: a crash here re-publishes the same event id
        await self.repo.set_item(item["_id"], {"state": "done", "done_at": now, "gis_guid": guid})
        await self.repo.update_link(item["appeal_id"], self._confirmation(item))
        metrics.MIRRORED.labels(item["kind"]).inc()
        log.info("gis_mirrored", appeal_id=item["appeal_id"], action=item["kind"], transport_guid=item["_id"])

    @staticmethod
    def _confirmation(item: dict[str, Any]) -> dict[str, Any]:
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

    async def _finish_failed(self, item: dict[str, Any], err: GisError, publish: Publish) -> None:
        link = {"_id": item["appeal_id"], "number": item["number"], "appeal_guid": item["appeal_guid"]}
        record = self._failed(link, item["kind"], item["_id"], err, int(item.get("attempts", 0)) + 1, item.get("correlation_id"))
        await publish([record])
        await self.repo.set_item(item["_id"], {"state": "failed", "error_code": err.code, "failed_at": self.clock()})

    # ---- pull -------------------------------------------------------------------------------------

    async def _await_state(self, message_guid: str) -> StateResult:
        """Poll getState until RequestState 3, at most ``stuck_after_s``."""
        started = self.clock()
        while True:
            state = await self.client.get_state(message_guid)
            if state.done:
                return state
            if (self.clock() - started).total_seconds() > self.cfg.stuck_after_s:
                raise TransientError(f"export {message_guid} still in RequestState {state.state}")
            await self.sleep(self.cfg.poll_interval_s)

    async def _export(self, cursor_name: str, submit: Callable[[], Awaitable[str]]) -> list[dict[str, Any]]:
        """Submit (or resume) one export and wait for its result; the MessageGUID is stored first,
        so a restart polls the same request instead of asking again."""
        cur = await self.repo.cursor_doc(cursor_name)
        message_guid = cur.get("message_guid")
        if not message_guid:
            message_guid = await submit()
            await self.repo.save_cursor(cursor_name, {"message_guid": message_guid}, self.clock())
        try:
            state = await self._await_state(message_guid)
        except TransientError:
            await self.repo.save_cursor(cursor_name, {"message_guid": None}, self.clock())  # ask again next round
            raise
        await self.repo.save_cursor(cursor_name, {"message_guid": None}, self.clock())
        if state.error is not None:
            if state.error.code == NO_OBJECTS:
                return []
            raise GisFault(state.error.code, state.error.description)
        return list(state.appeals)

    async def pull(self, publish: Publish) -> int:
        """Export appeals created since the high-water mark (minus an overlap) and hand each new
        AppealGUID to intake once. Returns how many were published."""
        cur = await self.repo.cursor_doc("pull")
        today = self.clock().astimezone(GIS_TZ).date()
        hwm = date.fromisoformat(cur["hwm"]) if cur.get("hwm") else today - timedelta(days=self.cfg.pull_initial_days)
        start = hwm - timedelta(days=self.cfg.pull_overlap_days)
        appeals = await self._export("pull_export", lambda: self.client.submit_export(start=start, end=today))
        metrics.REQUESTS.labels("exportAppeal", "ok").inc()
        published = 0
        newest = hwm
        for appeal in appeals:
            guid = str(appeal["AppealGUID"])
            created = appeal.get("AppealCreateDate")
            if isinstance(created, date) and created > newest:
                newest = created
            if await self.repo.is_pulled(guid):
                continue
            status = appeal.get("AppealStatus")
            if status in ("Withdrawn", "Executed") or appeal.get("Redirected") or appeal.get("RedirectedIsNotHCS"):
                await self.repo.mark_pulled(guid, {"skipped": status or "redirected", "at": self.clock()})
                continue
            raw = raw_from_export(appeal, received_at=self.clock())
            env = Envelope.new(
                raw, source="/zhkh-appeals/gis_sync/pull", appeal_id=f"{Channel.GIS.value}:{guid}",
                event_id=uuid.uuid5(uuid.UUID(guid), "pulled"),
            )
            await publish([OutboundRecord.of(self.topics.raw(Channel.GIS), env)])
            await self.repo.mark_pulled(guid, {"number": str(appeal["AppealNumber"]), "at": self.clock()})
            metrics.PULLED.inc()
            published += 1
            log.info("gis_pulled", gis_appeal_guid=guid, event_id=str(env.id))
        await self.repo.save_cursor("pull", {"hwm": newest.isoformat()}, self.clock())
        return published

    # ---- reconciliation ---------------------------------------------------------------------------

    async def reconcile(self, publish: Publish, limit: int = 1000) -> dict[str, int]:
        """Compare what ГИС confirmed with what exportAppeal shows now; repair drift by sending the
        step again under a new TransportGUID, and take withdrawals made in ГИС back to the router."""
        links = await self.repo.open_links(limit)
        busy = await self.repo.has_active([ln["_id"] for ln in links])
        links = [ln for ln in links if ln["_id"] not in busy]
        counts = {"checked": 0, "repaired": 0, "withdrawn": 0}
        if not links:
            return counts
        by_guid = {ln["appeal_guid"]: ln for ln in links}
        appeals = await self._export(
            "reconcile_export", lambda: self.client.submit_export(appeal_guids=list(by_guid))
        )
        for appeal in appeals:
            link = by_guid.get(str(appeal["AppealGUID"]))
            if link is None:
                continue
            counts["checked"] += 1
            if appeal.get("AppealStatus") == "Withdrawn":
                # Mark first (so the withdrawal's status change is not mirrored back as
                # AnswerIsNotRequired), publish, then close: a crash in between publishes again
                # next round, under the same event id.
                await self.repo.update_link(link["_id"], {"withdrawn_in_gis": True})
                await publish([self._withdrawn(link)])
                await self.repo.update_link(link["_id"], {"closed": True})
                counts["withdrawn"] += 1
                continue
            repairs = self.drift(link, appeal)
            if repairs:
                await self._enqueue_repairs(link, repairs)
                counts["repaired"] += len(repairs)
        metrics.DRIFT_REPAIRED.inc(counts["repaired"])
        return counts

    @staticmethod
    def drift(link: dict[str, Any], appeal: dict[str, Any]) -> list[str]:
        """Which confirmed steps exportAppeal no longer shows."""
        confirmed = link.get("confirmed") or {}
        out: list[str] = []
        if confirmed.get("performer") and str(appeal.get("AnswererGUID") or "") != confirmed["performer"]:
            out.append("Performer")
        if confirmed.get("answer_sent"):
            sent = any(
                (h.get("Answer") or {}).get("AnswerIsSent") for h in appeal.get("AppealHistory") or ()
            )
            if not sent:
                out.append(ANSWER)
        if confirmed.get("executed") and appeal.get("AppealStatus") != "Executed":
            out.append("Executed")
        return out

    async def _enqueue_repairs(self, link: dict[str, Any], kinds: list[str]) -> None:
        confirmed = link.get("confirmed") or {}
        async with self.guard.client.start_session() as session, await session.start_transaction():
            fresh = await self.repo.link(link["_id"], session)
            if fresh is None:
                return
            repair_no = int(fresh.get("repairs", 0)) + 1
            cause = f"repair:{fresh['_id']}:{repair_no}"
            items = []
            for n, kind in enumerate(kinds):
                tg = transport_guid(cause, n)
                answerer = confirmed.get("performer") or fresh.get("performer") or self.cfg.default_answerer
                if kind == ANSWER:
                    payload = action_payload(kind, confirmed.get("answerer") or answerer,
                                             text=confirmed["answer_text"], answer_transport_guid=transport_guid(cause, n, "answer"))
                else:
                    payload = action_payload(kind, answerer)
                items.append(self._item(fresh, tg, kind, payload, cause, repair=True))
            await self.repo.enqueue(fresh, items, session)
            await self.repo.update_link(fresh["_id"], {"repairs": repair_no}, session)
        log.warning("gis_drift_repair", appeal_id=link["_id"], actions=kinds)

    def _withdrawn(self, link: dict[str, Any]) -> OutboundRecord:
        env = Envelope.new(
            CitizenWithdrew(appeal_id=uuid.UUID(link["_id"]), actor="gis"),
            source=SOURCE, appeal_id=link["_id"], event_id=uuid.uuid5(uuid.UUID(link["appeal_guid"]), "withdrawn"),
            correlation_id=uuid.UUID(link["correlation_id"]) if link.get("correlation_id") else None,
        )
        return OutboundRecord.of(self.topics.actions, env)


def _chunks(items: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
