"""Per-house control cards on the real broker and database: intake in front, the router served over HTTP with
real tokens. The first heating appeal at a house opens a card, the second joins it, a redelivered registration
counts nothing, an answer reports restoration, the district's list shows what is overdue, only staff confirm
(which closes the card), and who may read what."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devtools import samples
from tests.integration.test_router import system
from tests.integration.test_router_api import ALL, acall, tokens
from tests.integration.test_trust_boundary import send
from tests.support.engine import owned
from tests.support.kafka import TopicReader, produce
from tests.support.services import publish_raw
from zhkh_contracts import (
    AppealAssigned,
    AppealRegistered,
    Category,
    ControlCardAppealJoined,
    ControlCardClosed,
    ControlCardOpened,
    ControlCardRestorationConfirm,
    ControlCardRestorationReported,
    Topics,
)

pytestmark = pytest.mark.integration


async def submit(infra, prefix, f, category: Category, phone: str, received_at: datetime | None = None) -> str:  # noqa: ANN001
    raw = samples.raw_submission(category=category, phone=phone, email=None)
    if received_at is not None:
        raw = raw.model_copy(update={"received_at": received_at})
    await publish_raw(infra, prefix, raw)
    await f.until(lambda f: any(isinstance(e.data, AppealRegistered) and e.data.appeal.source_id == raw.source_id
                                for e in f.events()))
    appeal = next(e.data.appeal for e in f.events()
                  if isinstance(e.data, AppealRegistered) and e.data.appeal.source_id == raw.source_id)
    await f.assigned(str(appeal.appeal_id))
    return str(appeal.appeal_id)


def card_events(f, cls, card_id: uuid.UUID | None = None) -> list:  # noqa: ANN001
    """Events of one type, once per event id (a retried write republishes the same event: consumers dedupe)."""
    seen = {e.id: e.data for e in f.events() if isinstance(e.data, cls) and (card_id is None or e.data.card_id == card_id)}
    return list(seen.values())


async def test_cards_open_join_report_list_and_close_on_confirmation(infra, prefix, issuer):
    async with system(infra, prefix, issuer) as (base, f):
        api = f"{base}/api/v1/control-cards"
        t = tokens(issuer)
        # the first heating appeal, received two days ago: a card past its same-day target
        first = await submit(infra, prefix, f, Category.HEATING, "+79120000011",
                             received_at=datetime.now(UTC) - timedelta(days=2))
        await f.until(lambda f: card_events(f, ControlCardOpened))
        (opened,) = card_events(f, ControlCardOpened)
        assert (opened.first_appeal_id, opened.district_id, opened.resource) == (
            uuid.UUID(first), "d-leninsky", Category.HEATING)
        party = opened.party_id
        assert party == f.of(AppealAssigned, first)[0].party_id
        # the second at the same house and resource joins it
        second = await submit(infra, prefix, f, Category.HEATING, "+79120000012")
        await f.until(lambda f: card_events(f, ControlCardAppealJoined))
        (joined,) = card_events(f, ControlCardAppealJoined)
        assert (joined.card_id, joined.member_appeal_id, joined.appeals) == (opened.card_id, uuid.UUID(second), 2)

        # the second registration redelivered byte for byte: the router republishes its outcome, counts nothing
        rec = next(r for r in f.records if r.key == second.encode() and
                   dict(r.headers).get("ce_type") == AppealRegistered.EVENT_TYPE.encode())
        await produce(infra.bootstrap, Topics(prefix).lifecycle, rec.value, rec.key, list(rec.headers))
        def joined_records(f) -> list:  # noqa: ANN001
            return [r for r in f.records if dict(r.headers).get("ce_type") == ControlCardAppealJoined.EVENT_TYPE.encode()]

        await f.until(lambda f: len(joined_records(f)) >= 2)
        assert len({dict(r.headers)["ce_id"] for r in joined_records(f)}) == 1  # the same event, republished
        status, card = await acall("GET", f"{api}/{opened.card_id}", t["operator"])
        assert status == 200 and card["appeals"] == 2 and sorted(card["appeal_ids"]) == sorted([first, second])
        assert card["state"] == "open" and card["overdue"] is True and card["hours_open"] >= 47

        # another resource at the house: its own card, not overdue
        hot = await submit(infra, prefix, f, Category.HOT_WATER, "+79120000013")
        await f.until(lambda f: len(card_events(f, ControlCardOpened)) == 2)
        hot_card = next(c for c in card_events(f, ControlCardOpened) if c.resource is Category.HOT_WATER)
        assert hot_card.first_appeal_id == uuid.UUID(hot)

        # the district's list: both open, one overdue
        status, page = await acall("GET", f"{api}?district_id=d-leninsky", t["inspector"])
        assert status == 200 and {(c["resource"], c["appeals"], c["overdue"]) for c in page["cards"]} == {
            ("heating", 2, True), ("hot_water", 1, False)}
        status, late = await acall("GET", f"{api}?district_id=d-leninsky&overdue=true", t["operator"])
        assert [c["card_id"] for c in late["cards"]] == [str(opened.card_id)]
        status, none = await acall("GET", f"{api}?district_id=d-dzerzhinsky", t["operator"])
        assert status == 200 and none["cards"] == []

        # the hot-water party answers its appeal: restoration reported on that card
        hot_party = hot_card.party_id
        ptok = issuer.token("hp", "party", party_ids=[hot_party])
        number = f.of(AppealAssigned, hot)[0].registration_number
        for path, body, key in (("accept", None, "hw-1"), ("answer", {"text": "Подача ГВС восстановлена."}, "hw-2")):
            status, out = await acall("POST", f"{base}/api/v1/party/appeals/{number}/{path}", ptok, body, key=key)
            assert status == 202, out
        await f.until(lambda f: card_events(f, ControlCardRestorationReported, hot_card.card_id))
        (rep,) = card_events(f, ControlCardRestorationReported, hot_card.card_id)
        assert (rep.via, rep.reported_by) == ("answer", f"party:{hot_party}")

        # confirming: refused before publishing for anyone but operators, inspectors and admins
        url = f"{api}/{opened.card_id}/confirm"
        body = {"method": "call_back"}
        for who in ("anonymous", "garbage", "party", "other_party", "analyst", "citizen_account", "service"):
            tok = issuer.token("p", "party", party_ids=[party]) if who == "party" else t[who]
            status, refused = await acall("POST", url, tok, body, key=f"c-{who}")
            assert status == (401 if who in ("anonymous", "garbage") else 403), (who, refused)
        status, bad = await acall("POST", url, t["operator"], {"method": "telepathy"}, key="c-bad")
        assert (status, bad["code"]) == (422, "invalid_data")
        status, nokey = await acall("POST", url, t["operator"], body)
        assert (status, nokey["fields"]) == (422, ["Idempotency-Key"])
        status, done = await acall("POST", url, t["operator"], body, key="confirm-1")
        assert status == 202 and done["status"] == "applied", done
        assert (done["outcome"]["actor"], done["outcome"]["actor_subject"]) == ("operator:op-1", "op-1")
        status, same = await acall("POST", url, t["operator"], body, key="confirm-1")
        assert (same["event_id"], same["status"]) == (done["event_id"], "applied")
        status, twice = await acall("POST", url, t["inspector"], body, key="confirm-2")
        assert twice["status"] == "refused" and twice["outcome"]["code"] == "already_closed"
        await f.until(lambda f: card_events(f, ControlCardClosed))
        (closed,) = card_events(f, ControlCardClosed)
        assert (closed.card_id, closed.confirmed_by, closed.method.value, closed.appeals, closed.within_target) == (
            opened.card_id, "operator:op-1", "call_back", 2, False)
        status, card = await acall("GET", f"{api}/{opened.card_id}", t["admin"])
        assert (card["state"], card["confirmed_by"], card["method"]) == ("closed", "operator:op-1", "call_back")
        assert [(a["action"], a["outcome"], a["code"]) for a in card["actions"]] == [
            ("confirm_restoration", "applied", None), ("confirm_restoration", "refused", "already_closed")]
        status, active = await acall("GET", f"{api}?district_id=d-leninsky", t["operator"])
        assert [c["resource"] for c in active["cards"]] == ["hot_water"]
        status, everything = await acall("GET", f"{api}?district_id=d-leninsky&state=all", t["operator"])
        assert len(everything["cards"]) == 2

        # a new heating appeal after the closing opens a new card
        await submit(infra, prefix, f, Category.HEATING, "+79120000014")
        await f.until(lambda f: len(card_events(f, ControlCardOpened)) == 3)
        assert len({c.card_id for c in card_events(f, ControlCardOpened)}) == 3

        # cursor pages, newest first: one card a page, all three once, the last page has no cursor
        seen, cursor = [], None
        for _ in range(4):
            status, page = await acall("GET", f"{api}?district_id=d-leninsky&state=all&limit=1"
                                       + (f"&cursor={cursor}" if cursor else ""), t["operator"])
            assert status == 200 and page["count"] == len(page["cards"]) == 1, page
            seen.append(page["cards"][0])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len({c["card_id"] for c in seen}) == 3 and cursor is None
        assert [c["opened_at"] for c in seen] == sorted((c["opened_at"] for c in seen), reverse=True)
        status, bad = await acall("GET", f"{api}?cursor=garbage", t["operator"])
        assert (status, bad["code"], bad["fields"]) == (400, "invalid_cursor", ["cursor"])

        # the daily report: one district's cards of today, CSV with a BOM
        status, text = await acall("GET", f"{base}/api/v1/control-cards.csv?district_id=d-leninsky", t["inspector"])
        assert status == 200 and text.startswith("\ufeff")
        rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
        assert {(r["resource"], r["state"], r["overdue"]) for r in rows} == {
            ("heating", "closed", "true"), ("hot_water", "restoration_reported", "false"), ("heating", "open", "false")}
        assert next(r for r in rows if r["state"] == "closed")["confirmed_by"] == "operator:op-1"
        assert all("+7912" not in v for r in rows for v in r.values())


async def test_who_may_read_and_report_on_cards(infra, prefix, issuer):
    async with system(infra, prefix, issuer, api_wait_s=5) as (base, f):
        await submit(infra, prefix, f, Category.HEATING, "+79120000021")
        await f.until(lambda f: card_events(f, ControlCardOpened))
        (opened,) = card_events(f, ControlCardOpened)
        t = tokens(issuer)
        t["party"] = issuer.token("p-user", "party", party_ids=[opened.party_id])
        api = f"{base}/api/v1/control-cards"
        one = f"{api}/{opened.card_id}"
        csv_url = f"{base}/api/v1/control-cards.csv?district_id=d-leninsky"

        def want(allowed: set[str]) -> dict[str, int]:
            return {w: 200 if w in allowed else 401 if w in ("anonymous", "garbage") else 403 for w in ALL}

        staff_and_parties = {"operator", "inspector", "admin", "party", "other_party"}
        for url, expect in ((api, want(staff_and_parties)), (one, want({"operator", "inspector", "admin", "party"})),
                            (csv_url, want(staff_and_parties))):
            for who, status in expect.items():
                got, body = await acall("GET", url, t[who])
                assert got == status, (url, who, got, body)
                if status != 200:
                    assert body["code"] in ("unauthenticated", "invalid_token", "forbidden"), body
        # a party sees only its own houses' cards, whatever it asks for
        _, own = await acall("GET", api, t["party"])
        _, other = await acall("GET", api, t["other_party"])
        assert [c["card_id"] for c in own["cards"]] == [str(opened.card_id)] and other["cards"] == []
        assert (await acall("GET", f"{api}?party_id={opened.party_id}", t["other_party"]))[0] == 403
        _, other_csv = await acall("GET", csv_url, t["other_party"])
        assert other_csv.strip("\ufeff\r\n").count("\n") == 0  # the header only
        assert (await acall("GET", f"{api}/{uuid.uuid4()}", t["operator"]))[0] == 404
        assert (await acall("GET", f"{api}/not-a-card", t["operator"]))[0] == 422

        # reporting restoration: the card's party (or staff), not another party
        status, _ = await acall("POST", f"{one}/report-restoration", t["other_party"], key="r-0")
        assert status == 403
        status, rep = await acall("POST", f"{one}/report-restoration", t["party"], key="r-1")
        assert status == 202 and rep["status"] == "applied" and rep["outcome"]["actor"] == f"party:{opened.party_id}"
        status, rep2 = await acall("POST", f"{one}/report-restoration", t["party"], key="r-2")
        assert rep2["status"] == "refused" and rep2["outcome"]["code"] == "already_reported"
        status, card = await acall("GET", one, t["party"])
        assert (card["state"], card["reported_via"]) == ("restoration_reported", "report")
        # a party cannot close its own card
        status, _ = await acall("POST", f"{one}/confirm", t["party"], {"method": "other"}, key="x-1")
        assert status == 403
        # nor can anyone by writing a confirmation onto the actions topic: from another source it is dead-lettered,
        # from the router's source with a party as actor it is refused
        topics = Topics(prefix)
        forged = owned(ControlCardRestorationConfirm(card_id=opened.card_id, actor="operator:op-1", method="other"),
                       appeal_id=f"card:{opened.card_id}", source="/zhkh-appeals/notifier")
        sneaky = owned(ControlCardRestorationConfirm(card_id=opened.card_id, actor=f"party:{opened.party_id}",
                                                     method="other"), appeal_id=f"card:{opened.card_id}")
        async with TopicReader(infra.bootstrap, topics.dlq("router")) as dlq:
            await send(infra, topics.actions, forged)
            await send(infra, topics.actions, sneaky)
            (dead,) = await dlq.wait_for(lambda r: len(r) >= 1)
            assert (dict(dead.headers)["ce_id"], dict(dead.headers)["x-dlq-reason"]) == (
                str(forged.id).encode(), b"forged_source")
        await f.until(lambda f: any(getattr(e.data, "cause_event_id", None) == sneaky.id for e in f.events()))
        status, card = await acall("GET", one, t["operator"])
        assert card["state"] == "restoration_reported"
        assert [(a["action"], a["outcome"], a["code"], a["actor"]) for a in card["actions"]][-1] == (
            "confirm_restoration", "refused", "forbidden", f"party:{opened.party_id}")


async def test_two_first_appeals_racing_open_one_card(mongo_db):
    """Two transactions both see no card for the house and both try to open one: the second fails with an
    error the engine retries (then it finds the card and joins), never a second card."""
    from router.controlcards import Card, CardsRepository
    from zhkh_runtime.errors import is_transient

    repo = CardsRepository(mongo_db)
    await repo.ensure_indexes()
    client = mongo_db.client
    now = datetime.now(UTC)

    def card(first: str) -> Card:
        return Card(card_id=str(uuid.uuid4()), house_key="fias:race", resource="heating", district_id="d-leninsky",
                    party_id="uk-zarechye", timezone="Asia/Yekaterinburg", opened_at=now, target_at=now,
                    appeal_ids=[first])

    async with client.start_session() as s1, client.start_session() as s2:
        await s1.start_transaction()
        await s2.start_transaction()
        a, b = repo.in_session(s1), repo.in_session(s2)
        assert await a.current("heating", "fias:race") is None and await b.current("heating", "fias:race") is None
        await a.open(card("a1"))
        with pytest.raises(Exception) as lost:  # noqa: PT011 - WriteConflict or the slot's duplicate key
            await b.open(card("b1"))
        assert is_transient(lost.value), repr(lost.value)
        await s1.commit_transaction()
        await s2.abort_transaction()
    async with client.start_session() as s3:
        await s3.start_transaction()
        current = await repo.in_session(s3).current("heating", "fias:race")
        assert current is not None and current.appeal_ids == ["a1"]
        in_district = await repo.in_session(s3).open_in_district("d-leninsky", "heating")
        assert [c.card_id for c in in_district] == [current.card_id]
        assert await repo.in_session(s3).open_in_district("d-leninsky", "gas") == []
        await s3.abort_transaction()
    assert await repo.cards.count_documents({}) == 1
