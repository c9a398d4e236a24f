"""Per-house control cards for the heating season (Samara's "поадресный контроль", issue 16).

The first appeal about a controlled resource (heating, hot and cold water, electricity, gas: configurable)
at a house, registered within the heating season, opens a control card for that house and resource; later
appeals about the same house and resource join the card while it is not closed (counted once each). The
card carries the house's district, the party the first appeal was assigned to, when it was opened and the
district's same-day target (the end of the opening day in the district's zone, or the district's target
hour). Its states:

    open ──(the party answers an appeal of the card, or reports restoration; a restored outage)──▶ restoration_reported
    open | restoration_reported ──(an operator, inspector or admin confirms restoration)──▶ closed
    restoration_reported ──(another appeal about the house and resource joins)──▶ open

A card closes **only** on a confirmation by an operator, inspector or admin (who, when, how: a call back to a
resident, a site visit, the dispatcher's data), recorded on the card and in ``ControlCardClosed``.

Decisions are plain functions (season, target, open or join, who may confirm); :class:`ControlCards` puts
them into the router's handlers: the registration handler is wrapped (the card is opened or joined in the
same transaction that routes the appeal, from the ``AppealAssigned`` it produced, so a replayed registration
that routes nothing counts nothing), so are the appeal actions' handlers (an ``AppealAnswered`` they produce
reports restoration; an appeal passed on to another party takes its card along), and the two card actions
the HTTP API publishes are applied here. State lives in ``router_control_cards`` (one document per
card) and ``router_control_card_slots`` (``<resource>|<house>`` -> the card not closed: the unique key that
makes two concurrent first appeals open one card, the other retried into a join).

Hook for the outage register: :meth:`ControlCards.report_restored` marks the open card of a house and
resource "restoration reported" (``via="outage"``), :meth:`ControlCards.report_restored_in_district` every open
card of a district and resource; call them from the handler of an outage's restoration with the router's unit
of work (which must carry ``cards``), and return their events with the handler's own.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pymongo.errors import DuplicateKeyError

from zhkh_contracts import (
    ACTION_CLASSES,
    AppealAnswered,
    AppealAssigned,
    AppealRegistered,
    AppealTransitionRejected,
    AssignmentCause,
    Category,
    ConfirmationMethod,
    ControlCardActionBase,
    ControlCardAppealJoined,
    ControlCardClosed,
    ControlCardOpened,
    ControlCardRestorationConfirm,
    ControlCardRestorationReport,
    ControlCardRestorationReported,
    ControlCardState,
)
from zhkh_runtime.engine import Emit, Handlers, Message
from zhkh_runtime.errors import TransientError
from zhkh_runtime.mongo import aware

from .directory import Directory
from .queries import public_house_key
from .uow import MemoryRouterUoW

CARD_NS = uuid.UUID("8a3f6b1e-2d4c-4e8a-9f1b-6c5d7e2a9b40")
DEFAULT_RESOURCES = ("heating", "hot_water", "cold_water", "electricity", "gas")
CONFIRMERS = ("operator", "inspector", "admin")
OPEN, REPORTED, CLOSED = ControlCardState.OPEN, ControlCardState.RESTORATION_REPORTED, ControlCardState.CLOSED
FORBIDDEN = "forbidden"
PASSED_ON = (AssignmentCause.REROUTE, AssignmentCause.FALLBACK, AssignmentCause.OPERATOR)


# ---- decisions (no I/O) --------------------------------------------------------------------------


def check_setting(name: str, v: Any) -> Any:
    """Validation of the router's control-card settings (a bad value stops the router at startup)."""
    if name.startswith("heating_season_"):
        month_day(v)
    elif name == "control_card_resources":
        unknown = set(v) - {c.value for c in Category}
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}")
    elif name == "control_card_target_hours":
        bad = {k: h for k, h in v.items() if not 1 <= h <= 24}
        if bad:
            raise ValueError(f"target hours must be 1..24: {sorted(bad)}")
    elif name == "control_card_timezone":
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
    return v


def month_day(text: str) -> tuple[int, int]:
    """``MM-DD`` -> (month, day); a day that exists in a leap year (02-29 is allowed)."""
    m, _, d = text.strip().partition("-")
    try:
        md = (int(m), int(d))
        date(2024, *md)
    except ValueError:
        raise ValueError(f"not a month-day (MM-DD): {text!r}") from None
    return md


@dataclass(frozen=True)
class Season:
    """The heating season as month-days, both inclusive; it may wrap the new year (09-15 .. 05-15)."""

    start: tuple[int, int] = (9, 15)
    end: tuple[int, int] = (5, 15)

    @classmethod
    def parse(cls, start: str, end: str) -> Season:
        return cls(month_day(start), month_day(end))

    def contains(self, day: date) -> bool:
        md = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end


def same_day_target(opened_at: datetime, tz: ZoneInfo, hour: int = 24) -> datetime:
    """The district's same-day target for a card opened at ``opened_at``: the end of the opening day in the
    district's zone (``hour`` 24), or that day's ``hour`` o'clock; a card opened at or after that hour gets
    the next day's. Returned in UTC."""
    local = opened_at.astimezone(tz)
    if hour >= 24:
        target = datetime.combine(local.date() + timedelta(days=1), time(0), tz)
    else:
        target = datetime.combine(local.date(), time(hour), tz)
        if local >= target:
            target = datetime.combine(local.date() + timedelta(days=1), time(hour), tz)
    return target.astimezone(UTC)


@dataclass(frozen=True)
class CardPolicy:
    """What the settings say about cards (router settings ``ZHKH_HEATING_SEASON_*``, ``ZHKH_CONTROL_CARD_*``)."""

    resources: frozenset[str] = frozenset(DEFAULT_RESOURCES)
    season: Season = Season()
    outside_season: bool = False
    target_hours: dict[str, int] = field(default_factory=dict)  # district id (or "*") -> hour 1..24
    default_timezone: str = "Europe/Moscow"

    @classmethod
    def of(cls, settings: Any) -> CardPolicy:
        return cls(
            resources=frozenset(settings.control_card_resources),
            season=Season.parse(settings.heating_season_start, settings.heating_season_end),
            outside_season=settings.control_cards_outside_season,
            target_hours=dict(settings.control_card_target_hours),
            default_timezone=settings.control_card_timezone,
        )

    def timezone(self, directory: Directory, district_id: str | None) -> str:
        """The district's zone: its administration's in the directory, else the default."""
        district = directory.districts.get(district_id) if district_id else None
        admin = directory.parties.get(district.administration_id) if district else None
        return admin.timezone if admin else self.default_timezone

    def target_hour(self, district_id: str | None) -> int:
        return self.target_hours.get(district_id or "", self.target_hours.get("*", 24))

    def in_season(self, at: datetime, tz: ZoneInfo) -> bool:
        return self.outside_season or self.season.contains(at.astimezone(tz).date())


@dataclass
class Card:
    card_id: str
    house_key: str
    resource: str
    district_id: str | None
    party_id: str | None
    timezone: str
    opened_at: datetime
    target_at: datetime
    appeal_ids: list[str]
    state: str = OPEN.value
    version: int = 1
    reported_at: datetime | None = None
    reported_by: str | None = None
    reported_via: str | None = None
    closed_at: datetime | None = None
    confirmed_by: str | None = None
    confirmed_subject: str | None = None
    method: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)  # every action applied or refused, by event id

    @property
    def appeals(self) -> int:
        return len(self.appeal_ids)

    def doc(self) -> dict[str, Any]:
        d = asdict(self)
        d["_id"] = d.pop("card_id")
        d["appeals"] = self.appeals
        d["active"] = self.state != CLOSED.value
        d["closed_late"] = self.closed_at is not None and self.closed_at > self.target_at
        d["slot"] = slot_of(self.resource, self.house_key)
        return d

    @classmethod
    def of(cls, d: dict[str, Any]) -> Card:
        d = dict(d)
        d["card_id"] = d.pop("_id")
        d.pop("appeals", None)
        d.pop("active", None)
        d.pop("closed_late", None)
        d.pop("slot", None)
        for k in ("opened_at", "target_at", "reported_at", "closed_at"):
            if isinstance(d.get(k), datetime):
                d[k] = aware(d[k])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def slot_of(resource: str, house_key: str) -> str:
    return f"{resource}|{house_key}"


def card_id_of(resource: str, house_key: str, first_appeal_id: uuid.UUID | str) -> uuid.UUID:
    """A card's id follows from its house, resource and first appeal: a retried opening makes the same card."""
    return uuid.uuid5(CARD_NS, f"{slot_of(resource, house_key)}|{first_appeal_id}")


def on_appeal(policy: CardPolicy, current: Card | None, appeal_id: str, resource: str, at: datetime,
              tz: ZoneInfo) -> str:
    """What a newly routed appeal does to the cards: ``open``, ``join``, or why nothing (``not_controlled``,
    ``already_joined``, ``out_of_season``). A card not closed is joined in or out of season."""
    if resource not in policy.resources:
        return "not_controlled"
    if current is not None:
        return "already_joined" if appeal_id in current.appeal_ids else "join"
    return "open" if policy.in_season(at, tz) else "out_of_season"


def reported_at(appeal: Any) -> datetime:
    """When the resident reported it: the channel's ``received_at`` (a call taken at 23:50 and registered after
    midnight counts for the day it was taken), never later than the registration."""
    return min(appeal.received_at, appeal.registered_at).astimezone(UTC)


def role_of(actor: str) -> str:
    return actor.split(":", 1)[0]


def may_confirm(card: Card, actor: str) -> str | None:
    """Why ``actor`` may not confirm restoration on ``card`` now (None: it may)."""
    if role_of(actor) not in CONFIRMERS:
        return FORBIDDEN
    if card.state == CLOSED.value:
        return "already_closed"
    return None


def may_report(card: Card, actor: str) -> str | None:
    """Why ``actor`` may not report restoration on ``card`` now: the card's party or staff, on an open card."""
    if role_of(actor) not in CONFIRMERS and actor != f"party:{card.party_id}":
        return FORBIDDEN
    if card.state == CLOSED.value:
        return "already_closed"
    if card.state == REPORTED.value:
        return "already_reported"
    return None


def overdue(card: Card, now: datetime) -> bool:
    """Past the same-day target: still not closed after it, or closed after it."""
    end = card.closed_at if card.closed_at is not None else now
    return end > card.target_at


def hours_open(card: Card, now: datetime) -> float:
    end = card.closed_at if card.closed_at is not None else now
    return round(max((end - card.opened_at).total_seconds(), 0) / 3600, 2)


# ---- storage ports -------------------------------------------------------------------------------


class Cards(Protocol):
    async def current(self, resource: str, house_key: str) -> Card | None:
        """The card of this house and resource that is not closed."""
        ...

    async def of_appeal(self, appeal_id: str) -> Card | None:
        """The card not closed that this appeal joined."""
        ...

    async def load(self, card_id: str) -> Card | None: ...

    async def open_in_district(self, district_id: str, resource: str) -> list[Card]:
        """The cards of a district and resource in state ``open``."""
        ...

    async def open(self, card: Card) -> None:
        """Store a new card as the house's current one (a concurrent opening: TransientError, retried)."""
        ...

    async def save(self, card: Card, expected_version: int) -> None:
        """Compare-and-set on the version; a closed card frees its slot."""
        ...


class MongoCards:
    def __init__(self, cards: Any, slots: Any, session: Any) -> None:
        self.cards, self.slots, self.session = cards, slots, session

    async def current(self, resource: str, house_key: str) -> Card | None:
        d = await self.cards.find_one({"slot": slot_of(resource, house_key), "active": True}, session=self.session)
        return Card.of(d) if d else None

    async def of_appeal(self, appeal_id: str) -> Card | None:
        d = await self.cards.find_one({"appeal_ids": appeal_id, "active": True}, session=self.session)
        return Card.of(d) if d else None

    async def load(self, card_id: str) -> Card | None:
        d = await self.cards.find_one({"_id": card_id}, session=self.session)
        return Card.of(d) if d else None

    async def open_in_district(self, district_id: str, resource: str) -> list[Card]:
        cursor = self.cards.find({"district_id": district_id, "resource": resource, "state": OPEN.value},
                                 session=self.session)
        return [Card.of(d) async for d in cursor]

    async def open(self, card: Card) -> None:
        try:
            await self.slots.update_one({"_id": slot_of(card.resource, card.house_key), "card_id": None},
                                        {"$set": {"card_id": card.card_id}}, upsert=True, session=self.session)
            await self.cards.insert_one(card.doc(), session=self.session)
        except DuplicateKeyError:
            raise TransientError("a card for this house and resource was opened concurrently") from None

    async def save(self, card: Card, expected_version: int) -> None:
        res = await self.cards.replace_one({"_id": card.card_id, "version": expected_version}, card.doc(),
                                           session=self.session)
        if res.matched_count != 1:
            raise TransientError("control card version conflict")
        if card.state == CLOSED.value:
            await self.slots.update_one({"_id": slot_of(card.resource, card.house_key), "card_id": card.card_id},
                                        {"$set": {"card_id": None}}, session=self.session)


@dataclass
class MemoryCards:
    cards: dict[str, Card] = field(default_factory=dict)
    slots: dict[str, str | None] = field(default_factory=dict)

    async def current(self, resource: str, house_key: str) -> Card | None:
        cid = self.slots.get(slot_of(resource, house_key))
        return copy.deepcopy(self.cards[cid]) if cid else None

    async def of_appeal(self, appeal_id: str) -> Card | None:
        return next((copy.deepcopy(c) for c in self.cards.values()
                     if appeal_id in c.appeal_ids and c.state != CLOSED.value), None)

    async def load(self, card_id: str) -> Card | None:
        c = self.cards.get(card_id)
        return copy.deepcopy(c) if c else None

    async def open_in_district(self, district_id: str, resource: str) -> list[Card]:
        return [copy.deepcopy(c) for c in self.cards.values()
                if (c.district_id, c.resource, c.state) == (district_id, resource, OPEN.value)]

    async def open(self, card: Card) -> None:
        key = slot_of(card.resource, card.house_key)
        if self.slots.get(key) or card.card_id in self.cards:
            raise TransientError("a card for this house and resource was opened concurrently")
        self.slots[key] = card.card_id
        self.cards[card.card_id] = copy.deepcopy(card)

    async def save(self, card: Card, expected_version: int) -> None:
        cur = self.cards.get(card.card_id)
        if cur is None or cur.version != expected_version:
            raise TransientError("control card version conflict")
        self.cards[card.card_id] = copy.deepcopy(card)
        key = slot_of(card.resource, card.house_key)
        if card.state == CLOSED.value and self.slots.get(key) == card.card_id:
            self.slots[key] = None


class CardsRepository:
    """The collections, their indexes, and the port on one transaction."""

    def __init__(self, db: Any) -> None:
        self.cards = db["router_control_cards"]
        self.slots = db["router_control_card_slots"]

    async def ensure_indexes(self) -> None:
        await self.cards.create_index("appeal_ids")
        await self.cards.create_index([("slot", 1), ("active", 1)])
        await self.cards.create_index([("district_id", 1), ("opened_at", -1)])
        await self.cards.create_index([("district_id", 1), ("resource", 1), ("state", 1)])
        await self.cards.create_index([("party_id", 1), ("opened_at", -1)])

    def in_session(self, session: Any) -> MongoCards:
        return MongoCards(self.cards, self.slots, session)


class MemoryCardsUoW(MemoryRouterUoW):
    def __init__(self, directory: Directory | None = None) -> None:
        super().__init__(directory)
        self.cards = MemoryCards()

    def snapshot(self) -> Any:
        return (super().snapshot(), copy.deepcopy(self.cards))

    def restore(self, snap: Any) -> None:
        base, self.cards = snap
        super().restore(base)


# ---- the handlers --------------------------------------------------------------------------------


def _key(card_id: str) -> str:
    return f"card:{card_id}"


class ControlCards:
    def __init__(self, policy: CardPolicy, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.policy, self.clock = policy, clock

    def extend(self, h: Handlers) -> Handlers:
        """The router's handlers with the cards in: the registration handler wrapped, answers and card actions added."""
        routed = h.by_type[AppealRegistered.EVENT_TYPE]

        async def on_registered(e: AppealRegistered, uow: Any) -> list[Any]:
            out = list(await routed(e, uow) or [])
            return out + await self.on_routed(e, out, uow)

        h.by_type[AppealRegistered.EVENT_TYPE] = on_registered
        for cls in ACTION_CLASSES:  # answers report restoration; an appeal passed on takes its card along
            h.by_type[cls.EVENT_TYPE] = self._after_action(h.by_type[cls.EVENT_TYPE])
        h.on(ControlCardRestorationReport, ControlCardRestorationConfirm)(self.on_action)
        return h

    def _after_action(self, handler: Any) -> Any:
        """An appeal action's handler, then what its outcome does to the cards, in the same transaction."""
        async def on_action(action: Any, uow: Any) -> list[Any]:
            out = list(await handler(action, uow) or [])
            more: list[Any] = []
            for e in out:
                if isinstance(e, AppealAnswered):
                    more += await self.on_answered(e, uow)
                elif isinstance(e, AppealAssigned) and e.cause in PASSED_ON and e.previous_party_id:
                    await self.passed_on(e, uow, action.actor)
            return out + more

        return on_action

    async def passed_on(self, e: AppealAssigned, uow: Any, actor: str) -> None:
        """The card's party said an appeal of the card is not its own, or an operator routed it elsewhere:
        the card follows to the new party (an escalation leaves it: the party above supervises, it does not
        restore). Recorded in the card's actions."""
        card = await uow.cards.of_appeal(str(e.appeal_id))
        if card is None or card.party_id != e.previous_party_id or card.party_id == e.party_id:
            return
        version = card.version
        entry = self._log(uow.message, "party_changed", "applied", None, actor, None, e.assigned_at)
        await uow.cards.save(replace(card, party_id=e.party_id, version=version + 1, log=[*card.log, entry]), version)

    async def on_routed(self, e: AppealRegistered, out: Iterable[Any], uow: Any) -> list[Emit]:
        """The appeal was routed just now (its ``AppealAssigned`` is in ``out``): open or join its card."""
        assigned = next((x for x in out if isinstance(x, AppealAssigned)), None)
        a = e.appeal
        house_key = public_house_key(a.house_key)
        if assigned is None or not house_key:
            return []  # a replayed registration (routed nothing): counted the first time
        resource = a.category.value
        if resource not in self.policy.resources:
            return []
        current = await uow.cards.current(resource, house_key)
        tzname = current.timezone if current else self.policy.timezone(await uow.directory(), assigned.district_id)
        tz = ZoneInfo(tzname)
        at = reported_at(a)
        decision = on_appeal(self.policy, current, str(a.appeal_id), resource, at, tz)
        if decision == "join" and current is not None:
            return [await self._join(current, str(a.appeal_id), at, uow)]
        if decision != "open":
            return []
        opened_at = at
        card = Card(
            card_id=str(card_id_of(resource, house_key, a.appeal_id)), house_key=house_key, resource=resource,
            district_id=assigned.district_id, party_id=assigned.party_id, timezone=tzname, opened_at=opened_at,
            target_at=same_day_target(opened_at, tz, self.policy.target_hour(assigned.district_id)),
            appeal_ids=[str(a.appeal_id)],
        )
        await uow.cards.open(card)
        return [Emit(ControlCardOpened(
            card_id=uuid.UUID(card.card_id), house_key=house_key, resource=Category(resource),
            district_id=card.district_id, party_id=card.party_id, first_appeal_id=a.appeal_id,
            opened_at=card.opened_at, target_at=card.target_at, timezone=tzname), key=_key(card.card_id))]

    async def _join(self, card: Card, appeal_id: str, at: datetime, uow: Any) -> Emit:
        version = card.version
        after = replace(card, appeal_ids=[*card.appeal_ids, appeal_id], version=version + 1, state=OPEN.value)
        if card.state == REPORTED.value:  # the problem is back (or was never gone): not restored after all
            after = replace(after, reported_at=None, reported_by=None, reported_via=None)
        await uow.cards.save(after, version)
        return Emit(ControlCardAppealJoined(card_id=uuid.UUID(card.card_id), member_appeal_id=uuid.UUID(appeal_id),
                                           appeals=after.appeals, state=ControlCardState(after.state),
                                           joined_at=at), key=_key(card.card_id))

    async def on_answered(self, e: AppealAnswered, uow: Any) -> list[Emit]:
        """The party answered an appeal of an open card: restoration reported."""
        state = await uow.appeals.load(e.appeal_id)  # read by the action's handler in this unit already
        if state is not None and state.category.value not in self.policy.resources:
            return []  # no card for such an appeal: no query
        card = await uow.cards.of_appeal(str(e.appeal_id))
        if card is None or card.state != OPEN.value:
            return []
        return [await self._report(card, f"party:{e.party_id}", e.answered_at, "answer", uow)]

    async def report_restored(self, uow: Any, house_key: str, resource: str, at: datetime, actor: str = "service:router",
                              via: str = "outage") -> list[Emit]:
        """Hook for the outage register: the open card of this house and resource (if any) becomes
        "restoration reported" (a card already reported or closed: nothing). Call it inside the router's
        handler of the outage's restoration (same transaction)."""
        card = await uow.cards.current(resource, public_house_key(house_key) or house_key)
        if card is None or card.state != OPEN.value:
            return []
        return [await self._report(card, actor, at, via, uow)]

    async def report_restored_in_district(self, uow: Any, district_id: str, resource: str, at: datetime,
                                          actor: str = "service:router", via: str = "outage") -> list[Emit]:
        """The same for an outage registered for a whole district: every open card of it and the resource."""
        return [await self._report(card, actor, at, via, uow)
                for card in await uow.cards.open_in_district(district_id, resource)]

    async def _report(self, card: Card, actor: str, at: datetime, via: str, uow: Any,
                      subject: str | None = None) -> Emit:
        msg: Message = uow.message
        version = card.version
        after = replace(card, state=REPORTED.value, version=version + 1, reported_at=at, reported_by=actor,
                        reported_via=via)
        if via == "report":
            after.log = [*card.log, self._log(msg, "report_restoration", "applied", None, actor, subject, at)]
        await uow.cards.save(after, version)
        return Emit(ControlCardRestorationReported(card_id=uuid.UUID(card.card_id), reported_at=at, reported_by=actor,
                                                   via=via, cause_event_id=msg.id), key=_key(card.card_id))

    @staticmethod
    def _log(msg: Message, action: str, outcome: str, code: str | None, actor: str, subject: str | None,
             at: datetime) -> dict[str, Any]:
        return {"event_id": str(msg.id), "action": action, "outcome": outcome, "code": code, "actor": actor,
                "actor_subject": subject, "via": msg.source, "at": at}

    async def on_action(self, action: ControlCardActionBase, uow: Any) -> list[Any]:
        name = "confirm_restoration" if isinstance(action, ControlCardRestorationConfirm) else "report_restoration"
        now = self.clock()
        card = await uow.cards.load(str(action.card_id))
        if card is None:
            return [Emit(AppealTransitionRejected(appeal_id=action.key, action=name, status=None, code="unknown_card",
                                                  cause_event_id=uow.message.id), key=action.key)]
        if any(x["event_id"] == str(uow.message.id) for x in card.log):
            return []  # applied before (a redelivery after its marker was lost cannot double it)
        code = may_confirm(card, action.actor) if name == "confirm_restoration" else may_report(card, action.actor)
        if code is not None:
            version = card.version
            after = replace(card, version=version + 1,
                            log=[*card.log, self._log(uow.message, name, "refused", code, action.actor,
                                                      action.actor_subject, now)])
            await uow.cards.save(after, version)
            return [Emit(AppealTransitionRejected(appeal_id=action.key, action=name, status=None, code=code,
                                                  detail=f"card state {card.state}", cause_event_id=uow.message.id),
                         key=action.key)]
        if isinstance(action, ControlCardRestorationReport):
            return [await self._report(card, action.actor, now, "report", uow, action.actor_subject)]
        assert isinstance(action, ControlCardRestorationConfirm)
        version = card.version
        after = replace(card, state=CLOSED.value, version=version + 1, closed_at=now, confirmed_by=action.actor,
                        confirmed_subject=action.actor_subject, method=action.method.value,
                        log=[*card.log, self._log(uow.message, name, "applied", None, action.actor,
                                                  action.actor_subject, now)])
        await uow.cards.save(after, version)
        return [Emit(ControlCardClosed(
            card_id=action.card_id, house_key=card.house_key, resource=Category(card.resource),
            district_id=card.district_id, party_id=card.party_id, opened_at=card.opened_at,
            target_at=card.target_at, closed_at=now, confirmed_by=action.actor,
            method=ConfirmationMethod(action.method), appeals=card.appeals, within_target=now <= card.target_at,
            cause_event_id=uow.message.id), key=action.key)]
