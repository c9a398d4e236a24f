"""The outage register (issue contact-centre): planned and emergency outages per house or district.

Decisions only (no I/O): the state of one outage, the rules for registering it, changing its expected
restore time and marking it restored, who may do that, which appeals it concerns, and its duration per
house (the evidence for a recalculation under ПП 354). Storage goes through the ``Outages`` port
(``outages_store.MongoOutages`` on the batch's transaction; ``MemoryOutages`` in tests).

Flow: the router's HTTP API (``outages_api``) checks the caller and the outage's current state, then
publishes ``OutageRegistered`` / ``OutageRestoreTimeChanged`` / ``OutageRestored`` on the outages topic
with the principal as actor. The handlers here apply them to the stored state, checking the same rules
again (a change that raced a restoration is refused and logged, never applied silently), and tell the
residents: every appeal about that resource at those houses (or in that district) that is open, or was
answered within ``notice_window``, gets an ``AppealLinkedToOutage`` on the lifecycle topic, which the
notifier turns into a citizen notice. A new appeal matching an active outage gets one at once (``linked``)
with the expected restore time; it is routed and timed as usual all the same.

Actors: ``operator:<sub>`` and ``admin:<sub>`` for any outage; ``party:<id>`` for outages it is responsible
for (and may register only as the responsible party itself).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from zhkh_contracts import (
    AppealLinkedToOutage,
    AppealRegistered,
    Category,
    EventData,
    OutageBase,
    OutageKind,
    OutageNotice,
    OutageRegistered,
    OutageResource,
    OutageRestoreTimeChanged,
    OutageRestored,
)
from zhkh_runtime.engine import Handlers, Message

from .uow import MemoryRouterUoW

OUTAGE_NS = uuid.UUID("3b0e6f52-9d7c-4c1a-8f0e-6a2d5c4b7e91")
APPLIED, REFUSED = "applied", "refused"
STAFF_ROLES = ("operator", "admin")
RESOURCE_CATEGORIES = frozenset(Category(r.value) for r in OutageResource)


def outage_id_of(ref: str) -> uuid.UUID:
    """The outage id of an organisation's own reference (import rows, API bodies with ``ref``): the same
    reference always names the same outage, so a repeated import registers nothing new."""
    return uuid.uuid5(OUTAGE_NS, f"ref:{ref}")


@dataclass(frozen=True)
class OutageState:
    outage_id: uuid.UUID
    resource: OutageResource
    kind: OutageKind
    house_keys: tuple[str, ...]
    district_id: str | None
    starts_at: datetime
    expected_restore_at: datetime
    party_id: str
    registered_at: datetime
    registered_by: str
    ref: str | None = None
    restored_at: datetime | None = None
    version: int = 1
    changes: tuple[dict[str, Any], ...] = ()  # every restore-time change: at, from, to, actor

    @property
    def active(self) -> bool:
        return self.restored_at is None

    def covers(self, house_key: str | None, district_id: str | None) -> bool:
        return (house_key is not None and house_key in self.house_keys) or (
            self.district_id is not None and district_id == self.district_id)

    def in_force(self, at: datetime) -> bool:
        """Started and not restored: a new appeal about the resource is about this outage."""
        return self.restored_at is None and self.starts_at <= at


@dataclass(frozen=True)
class Resident:
    """An appeal an outage concerns (no personal data: the notifier holds the contacts)."""

    appeal_id: uuid.UUID
    number: str


@dataclass(frozen=True)
class Outcome:
    outcome: str  # applied | refused
    code: str | None = None
    state: OutageState | None = None


def may_act(actor: str, party_id: str) -> bool:
    """Operators and admins act on any outage; a party only on those it is responsible for."""
    role, _, ident = actor.partition(":")
    if role in STAFF_ROLES and ident:
        return True
    return role == "party" and ident == party_id


def register(cur: OutageState | None, e: OutageRegistered) -> Outcome:
    if not may_act(e.actor, e.party_id):
        return Outcome(REFUSED, "forbidden")
    if cur is not None:
        return Outcome(REFUSED, "already_registered", cur)
    return Outcome(APPLIED, state=OutageState(
        outage_id=e.outage_id, resource=e.resource, kind=e.kind, house_keys=tuple(dict.fromkeys(e.house_keys)),
        district_id=e.district_id, starts_at=e.starts_at, expected_restore_at=e.expected_restore_at,
        party_id=e.party_id, registered_at=e.registered_at, registered_by=e.actor, ref=e.ref,
        restored_at=e.restored_at))


def _refusal(cur: OutageState | None, actor: str) -> Outcome | None:
    """Why ``actor`` may not act on the outage ``cur`` any more (None: it may)."""
    if cur is None:
        return Outcome(REFUSED, "unknown_outage")
    if not may_act(actor, cur.party_id):
        return Outcome(REFUSED, "forbidden", cur)
    if not cur.active:
        return Outcome(REFUSED, "already_restored", cur)
    return None


def change_restore_time(cur: OutageState | None, e: OutageRestoreTimeChanged) -> Outcome:
    if (no := _refusal(cur, e.actor)) is not None or cur is None:
        return no or Outcome(REFUSED, "unknown_outage")
    if e.expected_restore_at <= cur.starts_at:
        return Outcome(REFUSED, "restore_before_start", cur)
    if e.expected_restore_at == cur.expected_restore_at:
        return Outcome(REFUSED, "unchanged", cur)
    change = {"at": e.changed_at, "from": cur.expected_restore_at, "to": e.expected_restore_at, "actor": e.actor}
    return Outcome(APPLIED, state=replace(cur, expected_restore_at=e.expected_restore_at, version=cur.version + 1,
                                          changes=(*cur.changes, change)))


def restore(cur: OutageState | None, e: OutageRestored) -> Outcome:
    if (no := _refusal(cur, e.actor)) is not None or cur is None:
        return no or Outcome(REFUSED, "unknown_outage")
    if e.restored_at < cur.starts_at:
        return Outcome(REFUSED, "restore_before_start", cur)
    return Outcome(APPLIED, state=replace(cur, restored_at=e.restored_at, version=cur.version + 1))


def duration_rows(s: OutageState, district_houses: list[str], now: datetime) -> list[dict[str, Any]]:
    """The outage's duration per house: from ``starts_at`` to ``restored_at`` (or to ``now``, still open).
    A district outage covers the district's houses in the directory (none known: one row for the district)."""
    end = s.restored_at or now
    hours = max(0.0, (end - s.starts_at).total_seconds() / 3600)
    houses = list(dict.fromkeys([*s.house_keys, *district_houses])) or [None]
    return [{
        "outage_id": str(s.outage_id), "ref": s.ref, "resource": s.resource.value, "kind": s.kind.value,
        "house_key": h, "district_id": s.district_id, "party_id": s.party_id,
        "starts_at": s.starts_at.isoformat(), "expected_restore_at": s.expected_restore_at.isoformat(),
        "restored_at": s.restored_at.isoformat() if s.restored_at else None,
        "open": s.restored_at is None, "duration_hours": round(hours, 2),
    } for h in houses]


# ---- the port ----------------------------------------------------------------------------------


class Outages(Protocol):
    async def load(self, outage_id: uuid.UUID) -> OutageState | None: ...

    async def save(self, state: OutageState, expected_version: int) -> None:
        """Insert (``expected_version`` 0) or compare-and-set on the version."""
        ...

    async def in_force(self, house_key: str | None, district_id: str | None, resource: OutageResource,
                       at: datetime) -> list[OutageState]: ...

    async def residents(self, s: OutageState, answered_since: datetime) -> list[Resident]:
        """Appeals about ``s.resource`` at its houses or in its district: open, or answered since."""
        ...

    async def link(self, outage_id: uuid.UUID, appeal_ids: Iterable[uuid.UUID], how: str, at: datetime) -> None:
        """Link these appeals to the outage (each once: a link kept is not changed)."""

    async def log(self, cause: Message, outage_id: uuid.UUID, action: str, actor: str, at: datetime,
                  result: Outcome) -> None:
        """One entry per applied or refused event (by its id: a redelivery adds nothing)."""
        ...


class OutageUoW(Protocol):
    message: Message
    outages: Outages
    appeals: Any


# ---- the handlers --------------------------------------------------------------------------------


ACTION = {OutageRegistered: "register", OutageRestoreTimeChanged: "change_restore_time", OutageRestored: "restore"}
NOTICE = {OutageRegistered: OutageNotice.REGISTERED, OutageRestoreTimeChanged: OutageNotice.RESTORE_TIME_CHANGED,
          OutageRestored: OutageNotice.RESTORED}


class OutageService:
    def __init__(self, notice_window: timedelta = timedelta(days=30),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), cards: Any = None) -> None:
        """``cards``: the router's ControlCards (controlcards.py), when the cards are on: a restored
        outage reports restoration on the open cards of its houses (or district) and resource."""
        self.notice_window, self.clock, self.cards = notice_window, clock, cards

    def install(self, h: Handlers) -> Handlers:
        """Adds the outage handlers to the router's, and wraps its registration handler: a new appeal
        that matches an outage in force is linked to it (after it has been routed as usual)."""
        h.on(OutageRegistered, OutageRestoreTimeChanged, OutageRestored)(self.on_outage)
        routed = h.by_type[AppealRegistered.EVENT_TYPE]

        async def on_registered(e: AppealRegistered, uow: Any) -> list[Any]:
            out = list(await routed(e, uow) or [])
            if out:  # [] is a replayed registration: linked the first time
                out += await self.link_new(e, uow)
            return out

        h.on(AppealRegistered)(on_registered)
        return h

    async def on_outage(self, e: OutageBase, uow: OutageUoW) -> list[EventData]:
        now = self.clock()
        cur = await uow.outages.load(e.outage_id)
        if isinstance(e, OutageRegistered):
            result = register(cur, e)
        elif isinstance(e, OutageRestoreTimeChanged):
            result = change_restore_time(cur, e)
        elif isinstance(e, OutageRestored):
            result = restore(cur, e)
        else:  # pragma: no cover - only the three types are registered
            raise TypeError(type(e).__name__)
        await uow.outages.log(uow.message, e.outage_id, ACTION[type(e)], e.actor, now, result)
        if result.outcome != APPLIED or result.state is None:
            return []
        s = result.state
        await uow.outages.save(s, cur.version if cur else 0)
        what = NOTICE[type(e)]
        if what is OutageNotice.REGISTERED and not s.active:
            return []  # a past outage recorded after the fact (for its durations): nobody is told
        residents = await uow.outages.residents(s, now - self.notice_window)
        if what is OutageNotice.REGISTERED:
            await uow.outages.link(s.outage_id, [r.appeal_id for r in residents], "registered", now)
        out: list[Any] = [self._notice(s, r, what, now) for r in residents]
        if self.cards is not None and isinstance(e, OutageRestored):
            # the control cards at those houses: "restoration reported" (closed only when a person confirms it)
            # (a district outage covers its houses: each card once)
            if s.district_id:
                out += await self.cards.report_restored_in_district(uow, s.district_id, s.resource.value,
                                                                    e.restored_at, e.actor)
            else:
                for house in s.house_keys:
                    out += await self.cards.report_restored(uow, house, s.resource.value, e.restored_at, e.actor)
        return out

    async def link_new(self, e: AppealRegistered, uow: OutageUoW) -> list[EventData]:
        a = e.appeal
        if a.category not in RESOURCE_CATEGORIES:
            return []
        state = await uow.appeals.load(a.appeal_id)
        district = state.district_id if state is not None else None
        now = self.clock()
        out: list[EventData] = []
        for s in await uow.outages.in_force(a.house_key, district, OutageResource(a.category.value), now):
            await uow.outages.link(s.outage_id, [a.appeal_id], "linked", now)
            out.append(self._notice(s, Resident(a.appeal_id, a.registration_number), OutageNotice.LINKED, now))
        return out

    @staticmethod
    def _notice(s: OutageState, r: Resident, what: OutageNotice, now: datetime) -> AppealLinkedToOutage:
        return AppealLinkedToOutage(
            appeal_id=r.appeal_id, registration_number=r.number, outage_id=s.outage_id, resource=s.resource,
            outage_kind=s.kind, what=what, starts_at=s.starts_at, expected_restore_at=s.expected_restore_at,
            restored_at=s.restored_at,
            at=now)


# ---- in memory, for fast tests -----------------------------------------------------------------


@dataclass
class MemoryOutages:
    """The port in memory; ``appeals`` is the router's MemoryAppeals (for the residents)."""

    appeals: Any
    states: dict[str, OutageState] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def load(self, outage_id: uuid.UUID) -> OutageState | None:
        return self.states.get(str(outage_id))

    async def save(self, state: OutageState, expected_version: int) -> None:
        from zhkh_runtime.errors import TransientError

        cur = self.states.get(str(state.outage_id))
        if (cur.version if cur else 0) != expected_version:
            raise TransientError("version conflict")
        self.states[str(state.outage_id)] = state

    async def in_force(self, house_key: str | None, district_id: str | None, resource: OutageResource,
                       at: datetime) -> list[OutageState]:
        return [s for s in self.states.values()
                if s.resource is resource and s.in_force(at) and s.covers(house_key, district_id)]

    async def residents(self, s: OutageState, answered_since: datetime) -> list[Resident]:
        from .repository import CLOSED

        out = []
        for a in self.appeals.states.values():
            if a.category.value != s.resource.value or not s.covers(a.house_key, a.district_id):
                continue
            if a.status.value not in CLOSED or (a.answered_at is not None and a.answered_at >= answered_since
                                                and a.status.value != "withdrawn"):
                out.append(Resident(a.appeal_id, a.number))
        return sorted(out, key=lambda r: r.number)

    async def link(self, outage_id: uuid.UUID, appeal_ids: Iterable[uuid.UUID], how: str, at: datetime) -> None:
        for a in appeal_ids:
            self.links.setdefault(f"{outage_id}:{a}", {"outage_id": str(outage_id), "appeal_id": str(a), "how": how,
                                                       "at": at})

    async def log(self, cause: Message, outage_id: uuid.UUID, action: str, actor: str, at: datetime,
                  result: Outcome) -> None:
        self.entries.setdefault(str(cause.id), {"outage_id": str(outage_id), "action": action, "actor": actor,
                                                "outcome": result.outcome, "code": result.code, "at": at})


class MemoryOutageUoW(MemoryRouterUoW):
    """The router's in-memory unit of work with the outage register (snapshot/restore for MemoryTracking)."""

    def __init__(self, directory: Any = None) -> None:
        super().__init__(directory)
        self.outages = MemoryOutages(self.appeals)

    def snapshot(self) -> Any:
        return copy.deepcopy((self.appeals, self.history, self.outages))

    def restore(self, snap: Any) -> None:
        self.appeals, self.history, self.outages = snap
