"""Notifier logic: plan deadlines from lifecycle events, queue citizen notices, send due alerts and
deliveries. No broker or database imports here.

Handlers only decide: ``(event, uow) -> [events]``; the runtime runs them in one transaction with
the processed-event marker and publishes what they return (``DeadlinePlanned``, with an id derived
from the cause). A status change that neither stops nor reopens a deadline returns at once: no
read, no write.

The scanner and the delivery loop (``scan``, ``deliver``) work on the store outside any
transaction. Deadlines and alerts live in MongoDB (they survive restarts). A scan sends every
pending alert whose time has come, then marks it sent. The alert's events have ids derived from the
alert itself, so a crash between publishing and marking republishes the *same* events: consumers
dedupe them by id, and no alert is ever sent before its time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import structlog

from zhkh_contracts import (
    AppealLinkedToOutage,
    AppealAnswered,
    AppealProgressUpdated,
    AppealRatingRequested,
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
    EventData,
    PartyKind,
)
from zhkh_runtime.engine import Emit, Handlers
from zhkh_runtime.errors import PermanentError, is_transient, reason_of, safe_detail

from .deadlines import DEFAULT_TZ, Deadline, DeadlineTable, Regime, RegimeKind
from .delivery import Target, citizen_target, not_before
from .letters import letter_docs, needs_letter
from .outages import outage_fields
from .planning import alert_points
from .templates import ACCESS_CODE_SLOT, citizen_message, local_time, party_alert, party_assigned
from .uow import Doc, NotifierStore, NotifierUoW

log = structlog.get_logger(__name__)
ALERT_NS = uuid.UUID("8d1f4a8e-0c7b-4d0c-9a55-3c7f2b1e6a10")
FORWARDED = {AssignmentCause.REROUTE, AssignmentCause.ESCALATION, AssignmentCause.OPERATOR}
"""Causes of a re-assignment the citizen is told about (59-ФЗ ст. 8: forwarding to another body)."""
STOPPING = {AppealStatus.ANSWERED, AppealStatus.CLOSED, AppealStatus.WITHDRAWN}
GIS_REGIME = Regime("gis_execution_end_date", RegimeKind.CALENDAR_DAYS, 0)

PublishEvents = Callable[[list[Emit]], Awaitable[None]]
"""Publishes events (the runtime's emitter makes the records)."""
Send = Callable[[Doc], Awaitable[None]]
"""Hands one delivery to its channel; raises TransientError / PermanentError."""
DeadLetter = Callable[[Doc, str, str, int], Awaitable[None]]
"""Sends a failed delivery to the DLQ: (delivery, reason, detail, attempts)."""


@dataclass(frozen=True)
class DeliveryConfig:
    citizen_webhooks: dict[str, str] = field(default_factory=dict)
    party_alerts_webhook: str | None = None
    quiet_hours: tuple[time, time] | None = None
    default_timezone: str = DEFAULT_TZ
    attempts: int = 5
    backoff_s: float = 30.0
    email_enabled: bool = True
    sms_enabled: bool = True


class NotifierService:
    def __init__(
        self,
        table: DeadlineTable,
        thresholds: list[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        delivery: DeliveryConfig | None = None,
    ) -> None:
        self.table, self.thresholds, self.clock = table, thresholds, clock
        self.delivery = delivery or DeliveryConfig()

    def handlers(self) -> Handlers:
        h = Handlers()
        h.on(AppealRegistered)(self.on_registered)
        h.on(AppealAssigned)(self.on_assigned)
        h.on(AppealExtended)(self.on_extended)
        # accepted, re-assigned, ...: the engine ignores them (no unit of work, no marker)
        h.on(AppealStatusChanged, when=lambda s: s.to_status in STOPPING or s.to_status is AppealStatus.REOPENED)(self.on_status)
        h.on(AppealAnswered)(self.on_answered)
        h.on(AppealProgressUpdated)(self.on_progress)
        h.on(AppealRatingRequested)(self.on_rating_requested)
        # the scanner's own overdue alert (on the lifecycle topic): the citizen is told once per generation
        h.on(DeadlineAlert, when=lambda a: a.threshold == "overdue")(self.on_overdue)
        h.on(AppealLinkedToOutage)(self.on_outage)  # the outage register's notices
        return h

    # ---- planning -------------------------------------------------------------------------------

    async def on_registered(self, e: AppealRegistered, uow: NotifierUoW) -> list[EventData]:
        a = e.appeal
        facts = {"_id": str(a.appeal_id), "number": a.registration_number, "registered_at": a.registered_at,
                 "category": a.category.value, "emergency": a.emergency, "emergency_rule": a.emergency_rule,
                 # ГИС ЖКХ's ExecutionEndDate, set by gis_sync
                 "execution_end_date": a.source_refs.get("execution_end_date"), "channel": a.channel.value,
                 "email": a.applicant.email, "phone": a.applicant.phone, "notify": a.consent.notifications,
                 # without consent to processing beyond the legal duty (152-ФЗ ст. 6 ч. 1 п. 2-3), no optional
                 # uses: notices by SMS or messenger are skipped; e-mail answers stay (59-ФЗ ст. 10 ч. 4)
                 "optional_uses": a.consent.personal_data,
                 "correlation_id": str(uow.message.correlation_id)}
        if a.applicant.postal_address:  # for a paper answer letter (letters.py), if nothing else reaches them
            facts.update(postal_address=a.applicant.postal_address, name=a.applicant.name)
        if a.consent.notifications:  # its quiet hours move to the party's zone at the first assignment
            facts["registered_delivery"] = f"{uow.message.id}:registered"
        await uow.facts.save(facts)
        if a.consent.notifications:
            # no deadline yet (the assignment comes after the registration): the default time zone
            # the access code goes into the notice, never into the facts or the logs
            await self._notify(uow, "registered", facts, self.delivery.default_timezone, number=a.registration_number,
                               access_code=e.access_code)
        return []

    async def on_assigned(self, d: AppealAssigned, uow: NotifierUoW) -> list[EventData]:
        aid = str(d.appeal_id)
        facts = await uow.facts.get(aid)
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
        cur = await uow.schedule.current(aid)
        planned = await self._plan(uow, cur, aid, facts["number"], d.party_id, regime, due_at, start, tz, "assigned",
                                   d.supervisor_party_id, d.party_name)
        if first and facts.get("registered_delivery"):
            await self._registered_in_party_zone(uow, facts, tz)
        if d.cause in FORWARDED and d.previous_party_id is not None:
            # 59-ФЗ ст. 8: the citizen is told where the appeal went (whatever the consent, like an extension)
            await self._notify(uow, "forwarded", facts, tz, number=facts["number"],
                               party=d.party_name or "другую организацию")
        if self.delivery.party_alerts_webhook:  # the party learns of the appeal and its deadline
            await uow.deliveries.queue(self._party_assigned(uow, d, facts["number"], planned.due_at, tz))
        return [planned]

    async def _registered_in_party_zone(self, uow: NotifierUoW, facts: Doc, tz: str) -> None:
        """The "registered" notice was queued before the appeal's zone was known (quiet hours in the
        default zone); the first assignment brings the party's zone: hold it by that zone's night instead."""
        quiet = self.delivery.quiet_hours
        if quiet is None or facts.get("emergency"):
            return
        now = self.clock()
        held = not_before(now, tz, quiet, False)
        if held != not_before(now, self.delivery.default_timezone, quiet, False):
            await uow.deliveries.reschedule(facts["registered_delivery"], held)

    def _party_assigned(self, uow: NotifierUoW, d: AppealAssigned, number: str, due_at: datetime, tz: str) -> Doc:
        subject, body = party_assigned(number, local_time(due_at, tz), d.previous_party_id)
        now = self.clock()
        return {"_id": f"{uow.message.id}:party_assigned", "kind": "assigned", "appeal_id": str(d.appeal_id),
                "number": number, "party_id": d.party_id, "due_at": due_at.isoformat(), "target_kind": "webhook",
                "target": self.delivery.party_alerts_webhook, "subject": subject, "body": body, "state": "pending",
                "attempts": 0, "created_at": now, "not_before": now}

    async def on_overdue(self, a: DeadlineAlert, uow: NotifierUoW) -> list[EventData]:
        """The deadline passed without an answer: tell the citizen (with their consent to notices), once
        per deadline generation (the alert's id is derived from it). Not when the deadline has been
        stopped or replanned since the alert was made (an answer raced the scanner)."""
        aid = str(a.appeal_id)
        facts = await uow.facts.get(aid)
        if facts is None or not facts.get("notify"):
            return []
        cur = await uow.schedule.current(aid)
        if cur is None or cur["status"] != "active" or int(cur["generation"]) != a.generation:
            return []
        await self._notify(uow, "overdue", facts, cur["tz"], number=a.registration_number,
                           due=local_time(a.due_at, cur["tz"]))
        return []

    async def on_extended(self, x: AppealExtended, uow: NotifierUoW) -> list[EventData]:
        aid = str(x.appeal_id)
        cur = await uow.schedule.current(aid)
        if cur is None or cur["status"] != "active":
            return []
        regime = self.table.regimes.get(cur["regime"], GIS_REGIME)
        old = Deadline(cur["regime"], cur["due_at"], cur["due_at"])
        new = self.table.extended(old, x.days, cur["tz"]) if regime is not GIS_REGIME else old
        facts = await uow.facts.get(aid)
        if facts is not None:  # 59-ФЗ: the citizen is told about an extension
            await self._notify(uow, "extended", facts, cur["tz"], number=cur["number"], days=x.days, reason=x.reason)
        return [await self._plan(uow, cur, aid, cur["number"], cur["party_id"], regime, new.due_at, cur["start_at"],
                                 cur["tz"], "extended", cur.get("supervisor_id"), cur.get("party_name"))]

    async def on_answered(self, a: AppealAnswered, uow: NotifierUoW) -> list[EventData]:
        """The answer goes to the citizen (whatever their notification consent: it is the answer)."""
        facts = await uow.facts.get(str(a.appeal_id))
        if facts is not None and needs_letter(facts, self._citizen_target(facts) is not None):
            await self._letter(a, facts, uow)  # reachable only by post: a printed letter
        elif facts is not None:
            await self._notify(uow, "answered", facts, None, number=a.registration_number, text=a.text)
        return []

    async def _letter(self, a: AppealAnswered, facts: Doc, uow: NotifierUoW) -> None:
        """The answer as a paper letter for the print queue, and its delivery record "by post"."""
        cur = await uow.schedule.current(str(a.appeal_id))
        subject, _ = citizen_message("answered", number=a.registration_number, text="")
        letter, delivery = letter_docs(
            answer_event_id=uow.message.id, appeal_id=facts["_id"], number=a.registration_number, facts=facts,
            text=a.text, party_id=a.party_id, party_name=cur.get("party_name") if cur else None,
            answered_at=a.answered_at, tz=self._zone(cur), now=self.clock(),
            subject=subject)
        await uow.letters.queue(letter)
        await uow.deliveries.queue(delivery)
        log.info("answer_letter_queued", appeal_id=facts["_id"], letter_id=letter["_id"])

    async def on_outage(self, e: AppealLinkedToOutage, uow: NotifierUoW) -> list[EventData]:
        """The outage register's notice to the citizen (notifier/outages.py): a status notice, not the answer."""
        facts = await uow.facts.get(str(e.appeal_id))
        if facts is None or not facts.get("notify"):
            return []
        tz = self._zone(await uow.schedule.current(str(e.appeal_id)))
        await self._notify(uow, f"outage_{e.what.value}", facts, tz, **outage_fields(e, tz))
        return []

    def _zone(self, cur: Doc | None) -> str:
        """The appeal's zone: its deadline's (the party's), else the default."""
        return cur["tz"] if cur else self.delivery.default_timezone

    async def on_rating_requested(self, r: AppealRatingRequested, uow: NotifierUoW) -> list[EventData]:
        """Closing the loop: the citizen is asked once whether the problem is solved (with their
        consent to notifications, like the other status notices)."""
        facts = await uow.facts.get(str(r.appeal_id))
        if facts is not None and facts.get("notify", True):
            await self._notify(uow, "rating_requested", facts, None, number=r.registration_number,
                               days=f"{r.close_after_days:g}", window=f"{r.reopen_window_days:g} дн.")
        return []

    async def on_progress(self, p: AppealProgressUpdated, uow: NotifierUoW) -> list[EventData]:
        """The party's interim update goes to the citizen (like the answer, whatever the consent to
        status notifications: it is about their appeal's substance)."""
        facts = await uow.facts.get(str(p.appeal_id))
        if facts is not None:
            await self._notify(uow, "progress", facts, None, number=p.registration_number, text=p.text)
        return []

    async def on_status(self, s: AppealStatusChanged, uow: NotifierUoW) -> list[EventData]:
        if s.to_status not in STOPPING and s.to_status is not AppealStatus.REOPENED:
            return []  # accepted, re-assigned, ...: nothing to do, no read, no write
        aid = str(s.appeal_id)
        if s.to_status in STOPPING:
            await uow.schedule.stop(aid)
            return []
        cur = await uow.schedule.current(aid)
        regime = self.table.regimes.get(cur["regime"]) if cur is not None else None
        if cur is None or regime is None:  # nothing planned, or a ГИС date (ГИС sets a new one)
            return []
        now = self.clock()
        due = self.table.due(regime, now, cur["tz"])
        return [await self._plan(uow, cur, aid, cur["number"], cur["party_id"], regime, due.due_at, now, cur["tz"],
                                 "reopened", cur.get("supervisor_id"), cur.get("party_name"))]

    async def _plan(self, uow: NotifierUoW, cur: Doc | None, appeal_id: str, number: str, party_id: str, regime: Regime,
                    due_at: datetime, start: datetime, tz: str, reason: str, supervisor_id: str | None,
                    party_name: str | None = None) -> DeadlinePlanned:
        """A new generation of the appeal's deadline (``cur``: the current one, already read)."""
        generation = int(cur["generation"]) + 1 if cur else 1
        correlation_id = str(uow.message.correlation_id)
        points = alert_points(start, due_at, regime.kind, tz, self.thresholds, self.table.calendar)
        await uow.schedule.plan(
            {"_id": appeal_id, "number": number, "party_id": party_id, "regime": regime.name, "due_at": due_at,
             "start_at": start, "tz": tz, "generation": generation, "status": "active",
             "correlation_id": correlation_id, "supervisor_id": supervisor_id, "party_name": party_name},
            [{"_id": f"{appeal_id}:{generation}:{name}", "appeal_id": appeal_id, "generation": generation,
              "threshold": name, "alert_at": at, "due_at": due_at, "party_id": party_id, "number": number,
              "supervisor_id": supervisor_id, "correlation_id": correlation_id, "state": "pending"}
             for name, at in points],
            replaces=cur is not None,
        )
        if not self.table.calendar.verified(start.year) or not self.table.calendar.verified(due_at.year):
            log.warning("calendar_year_unverified", appeal_id=appeal_id, years=sorted({start.year, due_at.year}))
        return DeadlinePlanned(appeal_id=uuid.UUID(appeal_id), registration_number=number, party_id=party_id,
                               regime=regime.name, due_at=due_at, party_timezone=tz, generation=generation, reason=reason)

    def _citizen_target(self, facts: Doc) -> Target | None:
        optional = facts.get("optional_uses", True)  # no consent: no SMS, no messenger
        return citizen_target(facts["channel"], facts.get("email"), facts.get("phone"),
                              self.delivery.citizen_webhooks if optional else {},
                              self.delivery.email_enabled, self.delivery.sms_enabled and optional)

    async def _notify(self, uow: NotifierUoW, kind: str, facts: Doc, tz: str | None, **fields: Any) -> None:
        """Queue a citizen notice (id: the cause's event id and the kind). ``tz`` None: the deadline's
        zone, read only when quiet hours apply."""
        target = self._citizen_target(facts)
        if target is None:
            log.info("citizen_unreachable", kind=kind, appeal_id=facts["_id"])
            return
        urgent = bool(facts.get("emergency"))
        if tz is None and self.delivery.quiet_hours is not None and not urgent:
            cur = await uow.schedule.current(facts["_id"])
            tz = cur["tz"] if cur else None
        code = fields.pop("access_code", None)
        if code:  # the stored text holds a slot; the code is kept apart until the delivery is done
            subject, body = citizen_message(f"{kind}_with_code", access_code=ACCESS_CODE_SLOT, **fields)
        else:
            subject, body = citizen_message(kind, **fields)
        now = self.clock()
        doc = {"_id": f"{uow.message.id}:{kind}", "kind": kind, "appeal_id": facts["_id"], "number": fields.get("number", ""),
               "target_kind": target.kind, "target": target.address, "subject": subject, "body": body,
               "state": "pending", "attempts": 0, "created_at": now,
               "not_before": not_before(now, tz or self.delivery.default_timezone, self.delivery.quiet_hours, urgent)}
        if code:
            doc["access_code"] = code
        await uow.deliveries.queue(doc)

    # ---- the scanner ----------------------------------------------------------------------------

    def alert_events(self, a: Doc) -> list[Emit]:
        """The events of one alert, with ids derived from the alert: resending repeats them exactly."""
        aid, cid = uuid.UUID(a["appeal_id"]), uuid.UUID(a["correlation_id"])
        alert = DeadlineAlert(appeal_id=aid, registration_number=a["number"], party_id=a["party_id"],
                              threshold=a["threshold"], due_at=a["due_at"], alert_at=a["alert_at"], generation=a["generation"])
        out = [Emit(alert, event_id=uuid.uuid5(ALERT_NS, f"{a['_id']}:alert"), correlation_id=cid, occurred_at=a["alert_at"])]
        if a["threshold"] == "overdue":
            expired = DeadlineExpired(appeal_id=aid, actor="service:notifier", deadline=a["due_at"])
            out.append(Emit(expired, event_id=uuid.uuid5(ALERT_NS, f"{a['_id']}:expired"), correlation_id=cid,
                            occurred_at=a["due_at"]))
        return out

    def party_delivery(self, a: Doc, webhook: str) -> Doc:
        subject, body = party_alert(a["number"], a["threshold"], a["due_at"].isoformat())
        now = self.clock()
        return {"_id": f"{a['_id']}:party", "kind": "deadline_alert", "appeal_id": a["appeal_id"], "number": a["number"],
                "party_id": a["party_id"], "supervisor_party_id": a.get("supervisor_id"), "target_kind": "webhook",
                "target": webhook, "subject": subject, "body": body, "state": "pending", "attempts": 0,
                "created_at": now, "not_before": now}

    async def scan(self, store: NotifierStore, publish: PublishEvents, limit: int = 500) -> int:
        """Send every pending alert whose time has come (at most ``limit``); returns how many."""
        due = await store.due_alerts(self.clock(), limit)
        for a in due:
            await publish(self.alert_events(a))
            if self.delivery.party_alerts_webhook:
                await store.queue_delivery(self.party_delivery(a, self.delivery.party_alerts_webhook))
            await store.mark_sent(a["_id"], self.clock())
        return len(due)

    # ---- the delivery loop ----------------------------------------------------------------------

    async def deliver(self, store: NotifierStore, send: Send, dead_letter: DeadLetter, limit: int = 100) -> int:
        """One attempt for each delivery that is due. A transient failure is retried later with a
        doubling delay (the attempt count is stored, so retries survive restarts); a permanent one,
        or the last attempt, sends the delivery to the DLQ and marks it failed."""
        due = await store.due_deliveries(self.clock(), limit)
        for d in due:
            attempts = d["attempts"] + 1
            try:
                await send(d)
            except Exception as exc:  # noqa: BLE001 - every failure is either retried or dead-lettered
                permanent = not is_transient(exc)
                if permanent or attempts >= self.delivery.attempts:
                    reason = reason_of(exc) if permanent else "retries_exhausted"
                    await dead_letter(d, reason, safe_detail(exc), attempts)
                    await store.finish_delivery(d["_id"], "failed", attempts, self.clock(), reason)
                    log.warning("delivery_failed", delivery_id=d["_id"], reason=reason, attempts=attempts)
                else:
                    delay = timedelta(seconds=self.delivery.backoff_s * 2 ** (attempts - 1))
                    await store.retry_delivery(d["_id"], attempts, self.clock() + delay)
                continue
            await store.finish_delivery(d["_id"], "sent", attempts, self.clock())
        return len(due)
