"""The outage register's decisions and handlers on the router's in-memory unit of work (no servers):
who may register, change and restore an outage; which residents are told; a new appeal at the house
linked at once and still routed; the duration per house; the import's validation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools import samples
from intake.classifier import Classifier
from intake.service import build_appeal, prepare
from router.directory import parse as parse_directory
from router.outages import (
    MemoryOutageUoW,
    OutageService,
    change_restore_time,
    duration_rows,
    may_act,
    outage_id_of,
    register,
    restore,
)
from router.outages_import import ImportFailed, check_references, emits, parse
from router.rules import RoutingRules
from router.service import RouterService
from tests.support.engine import envelope, events, make_engine, rec
from zhkh_contracts import (
    AppealAssigned,
    AppealLinkedToOutage,
    AppealRegistered,
    Category,
    OutageKind,
    OutageNotice,
    OutageRegistered,
    OutageResource,
    OutageRestoreTimeChanged,
    OutageRestored,
    PartyAnswered,
    PartyAccepted,
    house_key_of,
)
from zhkh_runtime.engine import MemoryTracking

SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "sample_directory"
DIRECTORY = parse_directory(sorted(SAMPLE.glob("*.csv")))
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
HOUSE = house_key_of(samples.DEMO_HOUSE_GUID, None)
OTHER_HOUSE = "fias:9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c"  # ул. Уральская, 3 (d-dzerzhinsky)
CLASSIFIER = Classifier()


def outage(actor: str = "operator:op-1", party: str = "tgk-teplo", resource: OutageResource = OutageResource.HOT_WATER,
           houses: tuple[str, ...] = (HOUSE,), district: str | None = None, oid: uuid.UUID | None = None,
           start: datetime = NOW - timedelta(hours=1)) -> OutageRegistered:
    return OutageRegistered(outage_id=oid or uuid.uuid4(), resource=resource, actor=actor, kind=OutageKind.EMERGENCY,
                            house_keys=houses, district_id=district, starts_at=start,
                            expected_restore_at=start + timedelta(hours=8), party_id=party, registered_at=NOW)


# ---- decisions --------------------------------------------------------------------------------------


def test_who_may_act_on_an_outage():
    assert may_act("operator:op-1", "tgk-teplo") and may_act("admin:a", "tgk-teplo")
    assert may_act("party:tgk-teplo", "tgk-teplo")
    assert not may_act("party:vodokanal", "tgk-teplo")
    assert not may_act("inspector:i", "tgk-teplo") and not may_act("citizen:x", "tgk-teplo")
    assert not may_act("operator:", "tgk-teplo") and not may_act("service:router", "tgk-teplo")


def test_register_then_change_then_restore_and_the_refusals():
    e = outage()
    assert register(None, outage(actor="party:vodokanal")).code == "forbidden"
    first = register(None, e)
    assert first.outcome == "applied" and first.state is not None and first.state.active
    assert register(first.state, e).code == "already_registered"
    s = first.state
    later = s.expected_restore_at + timedelta(hours=3)

    def moved(actor: str, at: datetime) -> OutageRestoreTimeChanged:
        return OutageRestoreTimeChanged(outage_id=s.outage_id, resource=s.resource, actor=actor,
                                        expected_restore_at=at, changed_at=NOW)

    assert change_restore_time(None, moved("operator:o", later)).code == "unknown_outage"
    assert change_restore_time(s, moved("party:vodokanal", later)).code == "forbidden"
    assert change_restore_time(s, moved("party:tgk-teplo", s.starts_at)).code == "restore_before_start"
    assert change_restore_time(s, moved("party:tgk-teplo", s.expected_restore_at)).code == "unchanged"
    changed = change_restore_time(s, moved("party:tgk-teplo", later))
    assert changed.outcome == "applied" and changed.state is not None
    assert changed.state.expected_restore_at == later and changed.state.version == 2
    assert changed.state.changes[0]["from"] == s.expected_restore_at and changed.state.changes[0]["actor"] == "party:tgk-teplo"

    done = OutageRestored(outage_id=s.outage_id, resource=s.resource, actor="operator:o", restored_at=NOW)
    assert restore(changed.state, done.model_copy(update={"actor": "party:energosbyt"})).code == "forbidden"
    assert restore(changed.state, done.model_copy(update={"restored_at": s.starts_at - timedelta(minutes=1)})).code \
        == "restore_before_start"
    restored = restore(changed.state, done)
    assert restored.state is not None and not restored.state.active and restored.state.restored_at == NOW
    assert restore(restored.state, done).code == "already_restored"
    assert change_restore_time(restored.state, moved("operator:o", later)).code == "already_restored"


def test_duration_per_house_closed_open_and_district():
    s = register(None, outage(houses=(HOUSE,), district="d-leninsky")).state
    assert s is not None
    rows = duration_rows(s, ["fias:5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b", "fias:c3d4e5f6-0a1b-4c2d-8e3f-405162738495"],
                         NOW + timedelta(hours=2))
    assert [r["house_key"] for r in rows] == [HOUSE, "fias:c3d4e5f6-0a1b-4c2d-8e3f-405162738495"]  # no duplicates
    assert {r["duration_hours"] for r in rows} == {3.0} and all(r["open"] for r in rows)  # 1 h before NOW + 2 h
    done = restore(s, OutageRestored(outage_id=s.outage_id, resource=s.resource, actor="operator:o",
                                     restored_at=s.starts_at + timedelta(hours=5, minutes=30))).state
    assert done is not None
    (row,) = duration_rows(done, [], NOW + timedelta(days=9))
    assert (row["duration_hours"], row["open"], row["restored_at"]) == (5.5, False, done.restored_at.isoformat())
    only_district = register(None, outage(houses=(), district="d-leninsky")).state
    assert only_district is not None
    assert [r["house_key"] for r in duration_rows(only_district, [], NOW)] == [None]


# ---- handlers through the engine ------------------------------------------------------------------


class Router:
    def __init__(self) -> None:
        self.uow = MemoryOutageUoW(DIRECTORY)
        service = RouterService(RoutingRules.load(), "fallback:ops", clock=lambda: NOW)
        handlers = OutageService(timedelta(days=30), clock=lambda: NOW).install(service.handlers())
        self.engine, self.pub = make_engine("router", handlers, MemoryTracking(self.uow))

    async def feed(self, *data: Any) -> list[Any]:
        before = len(self.pub.records)
        envs = [envelope(d, key=d.key) if hasattr(d, "outage_id") and not isinstance(d, AppealLinkedToOutage)
                else envelope(d) for d in data]
        await self.engine.process([rec(e) for e in envs])
        return events(self.pub)[before:]

    async def appeal(self, category: Category = Category.HOT_WATER, number: str = "ZH-2026-0000001",
                     guid: Any = samples.DEMO_HOUSE_GUID) -> tuple[uuid.UUID, list[Any]]:
        raw = samples.raw_submission(category=category)
        raw = raw.model_copy(update={"address": raw.address.model_copy(update={"fias_house_guid": guid})})
        a = build_appeal(prepare(raw), uuid.uuid4(), number, NOW, CLASSIFIER)
        return a.appeal_id, await self.feed(AppealRegistered(appeal=a))


def linked(out: list[Any]) -> list[AppealLinkedToOutage]:
    return [e for e in out if isinstance(e, AppealLinkedToOutage)]


async def test_residents_are_told_on_register_change_and_restore_and_a_new_appeal_is_linked_and_routed():
    r = Router()
    water, _ = await r.appeal(Category.HOT_WATER, "ZH-2026-0000001")
    await r.appeal(Category.HEATING, "ZH-2026-0000002")  # another resource: not told
    await r.appeal(Category.HOT_WATER, "ZH-2026-0000003", guid="9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c")  # other house

    e = outage()
    (told,) = linked(await r.feed(e))
    assert (told.appeal_id, told.what, told.expected_restore_at) == (water, OutageNotice.REGISTERED, e.expected_restore_at)
    assert r.uow.outages.entries and list(r.uow.outages.entries.values())[0]["outcome"] == "applied"

    new, out = await r.appeal(Category.HOT_WATER, "ZH-2026-0000004")
    assert any(isinstance(x, AppealAssigned) for x in out)  # routed as usual
    (now_told,) = linked(out)
    assert (now_told.appeal_id, now_told.what, now_told.outage_id) == (new, OutageNotice.LINKED, e.outage_id)
    assert r.uow.appeals.states[str(new)].status.value == "assigned"  # still under control
    assert {v["how"] for v in r.uow.outages.links.values()} == {"registered", "linked"}

    later = e.expected_restore_at + timedelta(hours=4)
    out = linked(await r.feed(OutageRestoreTimeChanged(outage_id=e.outage_id, resource=e.resource,
                                                       actor="party:tgk-teplo", expected_restore_at=later, changed_at=NOW)))
    assert sorted(x.registration_number for x in out) == ["ZH-2026-0000001", "ZH-2026-0000004"]
    assert {(x.what, x.expected_restore_at) for x in out} == {(OutageNotice.RESTORE_TIME_CHANGED, later)}

    back = NOW + timedelta(hours=2)
    out = linked(await r.feed(OutageRestored(outage_id=e.outage_id, resource=e.resource, actor="operator:o",
                                             restored_at=back)))
    assert {(x.what, x.restored_at) for x in out} == {(OutageNotice.RESTORED, back)} and len(out) == 2
    _, after = await r.appeal(Category.HOT_WATER, "ZH-2026-0000005")
    assert linked(after) == []  # restored: a new appeal is not about it


async def test_a_wrong_party_or_a_replay_tells_nobody_and_is_logged():
    r = Router()
    await r.appeal()
    e = outage(actor="party:vodokanal", party="tgk-teplo")
    assert linked(await r.feed(e)) == []
    (entry,) = r.uow.outages.entries.values()
    assert (entry["outcome"], entry["code"]) == ("refused", "forbidden")
    assert r.uow.outages.states == {}
    good = outage()
    assert len(linked(await r.feed(good))) == 1
    assert linked(await r.feed(good)) == []  # the same event again: processed once
    again = good.model_copy(update={"registered_at": NOW + timedelta(minutes=1)})
    assert linked(await r.feed(again)) == []  # another event, the same outage: already registered
    assert [e["code"] for e in r.uow.outages.entries.values()][-1] == "already_registered"


async def test_answered_appeals_within_the_window_are_told_older_and_withdrawn_ones_not():
    r = Router()
    aid, _ = await r.appeal()
    await r.feed(PartyAccepted(appeal_id=aid, actor="party:uk-zarechye"))
    await r.feed(PartyAnswered(appeal_id=aid, actor="party:uk-zarechye", text="Устранено"))
    st = r.uow.appeals.states[str(aid)]
    assert st.status.value == "answered"
    from dataclasses import replace

    from zhkh_contracts import AppealStatus

    r.uow.appeals.states[str(aid)] = replace(st, status=AppealStatus.CLOSED)  # closed, answered just now
    assert len(linked(await r.feed(outage()))) == 1
    r.uow.appeals.states[str(aid)] = replace(st, status=AppealStatus.CLOSED, answered_at=NOW - timedelta(days=31))
    assert linked(await r.feed(outage())) == []


async def test_a_past_outage_recorded_after_the_fact_is_registered_restored_and_nobody_is_told():
    r = Router()
    await r.appeal()
    past = outage(start=NOW - timedelta(days=3))
    past = past.model_copy(update={"restored_at": past.starts_at + timedelta(hours=6)})
    assert linked(await r.feed(past)) == []
    s = r.uow.outages.states[str(past.outage_id)]
    assert not s.active and s.restored_at == past.restored_at
    _, out = await r.appeal(number="ZH-2026-0000002")
    assert linked(out) == []  # not in force


async def test_a_district_outage_covers_the_appeals_of_its_district():
    r = Router()
    await r.appeal(number="ZH-2026-0000001")  # ул. Ленина, 10: d-leninsky
    await r.appeal(number="ZH-2026-0000002", guid="9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c")  # d-dzerzhinsky
    (told,) = linked(await r.feed(outage(houses=(), district="d-leninsky")))
    assert told.registration_number == "ZH-2026-0000001"


# ---- import ----------------------------------------------------------------------------------------

HEADER = "ref,resource,kind,houses,district_id,starts_at,expected_restore_at,party_id,restored_at\n"


def test_import_parses_csv_and_json_and_derives_ids_from_refs():
    csv = (HEADER + f"T-1,hot_water,planned,{samples.DEMO_HOUSE_GUID};9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c,,"
           "2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,tgk-teplo,\n"
           "T-2,heating,emergency,,d-leninsky,2026-11-20T09:00:00+05:00,2026-11-20T15:00:00+05:00,tgk-teplo,"
           "2026-11-20T14:00:00+05:00\n").encode()
    rows = parse("\ufeff".encode() + csv, "csv")
    assert [r.where for r in rows] == ["line 2", "line 3"]
    assert rows[0].row.house_keys == (HOUSE, OTHER_HOUSE) and rows[0].row.outage_id == outage_id_of("T-1")
    check_references(rows, set(DIRECTORY.parties), set(DIRECTORY.districts))
    out = emits(rows, "operator:o", NOW)
    assert [type(x.event).__name__ for x in out] == ["OutageRegistered", "OutageRegistered"]
    assert out[0].event.restored_at is None and out[1].event.restored_at == rows[1].row.restored_at
    assert out[0].key == f"outage:{outage_id_of('T-1')}"
    assert [x.event_id for x in emits(rows, "operator:o", NOW)] == [x.event_id for x in out]  # the same again
    js = parse(b'{"outages": [{"ref": "T-1", "resource": "hot_water", "kind": "planned", "houses": ["'
               + str(samples.DEMO_HOUSE_GUID).encode() + b'"], "starts_at": "2026-12-01T09:00:00+05:00", '
               b'"expected_restore_at": "2026-12-01T21:00:00+05:00", "party_id": "tgk-teplo"}]}', "json")
    assert js[0].row.outage_id == rows[0].row.outage_id


def test_a_bad_import_is_refused_with_every_row_error_and_no_values():
    csv = (HEADER
           + "A,hot_water,planned,not-a-guid,,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,tgk-teplo,\n"
           + "B,water,sometimes,,d-leninsky,2026-12-01T09:00:00,2026-12-01T08:00:00+05:00,tgk-teplo,\n"
           + "C,gas,planned,,,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,gazprom-mezh,\n"
           + "A,gas,planned,,d-leninsky,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,gazprom-mezh,\n"
           + "D,gas,planned,,d-leninsky,2026-12-01T09:00:00+05:00,2026-12-01T08:00:00+05:00,gazprom-mezh,\n").encode()
    with pytest.raises(ImportFailed) as exc:
        parse(csv, "csv")
    errs = exc.value.errors
    assert any(e.startswith("line 2: houses.0") for e in errs)
    assert {"line 3: resource", "line 3: kind", "line 3: starts_at"} <= {e.rsplit(":", 1)[0] for e in errs}
    assert any(e.startswith("line 4: ") and "houses or district_id" in e for e in errs)
    assert "line 5: ref: duplicate of line 2" not in errs  # line 2 was bad: not a ref seen
    assert any(e.startswith("line 6: ") and "after starts_at" in e for e in errs)
    assert not any("not-a-guid" in e or "water," in e for e in errs)  # field names, never values
    with pytest.raises(ImportFailed) as exc:
        parse(HEADER.encode() + b"X,gas,planned,,d-nowhere,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,nobody,\n"
              b"X,gas,planned,,d-leninsky,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,gazprom-mezh,\n", "csv")
    assert exc.value.errors == ["line 3: ref: duplicate of line 2"]
    rows = parse(HEADER.encode() + b"X,gas,planned,,d-nowhere,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,"
                 b"nobody,\n", "csv")
    with pytest.raises(ImportFailed) as exc:
        check_references(rows, set(DIRECTORY.parties), set(DIRECTORY.districts))
    assert exc.value.errors == ["line 2: party_id: not in the directory", "line 2: district_id: not in the directory"]
    with pytest.raises(ImportFailed) as exc:
        check_references(parse(HEADER.encode() + b"X,gas,planned,,d-leninsky,2026-12-01T09:00:00+05:00,"
                               b"2026-12-01T21:00:00+05:00,gazprom-mezh,\n", "csv"),
                         set(DIRECTORY.parties), set(DIRECTORY.districts), lambda pid: pid == "tgk-teplo")
    assert exc.value.errors == ["line 2: party_id: not your party"]
    for bad, fmt in ((b"\xff\xfe", "csv"), (b"{", "json"), (b"[]", "json"), (b"foo,bar\n1,2\n", "csv"), (HEADER.encode(), "csv")):
        with pytest.raises(ImportFailed):
            parse(bad, fmt)


def test_the_event_takes_only_fias_house_keys_a_place_and_a_restore_after_the_start():
    from pydantic import ValidationError

    ok = outage()
    for bad in ({"house_keys": ("addr:г пермь ул ленина 10",)}, {"house_keys": ("fias:NOT-A-GUID",)},
                {"house_keys": (), "district_id": None}, {"expected_restore_at": ok.starts_at}):
        with pytest.raises(ValidationError):
            OutageRegistered.model_validate({**ok.model_dump(), **bad})
    assert OutageRegistered.model_validate({**ok.model_dump(), "house_keys": (), "district_id": "d-leninsky"}).district_id


async def test_a_replayed_registration_is_not_linked_twice():
    r = Router()
    await r.feed(outage())
    raw = samples.raw_submission(category=Category.HOT_WATER)
    a = build_appeal(prepare(raw), uuid.uuid4(), "ZH-2026-0000009", NOW, CLASSIFIER)
    assert len(linked(await r.feed(AppealRegistered(appeal=a)))) == 1
    assert linked(await r.feed(AppealRegistered(appeal=a))) == []  # another event id, the same appeal: routed once
    assert sum(v["how"] == "linked" for v in r.uow.outages.links.values()) == 1


# ---- the outage register and the control cards together (router.main wires both) -------------------


class RouterWithCards(Router):
    """The router as main.py wires it: the outage register and the per-house control cards on one unit of work."""

    def __init__(self) -> None:
        from router.controlcards import CardPolicy, ControlCards, MemoryCardsUoW

        class UoW(MemoryCardsUoW, MemoryOutageUoW):
            """The in-memory twin of main.MongoRouterWithRegistersUoW: cards over the outage register's
            unit of work (MemoryCardsUoW's snapshot and restore wrap MemoryOutageUoW's)."""

        self.uow = UoW(DIRECTORY)
        cards = ControlCards(CardPolicy(), clock=lambda: NOW)
        service = RouterService(RoutingRules.load(), "fallback:ops", clock=lambda: NOW)
        handlers = cards.extend(OutageService(timedelta(days=30), clock=lambda: NOW, cards=cards)
                                .install(service.handlers()))
        self.engine, self.pub = make_engine("router", handlers, MemoryTracking(self.uow))


async def test_a_restored_outage_reports_restoration_on_the_control_cards_of_its_houses_only():
    from zhkh_contracts import ControlCardOpened, ControlCardRestorationReported

    r = RouterWithCards()  # NOW (1 December) is in the default heating season
    _, out = await r.appeal(Category.HOT_WATER, "ZH-2026-0000001")
    (card,) = [e for e in out if isinstance(e, ControlCardOpened)]
    _, out = await r.appeal(Category.HOT_WATER, "ZH-2026-0000002", guid="9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c")
    (other,) = [e for e in out if isinstance(e, ControlCardOpened)]  # another house, another card
    e = outage()  # hot water at the demo house only
    await r.feed(e)
    out = await r.feed(OutageRestored(outage_id=e.outage_id, resource=e.resource, actor="party:tgk-teplo",
                                      restored_at=NOW + timedelta(hours=1)))
    (reported,) = [x for x in out if isinstance(x, ControlCardRestorationReported)]
    assert (reported.card_id, reported.via, reported.reported_by) == (card.card_id, "outage", "party:tgk-teplo")
    assert r.uow.cards.cards[str(card.card_id)].state == "restoration_reported"  # closed only on a confirmation
    assert r.uow.cards.cards[str(other.card_id)].state == "open"
    assert len(linked(out)) == 1  # the resident is told too, in the same transaction
