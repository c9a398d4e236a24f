"""The analytics service on the real broker and database: lifecycle events in, exact figures out,
once each however often they are delivered; the CSV carries no personal data."""

from __future__ import annotations

import asyncio
import csv
import json
import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools import samples
from tests.support.engine import owned
from tests.support.http import get_json, request
from tests.support.kafka import committed
from tests.support.services import served, service_settings
from zhkh_contracts import (
    Address,
    AppealAnswered,
    AppealAssigned,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    AssignmentCause,
    Category,
    Channel,
    DeadlineAlert,
    DeadlinePlanned,
    Envelope,
    EventData,
    PartyKind,
    Topics,
    to_kafka,
)

pytestmark = pytest.mark.integration
LENINA = samples.DEMO_HOUSE_GUID  # "г. Пермь, ул. Ленина, д. 10"
OKTYABRYA = uuid.UUID("7b3c9d10-2e4f-4a6b-8c0d-1e2f3a4b5c6d")
MIRA_TEXT = "г. Пермь, ул. Мира, д. 1, кв. 7"  # no FIAS GUID: the house key comes from the text
NAME, PHONE_RAW, PHONE, EMAIL = "Иванова Мария Петровна", "8 (912) 345-67-89", "+79123456789", "ivanova.demo@example.ru"
T = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)


@dataclass
class Scenario:
    """Appeals and the lifecycle events of each, in the order the services would publish them."""

    events: list[Envelope[Any]] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)
    seq: int = 0
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per appeal: ids, current party, status and version (for the events that follow ``appeal``)."""

    def appeal(self, name: str, channel: Channel, category: Category, registered_at: datetime, *,
               fias: uuid.UUID | None = LENINA, address: str = "г. Пермь, ул. Ленина, д. 10",
               party: str = "uk-zarechye", kind: PartyKind = PartyKind.MANAGING_ORGANISATION,
               district: str | None = "d-leninsky", due: datetime | None = None, answered_after_h: float | None = None,
               statuses: tuple[AppealStatus, ...] = (), overdue_alert: bool = False) -> uuid.UUID:
        from intake.classifier import Classifier
        from intake.service import build_appeal, prepare

        self.seq += 1
        number = f"ZH-2026-{9000000 + self.seq:07d}"
        raw = samples.raw_submission(channel=channel, category=category, source_id=f"an-{uuid.uuid4()}",
                                     phone=PHONE_RAW,
                                     text=f"{NAME} пишет: в квартире 15 нет тепла, телефон {PHONE_RAW}")
        raw = raw.model_copy(update={"address": Address(fias_house_guid=fias, text=address, apartment="15")})
        a = build_appeal(prepare(raw), uuid.uuid4(), number, registered_at, Classifier())
        aid, cid = a.appeal_id, uuid.uuid4()
        self.numbers[name] = number

        def ev(data: EventData, at: datetime) -> None:
            self.events.append(
                owned(data, appeal_id=str(aid), correlation_id=cid, occurred_at=at))

        ev(AppealRegistered(appeal=a), registered_at)
        assigned_at = registered_at + timedelta(minutes=1)
        ev(AppealAssigned(appeal_id=aid, registration_number=number, party_id=party, party_kind=kind, reason="r",
                          assigned_at=assigned_at, district_id=district), assigned_at)
        ev(AppealStatusChanged(appeal_id=aid, registration_number=number, from_status=AppealStatus.REGISTERED,
                               to_status=AppealStatus.ASSIGNED, action="assign", party_id=party, version=1,
                               changed_at=assigned_at), assigned_at)
        version, current = 1, AppealStatus.ASSIGNED
        if due is not None:
            ev(DeadlinePlanned(appeal_id=aid, registration_number=number, party_id=party, regime="pp416_written",
                               due_at=due, party_timezone="Asia/Yekaterinburg", generation=1, reason="assigned"),
               assigned_at)
            if overdue_alert:
                ev(DeadlineAlert(appeal_id=aid, registration_number=number, party_id=party, threshold="80%", due_at=due,
                                 alert_at=due - timedelta(hours=1), generation=1), due - timedelta(hours=1))
                ev(DeadlineAlert(appeal_id=aid, registration_number=number, party_id=party, threshold="overdue",
                                 due_at=due, alert_at=due, generation=1), due)
        if answered_after_h is not None:
            at = registered_at + timedelta(hours=answered_after_h)
            ev(AppealAnswered(appeal_id=aid, registration_number=number, party_id=party, text="Ответ исполнителя",
                              answered_at=at), at)
        for s in statuses:
            version += 1
            ev(AppealStatusChanged(appeal_id=aid, registration_number=number, from_status=current, to_status=s,
                                   action="x", party_id=party, version=version, changed_at=T), T)
            current = s
        self.state[name] = {"aid": aid, "cid": cid, "number": number, "party": party, "status": current,
                            "version": version}
        return aid

    def _ev(self, name: str, data: EventData, at: datetime) -> None:
        st = self.state[name]
        self.events.append(owned(data, appeal_id=str(st["aid"]), correlation_id=st["cid"], occurred_at=at))

    def move(self, name: str, to: AppealStatus, action: str, at: datetime) -> None:
        """An AppealStatusChanged as the router makes it (the party is the appeal's current one)."""
        st = self.state[name]
        st["version"] += 1
        self._ev(name, AppealStatusChanged(appeal_id=st["aid"], registration_number=st["number"],
                                           from_status=st["status"], to_status=to, action=action,
                                           party_id=st["party"], version=st["version"], changed_at=at), at)
        st["status"] = to

    def reassign(self, name: str, party: str, cause: AssignmentCause, action: str, at: datetime,
                 kind: PartyKind = PartyKind.MANAGING_ORGANISATION) -> None:
        """A re-routing, escalation or fallback: AppealAssigned and AppealStatusChanged of one transition."""
        st = self.state[name]
        self._ev(name, AppealAssigned(appeal_id=st["aid"], registration_number=st["number"], party_id=party,
                                      party_kind=kind, reason="r", assigned_at=at, cause=cause,
                                      previous_party_id=st["party"], district_id="d-leninsky"), at)
        st["party"] = party
        self.move(name, AppealStatus.ASSIGNED, action, at)

    def answer(self, name: str, at: datetime) -> None:
        st = self.state[name]
        self._ev(name, AppealAnswered(appeal_id=st["aid"], registration_number=st["number"], party_id=st["party"],
                                      text="Ответ исполнителя", answered_at=at), at)
        self.move(name, AppealStatus.ANSWERED, "answer", at)


def scenario() -> Scenario:
    """Seven appeals over three houses, five channels, three districts (one unknown).

    Answered after 2, 5, 30 and 50 hours: median 17.5. Overdue: C (overdue alert, answered late) and
    D (deadline passed, still in progress); F's deadline passed too, but it was withdrawn.
    """
    s, A = Scenario(), AppealStatus
    s.appeal("A", Channel.SITE_FORM, Category.HOT_WATER, T, due=T + timedelta(days=14), answered_after_h=2,
             statuses=(A.IN_PROGRESS, A.ANSWERED, A.CLOSED))
    s.appeal("B", Channel.HOTLINE, Category.HEATING, T + timedelta(hours=1), due=T + timedelta(days=14),
             answered_after_h=5, statuses=(A.ANSWERED,))
    s.appeal("C", Channel.GIS, Category.HEATING, T + timedelta(days=1), due=T + timedelta(days=1, hours=3),
             overdue_alert=True, answered_after_h=30, statuses=(A.IN_PROGRESS, A.ANSWERED))
    s.appeal("D", Channel.CHATBOT, Category.LIFTS, T + timedelta(days=2), fias=None, address=MIRA_TEXT, party="uk-mira",
             district="d-sverdlovsky", due=T + timedelta(days=8), statuses=(A.IN_PROGRESS,))
    s.appeal("E", Channel.HOTLINE, Category.LIFTS, T + timedelta(days=3), fias=None,
             address="г. Пермь, ул. Мира, д. 1, кв. 12",
             party="fallback:operators", kind=PartyKind.FALLBACK_QUEUE, district=None,
             due=datetime.now(UTC) + timedelta(days=30))
    s.appeal("F", Channel.SITE_FORM, Category.BILLING, T + timedelta(days=4), fias=OKTYABRYA,
             address="г. Пермь, ул. 25 Октября, д. 3", party="uk-tsentr", district="d-sverdlovsky",
             due=T + timedelta(days=8), statuses=(A.WITHDRAWN,))
    s.appeal("G", Channel.PAPER, Category.OTHER, T + timedelta(days=5), fias=None, address="г. Пермь, ул. Мира, д. 1",
             party="uk-mira", district="d-sverdlovsky", due=T + timedelta(days=19), answered_after_h=50,
             statuses=(A.ANSWERED,))
    return s


MIRA_KEY = "addr:г пермь ул мира д 1"
EXPECTED: dict[str, Any] = {
    "total": 7,
    "by_channel": {"hotline": 2, "site_form": 2, "chatbot": 1, "gis": 1, "paper": 1},
    "by_category": {"heating": 2, "lifts": 2, "billing": 1, "hot_water": 1, "other": 1},
    "by_party": {"uk-zarechye": 3, "uk-mira": 2, "fallback:operators": 1, "uk-tsentr": 1},
    "by_district": {"d-sverdlovsky": 3, "d-leninsky": 3, "unknown": 1},
    "by_status": {"answered": 3, "assigned": 1, "closed": 1, "in_progress": 1, "withdrawn": 1},
    "overdue": {"count": 2, "share": 0.2857},
    "answered": {"count": 4, "median_hours_to_answer": 17.5},
    "top_addresses": [
        {"house_key": MIRA_KEY, "address": "г. Пермь, ул. Мира, д. 1", "count": 3},
        {"house_key": f"fias:{LENINA}", "address": "г. Пермь, ул. Ленина, д. 10", "count": 3},
        {"house_key": f"fias:{OKTYABRYA}", "address": "г. Пермь, ул. 25 Октября, д. 3", "count": 1},
    ],
}


async def publish(bootstrap: str, topic: str, events: list[Envelope[Any]]) -> None:
    """One producer, in order (events of one appeal share a key, so a partition, so an order)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for env in events:
            key, value, headers = to_kafka(env)
            await producer.send(topic, value=value, key=key, headers=[(k, v.encode()) for k, v in headers.items()])
        await producer.flush()
    finally:
        await producer.stop()


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in EXPECTED}


async def poll(url: str, done: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
               token: str | None = None) -> dict[str, Any]:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(get_json, url, token)
        assert status == 200, body
        last = body
        if done(body):
            return body
        await asyncio.sleep(0.25)
    raise AssertionError(f"summary did not reach the expected figures in {timeout}s; last: {last}")


async def caught_up(bootstrap: str, group: str, topic: str, timeout: float = 30.0) -> None:
    """Until the group's committed offsets reach the end of every partition of the topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert parts, topic
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    deadline = time.monotonic() + timeout
    while True:
        behind = [tp for tp in parts if (await committed(bootstrap, group, topic, tp.partition) or 0) < ends[tp]]
        if not behind:
            return
        assert time.monotonic() < deadline, f"{group} still behind on {behind}"
        await asyncio.sleep(0.25)


def settings_for(infra, prefix, issuer=None):  # noqa: ANN001, ANN201
    from analytics.settings import AnalyticsSettings

    return service_settings(AnalyticsSettings, infra, prefix, report_timezone="Asia/Yekaterinburg",
                            auth_issuer=issuer.url if issuer else "")


async def test_summary_csv_and_redelivery(infra, prefix, mongo_db, issuer):
    from analytics.main import create_app

    s = scenario()
    topic = Topics(prefix).lifecycle
    await publish(infra.bootstrap, topic, s.events)
    tok = issuer.token("analyst-1", "analyst")
    async with served(create_app(settings_for(infra, prefix, issuer))) as base:
        api = f"{base}/api/v1/analytics"

        # who may read: analysts, inspectors, admins; nobody anonymously, not a party nor an operator
        for who, token, want in (("anonymous", None, 401), ("garbage", "not-a-jwt", 401),
                                 ("party", issuer.token("p", "party", party_ids=["uk-tsentr"]), 403),
                                 ("operator", issuer.token("o", "operator"), 403),
                                 ("inspector", issuer.token("i", "inspector"), 200),
                                 ("admin", issuer.token("a", "admin"), 200)):
            for path in ("/summary", "/houses?house_key=x", "/export.csv"):
                status, body = await asyncio.to_thread(request, "GET", f"{api}{path}", token=token)
                assert status == want, (who, path, status)
                if want != 200:
                    problem = json.loads(body)
                    assert problem["status"] == want and problem["code"] in ("unauthenticated", "invalid_token",
                                                                             "forbidden"), (who, problem)

        summary = await poll(f"{api}/summary", lambda b: figures(b) == EXPECTED, token=tok)
        assert summary["period"] == {"from": None, "to": None, "timezone": "Asia/Yekaterinburg", "district": None,
                                     "channel": None}

        # every event delivered again (same ce_id), then one new appeal as a marker that all were read
        await publish(infra.bootstrap, topic, s.events)
        marker = Scenario(seq=100)
        marker.appeal("H", Channel.RECEPTION, Category.WASTE, T + timedelta(days=6), fias=OKTYABRYA,
                      address="г. Пермь, ул. 25 Октября, д. 3", party="uk-tsentr", district="d-sverdlovsky")
        await publish(infra.bootstrap, topic, marker.events)
        await caught_up(infra.bootstrap, f"{prefix}.analytics", topic)  # every redelivered record was consumed
        again = await poll(f"{api}/summary", lambda b: b["total"] == 8, token=tok)
        assert again["by_channel"] == {**EXPECTED["by_channel"], "reception": 1}
        assert again["overdue"]["count"] == 2 and again["answered"] == EXPECTED["answered"]
        assert again["top_addresses"][2] == {"house_key": f"fias:{OKTYABRYA}",
                                             "address": "г. Пермь, ул. 25 Октября, д. 3", "count": 2}
        assert await mongo_db["analytics_appeals"].count_documents({}) == 8
        processed = await mongo_db["processed_events"].count_documents({"consumer": "analytics"})
        assert processed == len(s.events) + len(marker.events)  # once each (the 80% alert's marker too: it is handled)

        # filters: channel, district (and the unknown one), days in the report zone
        _, hot = await asyncio.to_thread(get_json, f"{api}/summary?channel=hotline", tok)
        assert (hot["total"], hot["by_category"], hot["by_district"]) == (2, {"heating": 1, "lifts": 1},
                                                                           {"d-leninsky": 1, "unknown": 1})
        _, sv = await asyncio.to_thread(get_json, f"{api}/summary?district=d-sverdlovsky", tok)
        assert (sv["total"], sv["overdue"]["count"], sv["answered"]["median_hours_to_answer"]) == (4, 1, 50.0)
        _, unk = await asyncio.to_thread(get_json, f"{api}/summary?district=unknown", tok)
        assert unk["by_party"] == {"fallback:operators": 1}
        # 12 Jan 14:00 and 15:00 in Yekaterinburg (UTC+5) are A and B; C is 13 Jan
        _, day = await asyncio.to_thread(get_json, f"{api}/summary?from=2026-01-12&to=2026-01-12", tok)
        assert (day["total"], day["period"]["from"]) == (2, "2026-01-12")
        _, week = await asyncio.to_thread(get_json, f"{api}/summary?from=2026-01-13&to=2026-01-15", tok)
        assert week["total"] == 3 and week["overdue"] == {"count": 2, "share": 0.6667}
        status, bad = await asyncio.to_thread(get_json, f"{api}/summary?from=soon&channel=pigeon", tok)
        assert (status, bad["code"], bad["fields"]) == (400, "invalid_data", ["from", "channel"])

        # one house
        _, house = await asyncio.to_thread(get_json, f"{api}/houses?house_key={quote(MIRA_KEY)}", tok)
        assert (house["total"], house["address"], house["overdue"]["count"]) == (3, "г. Пермь, ул. Мира, д. 1", 1)
        assert [a["registration_number"] for a in house["appeals"]] == [s.numbers[n] for n in ("G", "E", "D")]
        status, missing = await asyncio.to_thread(get_json, f"{api}/houses", tok)
        assert (status, missing["code"], missing["fields"]) == (422, "invalid_data", ["house_key"])

        # CSV
        status, raw = await asyncio.to_thread(request, "GET", f"{api}/export.csv", token=tok)
        assert status == 200 and raw.startswith(b"\xef\xbb\xbf")
        text = raw.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert list(rows[0]) == ["registration_number", "channel", "category", "emergency", "party_id", "district_id",
                                 "house_key", "address", "registered_at", "due_at", "answered_at", "status", "overdue"]
        assert len(rows) == 8 and text.count("\r\n") == 9
        by_number = {r["registration_number"]: r for r in rows}
        c = by_number[s.numbers["C"]]
        assert (c["channel"], c["status"], c["overdue"], c["district_id"]) == ("gis", "answered", "true", "d-leninsky")
        assert c["registered_at"] == "2026-01-13T09:00:00+00:00" and c["answered_at"] == "2026-01-14T15:00:00+00:00"
        assert by_number[s.numbers["E"]]["district_id"] == "" and by_number[s.numbers["F"]]["overdue"] == "false"
        assert sum(r["overdue"] == "true" for r in rows) == again["overdue"]["count"]
        assert {r["address"] for r in rows} == {"г. Пермь, ул. Ленина, д. 10", "г. Пермь, ул. Мира, д. 1",
                                                "г. Пермь, ул. 25 Октября, д. 3"}
        for personal in (NAME, "Иванова", PHONE, "345-67-89", EMAIL, "example.ru", "кв", "квартире", "нет тепла"):
            assert personal not in text, personal
        status, only = await asyncio.to_thread(request, "GET", f"{api}/export.csv?channel=gis", token=tok)
        assert len(list(csv.DictReader(io.StringIO(only.decode("utf-8-sig"))))) == 1

    # nothing personal in the read model at all
    docs = await mongo_db["analytics_appeals"].find({}).to_list()
    flat = repr(docs)
    for personal in (NAME, PHONE, EMAIL, "кв", "нет тепла"):
        assert personal not in flat, personal


# ---- party scorecards ----------------------------------------------------------------------------

FEB = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)


def scorecard_scenario() -> Scenario:
    """January (Yekaterinburg): A answered by uk-zarechye after 2 h and rated satisfied; B bounced by
    uk-zarechye ("not ours") to uk-mira, answered after 20 h, rated unsatisfied (reopened), answered
    again; C overdue at uk-mira and escalated to adm-perm. February: D answered by uk-zarechye after
    6 h and rated satisfied; E bounced by uk-zarechye to the fallback queue (no other party)."""
    s, A, h = Scenario(seq=200), AppealStatus, timedelta(hours=1)
    s.appeal("A", Channel.SITE_FORM, Category.HOT_WATER, T, due=T + timedelta(days=14), answered_after_h=2,
             statuses=(A.ANSWERED,))
    s.move("A", A.CLOSED, "rate", T + 3 * h)
    s.appeal("B", Channel.HOTLINE, Category.HEATING, T + h, due=T + timedelta(days=14))
    s.reassign("B", "uk-mira", AssignmentCause.REROUTE, "reject_not_responsible", T + 2 * h)
    s.answer("B", T + 21 * h)
    s.move("B", A.REOPENED, "rate", T + 22 * h)
    s.answer("B", T + 41 * h)
    s.appeal("C", Channel.GIS, Category.HEATING, T + 2 * h, party="uk-mira", due=T + timedelta(days=1),
             overdue_alert=True, statuses=(A.IN_PROGRESS,))
    s.reassign("C", "adm-perm", AssignmentCause.ESCALATION, "deadline_expired", T + timedelta(days=1, hours=1),
               kind=PartyKind.DISTRICT_ADMINISTRATION)
    s.appeal("D", Channel.HOTLINE, Category.LIFTS, FEB, due=FEB + timedelta(days=14), answered_after_h=6,
             statuses=(A.ANSWERED,))
    s.move("D", A.CLOSED, "rate", FEB + 7 * h)
    s.appeal("E", Channel.HOTLINE, Category.LIFTS, FEB + h)
    s.reassign("E", "fallback:operators", AssignmentCause.FALLBACK, "reject_not_responsible", FEB + 2 * h,
               kind=PartyKind.FALLBACK_QUEUE)
    return s


def card(month: str, party: str, assigned: int, answered: int, median: float | None, current: int, overdue: int,
         bounces: int = 0, escalations: int = 0, reopened: int = 0, satisfied: int = 0,
         unsatisfied: int = 0) -> dict[str, Any]:
    rated = satisfied + unsatisfied
    return {"month": month, "party_id": party, "assigned": assigned, "answered": answered,
            "median_hours_to_answer": median, "current": current, "overdue": overdue,
            "overdue_share": round(overdue / current, 4) if current else None, "bounces": bounces,
            "escalations": escalations, "reopened": reopened,
            "reopen_rate": round(reopened / answered, 4) if answered else None, "satisfied": satisfied,
            "unsatisfied": unsatisfied, "satisfaction": round(satisfied / rated, 4) if rated else None}


CARDS = [
    card("2026-01", "adm-perm", 1, 0, None, 1, 1),
    card("2026-01", "uk-mira", 2, 1, 20.0, 1, 0, escalations=1, reopened=1, unsatisfied=1),
    card("2026-01", "uk-zarechye", 2, 1, 2.0, 1, 0, bounces=1, satisfied=1),
    card("2026-02", "fallback:operators", 1, 0, None, 1, 0),
    card("2026-02", "uk-zarechye", 2, 1, 6.0, 1, 0, bounces=1, satisfied=1),
]


async def test_party_scorecards_csv_roles_and_redelivery(infra, prefix, mongo_db, issuer):
    from analytics.main import create_app

    s = scorecard_scenario()
    topic = Topics(prefix).lifecycle
    await publish(infra.bootstrap, topic, s.events)
    tok = issuer.token("analyst-1", "analyst")
    async with served(create_app(settings_for(infra, prefix, issuer))) as base:
        api = f"{base}/api/v1/analytics"
        for who, token, want in (("anonymous", None, 401),
                                 ("party", issuer.token("p", "party", party_ids=["uk-mira"]), 403),
                                 ("operator", issuer.token("o", "operator"), 403),
                                 ("inspector", issuer.token("i", "inspector"), 200),
                                 ("admin", issuer.token("a", "admin"), 200)):
            for path in ("/parties", "/parties.csv"):
                status, body = await asyncio.to_thread(request, "GET", f"{api}{path}", token=token)
                assert status == want, (who, path, status)
                if want != 200:
                    assert json.loads(body)["status"] == want

        body = await poll(f"{api}/parties", lambda b: b["parties"] == CARDS, token=tok)
        assert body["period"]["timezone"] == "Asia/Yekaterinburg"

        # filters as on the summary: February only; one channel
        _, feb = await asyncio.to_thread(get_json, f"{api}/parties?from=2026-02-01", tok)
        assert feb["parties"] == CARDS[3:]
        _, gis = await asyncio.to_thread(get_json, f"{api}/parties?channel=gis", tok)
        assert gis["parties"] == [card("2026-01", "adm-perm", 1, 0, None, 1, 1),
                                  card("2026-01", "uk-mira", 1, 0, None, 0, 0, escalations=1)]
        status, bad = await asyncio.to_thread(get_json, f"{api}/parties?to=never", tok)
        assert (status, bad["code"], bad["fields"]) == (400, "invalid_data", ["to"])

        # CSV: BOM, header, one row per party and month, empty cells for null figures
        status, raw = await asyncio.to_thread(request, "GET", f"{api}/parties.csv", token=tok)
        assert status == 200 and raw.startswith(b"\xef\xbb\xbf")
        text = raw.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert list(rows[0]) == ["month", "party_id", "assigned", "answered", "median_hours_to_answer", "current",
                                 "overdue", "overdue_share", "bounces", "escalations", "reopened", "reopen_rate",
                                 "satisfied", "unsatisfied", "satisfaction"]
        assert rows == [{k: "" if v is None else str(v) for k, v in c.items()} for c in CARDS]
        assert text.count("\r\n") == len(CARDS) + 1

        # every event again (same ids), then a March appeal as a marker that all were read
        await publish(infra.bootstrap, topic, s.events)
        marker = Scenario(seq=300)
        marker.appeal("M", Channel.RECEPTION, Category.WASTE, datetime(2026, 3, 2, 9, tzinfo=UTC), party="uk-tsentr")
        await publish(infra.bootstrap, topic, marker.events)
        await caught_up(infra.bootstrap, f"{prefix}.analytics", topic)
        again = await poll(f"{api}/parties", lambda b: len(b["parties"]) == len(CARDS) + 1, token=tok)
        assert again["parties"] == [*CARDS, card("2026-03", "uk-tsentr", 1, 0, None, 1, 0)]
        processed = await mongo_db["processed_events"].count_documents({"consumer": "analytics"})
        assert processed == len(s.events) + len(marker.events)
