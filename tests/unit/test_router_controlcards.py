"""Per-house control cards: the decisions (season, same-day target, open or join, who may confirm) and the
router's handlers with the cards, through the engine on the in-memory unit of work (no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from devtools import samples
from intake.classifier import Classifier
from intake.service import build_appeal, prepare
from router.controlcards import (
    Card,
    CardPolicy,
    ControlCards,
    MemoryCardsUoW,
    Season,
    may_confirm,
    may_report,
    on_appeal,
    same_day_target,
)
from router.directory import parse
from router.rules import RoutingRules
from router.service import RouterService
from router.settings import RouterSettings
from tests.support.engine import envelope, events, make_engine, rec
from zhkh_contracts import (
    Address,
    AppealAnswered,
    AppealAssigned,
    AppealJoinedIncident,
    AppealRegistered,
    AppealTransitionRejected,
    Category,
    ControlCardAppealJoined,
    ControlCardClosed,
    ControlCardOpened,
    ControlCardRestorationConfirm,
    ControlCardRestorationReport,
    ControlCardRestorationReported,
    PartyAccepted,
    PartyAnswered,
    PartyRejectedNotResponsible,
)
from zhkh_runtime.engine import MemoryTracking

SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "sample_directory"
DIRECTORY = parse(sorted(SAMPLE.glob("*.csv")))
CLASSIFIER = Classifier()
EKB, MSK = ZoneInfo("Asia/Yekaterinburg"), ZoneInfo("Europe/Moscow")
IN_SEASON = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # 10:00 in Perm (Asia/Yekaterinburg, UTC+5)


# ---- decisions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "inside"), [
    (date(2026, 9, 14), False), (date(2026, 9, 15), True), (date(2026, 12, 31), True), (date(2027, 1, 1), True),
    (date(2027, 5, 15), True), (date(2027, 5, 16), False), (date(2027, 7, 1), False),
])
def test_the_heating_season_wraps_the_new_year_both_bounds_inclusive(day: date, inside: bool):
    assert Season.parse("09-15", "05-15").contains(day) is inside


def test_a_season_within_one_year_and_bad_bounds():
    summer = Season.parse("06-01", "08-31")
    assert summer.contains(date(2026, 6, 1)) and summer.contains(date(2026, 8, 31))
    assert not summer.contains(date(2026, 9, 1)) and not summer.contains(date(2026, 5, 31))
    for bad in ("13-01", "02-30", "0915", "x"):
        with pytest.raises(ValidationError):
            RouterSettings(heating_season_start=bad)


def test_the_season_is_judged_on_the_local_day_of_the_district():
    policy = CardPolicy(season=Season.parse("09-15", "05-15"))
    at = datetime(2026, 9, 14, 20, 30, tzinfo=UTC)  # 01:30 on 15 September in Perm, 23:30 on 14 September in Moscow
    assert policy.in_season(at, EKB) and not policy.in_season(at, MSK)
    assert CardPolicy(outside_season=True).in_season(datetime(2026, 7, 1, tzinfo=UTC), MSK)


def test_same_day_target_is_the_end_of_the_opening_day_in_the_districts_zone():
    at = datetime(2026, 11, 24, 20, 30, tzinfo=UTC)  # 25 Nov 01:30 in Perm; 24 Nov 23:30 in Moscow
    assert same_day_target(at, EKB) == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)  # 26 Nov 00:00 +05
    assert same_day_target(at, MSK) == datetime(2026, 11, 24, 21, 0, tzinfo=UTC)  # 25 Nov 00:00 +03
    # a day that is 23 hours long (summer time starts in Berlin on 29 March 2026)
    berlin = ZoneInfo("Europe/Berlin")
    assert same_day_target(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), berlin) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


def test_a_target_hour_applies_to_the_same_day_before_it_and_the_next_day_after_it():
    morning = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # 10:00 in Perm
    evening = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # 21:00 in Perm
    assert same_day_target(morning, EKB, 20) == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    assert same_day_target(evening, EKB, 20) == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    policy = CardPolicy(target_hours={"d-leninsky": 18, "*": 22})
    assert (policy.target_hour("d-leninsky"), policy.target_hour("d-other"), policy.target_hour(None)) == (18, 22, 22)
    assert CardPolicy().target_hour("d-leninsky") == 24
    with pytest.raises(ValidationError):
        RouterSettings(control_card_target_hours={"d-leninsky": 25})


def test_the_districts_zone_is_its_administrations():
    policy = CardPolicy(default_timezone="Europe/Samara")
    assert policy.timezone(DIRECTORY, "d-leninsky") == "Asia/Yekaterinburg"
    assert policy.timezone(DIRECTORY, None) == policy.timezone(DIRECTORY, "d-unknown") == "Europe/Samara"


def _card(**kw: Any) -> Card:
    base = dict(card_id=str(uuid.uuid4()), house_key="fias:x", resource="heating", district_id="d-leninsky",
                party_id="tgk-teplo", timezone="Asia/Yekaterinburg", opened_at=IN_SEASON,
                target_at=same_day_target(IN_SEASON, EKB), appeal_ids=["a1"])
    return Card(**{**base, **kw})


def test_open_or_join_or_nothing():
    policy, card = CardPolicy(), _card()
    assert on_appeal(policy, None, "a1", "heating", IN_SEASON, EKB) == "open"
    assert on_appeal(policy, card, "a2", "heating", IN_SEASON, EKB) == "join"
    assert on_appeal(policy, card, "a1", "heating", IN_SEASON, EKB) == "already_joined"
    assert on_appeal(policy, None, "a1", "sewerage", IN_SEASON, EKB) == "not_controlled"
    summer = datetime(2026, 7, 1, 5, 0, tzinfo=UTC)
    assert on_appeal(policy, None, "a1", "heating", summer, EKB) == "out_of_season"
    assert on_appeal(policy, card, "a2", "heating", summer, EKB) == "join"  # a card still open takes them in
    assert on_appeal(CardPolicy(outside_season=True), None, "a1", "heating", summer, EKB) == "open"
    assert on_appeal(CardPolicy(resources=frozenset({"heating"})), None, "a1", "gas", IN_SEASON, EKB) == "not_controlled"


def test_only_operators_inspectors_and_admins_confirm_and_only_a_card_not_closed():
    card = _card()
    for actor in ("operator:op-1", "inspector:insp-1", "admin:adm-1"):
        assert may_confirm(card, actor) is None
        assert may_confirm(_card(state="restoration_reported"), actor) is None
        assert may_confirm(_card(state="closed"), actor) == "already_closed"
    for actor in ("party:tgk-teplo", "citizen:abc", "service:router", "analyst:an-1", "inspectorx:y"):
        assert may_confirm(card, actor) == "forbidden"
    assert may_report(card, "party:tgk-teplo") is None and may_report(card, "inspector:i") is None
    assert may_report(card, "party:vodokanal") == "forbidden"
    assert may_report(_card(state="restoration_reported"), "party:tgk-teplo") == "already_reported"
    assert may_report(_card(state="closed"), "party:tgk-teplo") == "already_closed"


# ---- the router's handlers with the cards --------------------------------------------------------


class Router:
    def __init__(self, now: datetime = IN_SEASON, policy: CardPolicy | None = None) -> None:
        self.now = now
        self.uow = MemoryCardsUoW(DIRECTORY)
        service = RouterService(RoutingRules.load(), "fallback:ops", clock=lambda: self.now)
        self.cards = ControlCards(policy or CardPolicy(), clock=lambda: self.now)
        self.engine, self.pub = make_engine("router", self.cards.extend(service.handlers()), MemoryTracking(self.uow))
        self.numbers = iter(range(1, 1000))

    async def feed(self, *data: Any, key: str | None = None, event_id: uuid.UUID | None = None) -> list[Any]:
        before = len(self.pub.records)
        await self.engine.process([rec(envelope(d, key=key, **({"event_id": event_id} if event_id else {})))
                                   for d in data])
        return events(self.pub)[before:]

    def appeal(self, category: Category = Category.HEATING, address: Address | None = None) -> Any:
        raw = samples.raw_submission(category=category).model_copy(update={"received_at": self.now})
        if address is not None:
            raw = raw.model_copy(update={"address": address})
        return build_appeal(prepare(raw), uuid.uuid4(), f"ZH-2026-{next(self.numbers):07d}", self.now, CLASSIFIER)

    async def register(self, category: Category = Category.HEATING, address: Address | None = None) -> tuple[Any, list[Any]]:
        a = self.appeal(category, address)
        return a, await self.feed(AppealRegistered(appeal=a))

    def card(self, card_id: uuid.UUID | str) -> Card:
        return self.uow.cards.cards[str(card_id)]

    async def act(self, action: Any) -> list[Any]:
        return await self.feed(action, key=action.key)


def _only(out: list[Any], cls: type) -> Any:
    found = [e for e in out if isinstance(e, cls)]
    assert len(found) == 1, out
    return found[0]


async def test_the_first_appeal_opens_a_card_and_later_ones_join_it_counted_once():
    r = Router()
    first, out = await r.register()
    opened = _only(out, ControlCardOpened)
    assert (opened.resource, opened.district_id, opened.timezone, opened.first_appeal_id) == (
        Category.HEATING, "d-leninsky", "Asia/Yekaterinburg", first.appeal_id)
    assert opened.house_key == first.house_key and opened.party_id
    assert opened.target_at == datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # the end of 24 Nov in Perm
    second, out = await r.register()
    joined = _only(out, ControlCardAppealJoined)
    assert (joined.card_id, joined.member_appeal_id, joined.appeals, joined.state.value) == (
        opened.card_id, second.appeal_id, 2, "open")
    # the same registration replayed with another event id, and the same event redelivered: nothing more
    assert await r.feed(AppealRegistered(appeal=second)) == []
    eid = uuid.uuid4()
    third = r.appeal()
    out = await r.feed(AppealRegistered(appeal=third), event_id=eid)
    assert _only(out, ControlCardAppealJoined).appeals == 3
    again = await r.feed(AppealRegistered(appeal=third), event_id=eid)
    assert again == out  # a redelivery republishes the first outcome; nothing is counted again
    assert r.card(opened.card_id).appeals == 3 and len(r.uow.cards.cards) == 1


async def test_other_resources_houses_and_seasons():
    r = Router()
    _, heat = await r.register()
    _, hot = await r.register(Category.HOT_WATER)
    assert _only(heat, ControlCardOpened).card_id != _only(hot, ControlCardOpened).card_id
    _, other_house = await r.register(address=Address(text="г. Пермь, ул. Мира, д. 7", apartment="3"))
    assert _only(other_house, ControlCardOpened).district_id == "d-dzerzhinsky"
    _, sewer = await r.register(Category.SEWERAGE)
    assert not [e for e in sewer if isinstance(e, ControlCardOpened | ControlCardAppealJoined)]
    summer = Router(now=datetime(2026, 7, 1, 5, 0, tzinfo=UTC))
    _, out = await summer.register()
    assert not [e for e in out if isinstance(e, ControlCardOpened)] and summer.uow.cards.cards == {}
    always = Router(now=datetime(2026, 7, 1, 5, 0, tzinfo=UTC), policy=CardPolicy(outside_season=True))
    assert _only((await always.register())[1], ControlCardOpened)


async def test_an_answer_reports_restoration_a_new_appeal_reopens_and_only_staff_close():
    r = Router()
    a, out = await r.register()
    card_id = _only(out, ControlCardOpened).card_id
    party = r.card(card_id).party_id
    await r.act(PartyAccepted(appeal_id=a.appeal_id, actor=f"party:{party}"))
    out = await r.act(PartyAnswered(appeal_id=a.appeal_id, actor=f"party:{party}", text="Подали"))
    _only(out, AppealAnswered)
    reported = _only(out, ControlCardRestorationReported)  # in the same transaction as the answer
    assert (reported.card_id, reported.via, reported.reported_by) == (card_id, "answer", f"party:{party}")
    assert r.card(card_id).state == "restoration_reported"
    # another appeal about the same house and resource: not restored after all
    _, out = await r.register()
    assert _only(out, ControlCardAppealJoined).state.value == "open" and r.card(card_id).reported_at is None
    # the party reports again through the API's action; another party may not
    out = await r.act(ControlCardRestorationReport(card_id=card_id, actor="party:vodokanal"))
    assert _only(out, AppealTransitionRejected).code == "forbidden"
    out = await r.act(ControlCardRestorationReport(card_id=card_id, actor=f"party:{party}", actor_subject="p-user"))
    assert _only(out, ControlCardRestorationReported).via == "report"
    # the party cannot close it; an inspector can, and says how it was checked
    out = await r.act(ControlCardRestorationConfirm(card_id=card_id, actor=f"party:{party}", method="call_back"))
    assert _only(out, AppealTransitionRejected).code == "forbidden" and r.card(card_id).state == "restoration_reported"
    r.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    out = await r.act(ControlCardRestorationConfirm(card_id=card_id, actor="inspector:insp-1", actor_subject="insp-1",
                                                    method="call_back"))
    closed = _only(out, ControlCardClosed)
    assert (closed.confirmed_by, closed.method.value, closed.appeals, closed.within_target) == (
        "inspector:insp-1", "call_back", 2, True)
    card = r.card(card_id)
    assert (card.state, card.closed_at, card.confirmed_subject) == ("closed", r.now, "insp-1")
    assert [(x["action"], x["outcome"], x["code"]) for x in card.log] == [
        ("report_restoration", "refused", "forbidden"), ("report_restoration", "applied", None),
        ("confirm_restoration", "refused", "forbidden"), ("confirm_restoration", "applied", None)]
    # closed: confirming again is refused; the next appeal opens a new card
    out = await r.act(ControlCardRestorationConfirm(card_id=card_id, actor="operator:op", method="site_visit"))
    assert _only(out, AppealTransitionRejected).code == "already_closed"
    _, out = await r.register()
    assert _only(out, ControlCardOpened).card_id != card_id


async def test_the_card_opens_when_the_resident_reported_not_when_intake_registered():
    r = Router(now=datetime(2026, 11, 24, 19, 5, tzinfo=UTC))  # 00:05 on 25 Nov in Perm
    raw = samples.raw_submission(category=Category.HEATING).model_copy(
        update={"received_at": datetime(2026, 11, 24, 18, 50, tzinfo=UTC)})  # 23:50 on 24 Nov in Perm
    a = build_appeal(prepare(raw), uuid.uuid4(), "ZH-2026-0000001", r.now, CLASSIFIER)
    opened = _only(await r.feed(AppealRegistered(appeal=a)), ControlCardOpened)
    assert opened.opened_at == raw.received_at and opened.target_at == datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


async def test_the_card_follows_its_appeal_to_the_party_that_is_responsible_but_not_up_an_escalation():
    r = Router()
    a, out = await r.register()
    card_id = _only(out, ControlCardOpened).card_id
    first = r.card(card_id).party_id
    out = await r.act(PartyRejectedNotResponsible(appeal_id=a.appeal_id, actor=f"party:{first}", reason="не наше"))
    moved = _only(out, AppealAssigned)
    assert moved.previous_party_id == first and moved.party_id != first
    card = r.card(card_id)
    assert card.party_id == moved.party_id
    assert [(x["action"], x["actor"]) for x in card.log] == [("party_changed", f"party:{first}")]
    # a party's own "not ours" on an appeal now with another party does not move the card again
    assert (await r.cards.passed_on(moved, r.uow, "party:x")) is None and r.card(card_id).party_id == moved.party_id


async def test_an_answer_to_a_whole_incident_reports_its_card_once():
    r = Router()
    a, out = await r.register()
    card_id = _only(out, ControlCardOpened).card_id
    b, _ = await r.register()
    incident = uuid.uuid4()
    for x in (a, b):
        await r.feed(AppealJoinedIncident(appeal_id=x.appeal_id, registration_number=x.registration_number,
                                          incident_id=incident))
    party = r.card(card_id).party_id
    await r.feed(PartyAccepted(incident_id=incident, actor=f"party:{party}"), key=f"incident:{incident}")
    out = await r.feed(PartyAnswered(incident_id=incident, actor=f"party:{party}", text="Подали"),
                       key=f"incident:{incident}")
    assert len([e for e in out if isinstance(e, AppealAnswered)]) == 2
    assert _only(out, ControlCardRestorationReported).card_id == card_id


async def test_an_action_on_an_unknown_card_is_refused_and_the_outage_hook_reports():
    r = Router()
    out = await r.act(ControlCardRestorationConfirm(card_id=uuid.uuid4(), actor="operator:op", method="other"))
    assert _only(out, AppealTransitionRejected).code == "unknown_card"
    a, out = await r.register()
    card_id = str(_only(out, ControlCardOpened).card_id)
    r.uow.message = type("M", (), {"id": uuid.uuid4(), "source": "/zhkh-appeals/router"})()
    hooked = await r.cards.report_restored(r.uow, a.house_key, "heating", r.now)
    assert [e.event.via for e in hooked] == ["outage"] and r.card(card_id).state == "restoration_reported"
    assert await r.cards.report_restored(r.uow, a.house_key, "heating", r.now) == []  # already reported
    # an outage of a whole district: every open card of it and the resource
    _, out = await r.register(Category.HOT_WATER)
    hot = str(_only(out, ControlCardOpened).card_id)
    _, out = await r.register(Category.HOT_WATER, Address(text="г. Пермь, ул. Мира, д. 7"))  # another district
    other = str(_only(out, ControlCardOpened).card_id)
    hooked = await r.cards.report_restored_in_district(r.uow, "d-leninsky", "hot_water", r.now)
    assert [str(e.event.card_id) for e in hooked] == [hot]
    assert (r.card(hot).state, r.card(other).state) == ("restoration_reported", "open")


def test_the_settings_come_from_the_environment_and_bad_ones_stop_the_router(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ZHKH_CONTROL_CARD_TARGET_HOURS", '{"d-leninsky": 20, "*": 22}')
    monkeypatch.setenv("ZHKH_CONTROL_CARD_RESOURCES", '["heating", "hot_water"]')
    monkeypatch.setenv("ZHKH_HEATING_SEASON_START", "10-01")
    policy = CardPolicy.of(RouterSettings())
    assert policy.resources == {"heating", "hot_water"} and policy.season == Season((10, 1), (5, 15))
    assert (policy.target_hour("d-leninsky"), policy.target_hour("d-x")) == (20, 22)
    monkeypatch.setenv("ZHKH_CONTROL_CARD_RESOURCES", '["heating", "steam"]')
    with pytest.raises(ValidationError):
        RouterSettings()
    monkeypatch.delenv("ZHKH_CONTROL_CARD_RESOURCES")
    monkeypatch.setenv("ZHKH_CONTROL_CARD_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError):
        RouterSettings()
