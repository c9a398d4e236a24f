"""Notifier logic: plan deadlines from lifecycle events, send due alerts. No broker imports here.

Deadlines and alerts live in MongoDB (they survive restarts). A scan sends every pending alert whose
time has come, then marks it sent. The alert's events have ids derived from the alert itself, so a
crash between publishing and marking republishes the *same* events: consumers dedupe them by id
(the router's guard does), and no alert is ever sent before its time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import structlog

from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    AssignmentCause,
    Category,
    DeadlineAlert,
    DeadlineExpired,
    DeadlinePlanned,
    Envelope,
    PartyKind,
)
from zhkh_runtime.errors import PermanentError, is_transient, reason_of, safe_detail
from zhkh_runtime.mongo import IdempotencyGuard
from zhkh_runtime.records import OutboundRecord, failure_headers

from .deadlines import DEFAULT_TZ, Deadline, DeadlineTable, Regime, RegimeKind
from .delivery import citizen_target, not_before
from .planning import alert_points
from .templates import citizen_message, party_alert

log = structlog.get_logger(__name__)
SOURCE = "/zhkh-appeals/notifier"
ALERT_NS = uuid.UUID("8d1f4a8e-0c7b-4d0c-9a55-3c7f2b1e6a10")
STOPPING = {AppealStatus.ANSWERED, AppealStatus.CLOSED, AppealStatus.WITHDRAWN}
GIS_REGIME = Regime("gis_execution_end_date", RegimeKind.CALENDAR_DAYS, 0)
Publish = Callable[[list[OutboundRecord]], Awaitable[None]]


@dataclass(frozen=True)
class DeliveryConfig:
    citizen_webhooks: dict[str, str] = field(default_factory=dict)
    party_alerts_webhook: str | None = None
    quiet_hours: tuple[time, time] | None = None
    default_timezone: str = DEFAULT_TZ
    attempts: int = 5
    backoff_s: float = 30.0
    dlq_topic: str = "zhkh.notifier.dlq"
    email_enabled: bool = True
    sms_enabled: bool = True


class NotifierService:
    def __init__(
        self,
        repo: Any,  # NotifierRepository
        guard: IdempotencyGuard,
        lifecycle_topic: str,
        actions_topic: str,
        table: DeadlineTable,
        thresholds: list[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        delivery: DeliveryConfig | None = None,
    ) -> None:
        self.repo, self.guard, self.table, self.thresholds, self.clock = repo, guard, table, thresholds, clock
        self.lifecycle_topic, self.actions_topic = lifecycle_topic, actions_topic
        self.delivery = delivery or DeliveryConfig()

    # ---- planning -------------------------------------------------------------------------------

    async def on_registered(self, env: Envelope[AppealRegistered]) -> list[OutboundRecord]:
        a = env.data.appeal
        end = a.source_refs.get("execution_end_date")  # ГИС ЖКХ's ExecutionEndDate, set by gis_sync

        async def work(session: Any) -> list[OutboundRecord]:
            await self.repo.save_facts(
                {"_id": str(a.appeal_id), "number": a.registration_number, "registered_at": a.registered_at,
                 "category": a.category.value, "emergency": a.emergency, "emergency_rule": a.emergency_rule,
                 "execution_end_date": end, "channel": a.channel.value, "email": a.applicant.email,
                 "phone": a.applicant.phone, "notify": a.consent.notifications, "correlation_id": str(env.correlation_id)},
                session,
            )
            if a.consent.notifications:
                await self._citizen(env, "registered", str(a.appeal_id), session, number=a.registration_number)
            return []

        return await self.guard.run(str(env.id), work)

    async def on_assigned(self, env: Envelope[AppealAssigned]) -> list[OutboundRecord]:
        d = env.data

        async def work(session: Any) -> list[OutboundRecord]:
            facts = await self.repo.facts(d.appeal_id, session)
            if facts is None:
                raise PermanentError("unknown_appeal", "assigned before registered")
            tz = d.party_timezone or DEFAULT_TZ
            first = d.cause in (AssignmentCause.RULE, AssignmentCause.FALLBACK) and d.previous_party_id is None
            start = facts["registered_at"] if first else d.assigned_at
            if facts.get("execution_end_date"):
                regime = GIS_REGIME
                end = datetime.fromisoformat(facts["execution_end_date"])
                due_at = end.astimezone(UTC) if end.tzinfo else end.replace(tzinfo=UTC)
            else:
                regime = self.table.regime_for(PartyKind(d.party_kind), Category(facts["category"]),
                                               facts["emergency"], facts.get("emergency_rule"))
                due_at = self.table.due(regime, start, tz).due_at
            return await self._plan(d.appeal_id, facts["number"], d.party_id, regime, due_at, start, tz, "assigned", env,
                                    session, d.supervisor_party_id)

        return await self.guard.run(str(env.id), work)

    async def on_extended(self, env: Envelope[AppealExtended]) -> list[OutboundRecord]:
        x = env.data

        async def work(session: Any) -> list[OutboundRecord]:
            cur = await self.repo.deadline(x.appeal_id, session)
            if cur is None or cur["status"] != "active":
                return []
            regime = self.table.regimes.get(cur["regime"], GIS_REGIME)
            old = Deadline(cur["regime"], cur["due_at"], cur["due_at"])
            new = self.table.extended(old, x.days, cur["tz"]) if regime is not GIS_REGIME else old
            # 59-ФЗ: the citizen is told about an extension
            await self._citizen(env, "extended", str(x.appeal_id), session, number=cur["number"], days=x.days, reason=x.reason)
            return await self._plan(x.appeal_id, cur["number"], cur["party_id"], regime, new.due_at, cur["start_at"],
                                    cur["tz"], "extended", env, session, cur.get("supervisor_id"))

        return await self.guard.run(str(env.id), work)

    async def on_answered(self, env: Envelope[AppealAnswered]) -> list[OutboundRecord]:
        """The answer goes to the citizen (whatever their notification consent: it is the answer)."""
        a = env.data

        async def work(session: Any) -> list[OutboundRecord]:
            await self._citizen(env, "answered", str(a.appeal_id), session, number=a.registration_number, text=a.text)
            return []

        return await self.guard.run(str(env.id), work)

    async def _citizen(self, env: Envelope[Any], kind: str, appeal_id: str, session: Any, **fields: Any) -> None:
        facts = await self.repo.facts(uuid.UUID(appeal_id), session)
        if facts is None:
            return
        target = citizen_target(facts["channel"], facts.get("email"), facts.get("phone"), self.delivery.citizen_webhooks,
                                self.delivery.email_enabled, self.delivery.sms_enabled)
        if target is None:
            log.info("citizen_unreachable", kind=kind)
            return
        subject, body = citizen_message(kind, **fields)
        cur = await self.repo.deadline(uuid.UUID(appeal_id), session)
        tz = cur["tz"] if cur else self.delivery.default_timezone
        now = self.clock()
        await self.repo.add_delivery(
            {"_id": f"{env.id}:{kind}", "kind": kind, "appeal_id": appeal_id, "number": fields.get("number", ""),
             "target_kind": target.kind, "target": target.address, "subject": subject, "body": body,
             "state": "pending", "attempts": 0, "created_at": now,
             "not_before": not_before(now, tz, self.delivery.quiet_hours, bool(facts.get("emergency")))},
            session,
        )

    async def on_status(self, env: Envelope[AppealStatusChanged]) -> list[OutboundRecord]:
        s = env.data

        async def work(session: Any) -> list[OutboundRecord]:
            if s.to_status in STOPPING:
                await self.repo.stop(s.appeal_id, session)
            elif s.to_status is AppealStatus.REOPENED:
                cur = await self.repo.deadline(s.appeal_id, session)
                if cur is not None:
                    regime = self.table.regimes.get(cur["regime"])
                    if regime is not None:
                        now = self.clock()
                        due = self.table.due(regime, now, cur["tz"])
                        return await self._plan(s.appeal_id, cur["number"], cur["party_id"], regime, due.due_at, now,
                                                cur["tz"], "reopened", env, session, cur.get("supervisor_id"))
            return []

        return await self.guard.run(str(env.id), work)

    async def _plan(self, appeal_id: uuid.UUID, number: str, party_id: str, regime: Regime, due_at: datetime,
                    start: datetime, tz: str, reason: str, env: Envelope[Any], session: Any,
                    supervisor_id: str | None = None) -> list[OutboundRecord]:
        generation = await self.repo.next_generation(appeal_id, session)
        points = alert_points(start, due_at, regime.kind, tz, self.thresholds, self.table.calendar)
        await self.repo.replan(
            {"_id": str(appeal_id), "number": number, "party_id": party_id, "regime": regime.name, "due_at": due_at,
             "start_at": start, "tz": tz, "generation": generation, "status": "active",
             "correlation_id": str(env.correlation_id), "supervisor_id": supervisor_id},
            [{"_id": f"{appeal_id}:{generation}:{name}", "appeal_id": str(appeal_id), "generation": generation,
              "threshold": name, "alert_at": at, "due_at": due_at, "party_id": party_id, "number": number,
              "supervisor_id": supervisor_id,
              "correlation_id": str(env.correlation_id), "state": "pending"} for name, at in points],
            session,
        )
        if not self.table.calendar.verified(start.year) or not self.table.calendar.verified(due_at.year):
            log.warning("calendar_year_unverified", years=sorted({start.year, due_at.year}))
        planned = DeadlinePlanned(appeal_id=appeal_id, registration_number=number, party_id=party_id,
                                  regime=regime.name, due_at=due_at, party_timezone=tz, generation=generation, reason=reason)
        return [OutboundRecord.of(self.lifecycle_topic, Envelope.new(
            planned, source=SOURCE, appeal_id=str(appeal_id), correlation_id=env.correlation_id, occurred_at=self.clock()))]

    # ---- sending ------------------------------------------------------------------------------

    def alert_records(self, a: dict[str, Any]) -> list[OutboundRecord]:
        """The records of one alert, with ids derived from the alert: resending repeats them exactly."""
        aid, cid = a["appeal_id"], uuid.UUID(a["correlation_id"])
        alert = DeadlineAlert(appeal_id=uuid.UUID(aid), registration_number=a["number"], party_id=a["party_id"],
                              threshold=a["threshold"], due_at=a["due_at"], alert_at=a["alert_at"], generation=a["generation"])
        out = [OutboundRecord.of(self.lifecycle_topic, Envelope.new(
            alert, source=SOURCE, appeal_id=aid, correlation_id=cid, occurred_at=a["alert_at"],
            event_id=uuid.uuid5(ALERT_NS, f"{a['_id']}:alert")))]
        if a["threshold"] == "overdue":
            expired = DeadlineExpired(appeal_id=uuid.UUID(aid), actor="notifier", deadline=a["due_at"])
            out.append(OutboundRecord.of(self.actions_topic, Envelope.new(
                expired, source=SOURCE, appeal_id=aid, correlation_id=cid, occurred_at=a["due_at"],
                event_id=uuid.uuid5(ALERT_NS, f"{a['_id']}:expired"))))
        return out

    async def scan(self, publish: Publish, limit: int = 500) -> int:
        """Send every pending alert whose time has come (at most ``limit``); returns how many."""
        due = await self.repo.due_alerts(self.clock(), limit)
        for a in due:
            await publish(self.alert_records(a))
            if self.delivery.party_alerts_webhook:
                subject, body = party_alert(a["number"], a["threshold"], a["due_at"].isoformat())
                await self.repo.add_delivery(
                    {"_id": f"{a['_id']}:party", "kind": "deadline_alert", "appeal_id": a["appeal_id"],
                     "number": a["number"], "party_id": a["party_id"], "supervisor_party_id": a.get("supervisor_id"),
                     "target_kind": "webhook",
                     "target": self.delivery.party_alerts_webhook, "subject": subject, "body": body, "state": "pending",
                     "attempts": 0, "created_at": self.clock(), "not_before": self.clock()},
                    None,
                )
            await self.repo.mark_sent(a["_id"], self.clock())
        return len(due)

    async def deliver(self, send: Callable[[dict[str, Any]], Awaitable[None]], publish: Publish, limit: int = 100) -> int:
        """One attempt for each delivery that is due. A transient failure is retried later with a
        doubling delay (the attempt count is stored, so retries survive restarts); a permanent one,
        or the last attempt, sends the delivery to the DLQ and marks it failed."""
        due = await self.repo.due_deliveries(self.clock(), limit)
        for d in due:
            attempts = d["attempts"] + 1
            try:
                await send(d)
            except Exception as exc:  # noqa: BLE001 - every failure is either retried or dead-lettered
                permanent = not is_transient(exc)
                if permanent or attempts >= self.delivery.attempts:
                    reason = reason_of(exc) if permanent else "retries_exhausted"
                    await publish([self._dead_delivery(d, reason, safe_detail(exc), attempts)])
                    await self.repo.finish_delivery(d["_id"], "failed", attempts, self.clock(), reason)
                    log.warning("delivery_failed", delivery_id=d["_id"], reason=reason, attempts=attempts)
                else:
                    delay = timedelta(seconds=self.delivery.backoff_s * 2 ** (attempts - 1))
                    await self.repo.retry_delivery(d["_id"], attempts, self.clock() + delay)
                continue
            await self.repo.finish_delivery(d["_id"], "sent", attempts, self.clock())
        return len(due)

    def _dead_delivery(self, d: dict[str, Any], reason: str, detail: str, attempts: int) -> OutboundRecord:
        value = json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()},
                           ensure_ascii=False).encode()
        headers = dict((k, v.decode()) for k, v in failure_headers(reason, detail, "notifier", None, attempts=attempts))
        headers["content-type"] = "application/json"
        return OutboundRecord(topic=self.delivery.dlq_topic, key=d["appeal_id"].encode(), value=value, headers=headers)
