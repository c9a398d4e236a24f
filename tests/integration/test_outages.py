"""The outage register on the real broker and database, with real tokens from the dev issuer: an outage
registered through the router's API, the residents who appealed about that house and resource told (the
notifier's notices sent by a real SMTP server), a new appeal at that house linked and told the restore time
at once (and still routed), the restore time changed, the outage restored, the durations exported; who may
do what; a bad import refused with its row errors, a good one (API and CLI) registered."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devtools import samples
from tests.integration.test_notifier_delivery import Notifier
from tests.integration.test_router import system
from tests.support.clock import Clock
from tests.support.http import api_call, request
from tests.support.receivers import smtp_server
from tests.support.services import publish_raw, service_settings
from zhkh_contracts import AppealAssigned, AppealLinkedToOutage, AppealRegistered, Category, OutageNotice

pytestmark = pytest.mark.integration
HOUSE = str(samples.DEMO_HOUSE_GUID)  # ул. Ленина, 10 (d-leninsky, tgk-teplo supplies hot water)


async def acall(method, url, token=None, body=None, key=None):  # noqa: ANN001, ANN201
    return await asyncio.to_thread(api_call, method, url, body, token, key)


async def appeal(infra, prefix, f, email: str) -> str:  # noqa: ANN001
    raw = samples.raw_submission(category=Category.HOT_WATER, phone=None, email=email)
    await publish_raw(infra, prefix, raw)
    await f.until(lambda f: any(isinstance(e.data, AppealRegistered) and e.data.appeal.source_id == raw.source_id
                                for e in f.events()))
    reg = next(e for e in f.events() if isinstance(e.data, AppealRegistered) and e.data.appeal.source_id == raw.source_id)
    return str(reg.data.appeal.appeal_id)


def notices(f, aid: str) -> list[OutageNotice]:  # noqa: ANN001
    return [x.what for x in f.of(AppealLinkedToOutage, aid)]


def body(hours_back: float = 1, hours_ahead: float = 5, **kw) -> dict:  # noqa: ANN003
    now = datetime.now(UTC).replace(microsecond=0)
    return {"resource": "hot_water", "kind": "emergency", "houses": [HOUSE], "party_id": "tgk-teplo",
            "starts_at": (now - timedelta(hours=hours_back)).isoformat(),
            "expected_restore_at": (now + timedelta(hours=hours_ahead)).isoformat(), **kw}


async def test_registered_residents_told_new_appeal_linked_time_changed_restored_durations(infra, prefix, issuer, mongo_db):
    controller, sink, port = smtp_server()
    try:
        async with system(infra, prefix, issuer) as (base, f):
            api = f"{base}/api/v1/outages"
            op = issuer.token("op-1", "operator")
            teplo = issuer.token("t-user", "party", party_ids=["tgk-teplo"])
            first = await appeal(infra, prefix, f, "first@example.ru")
            await f.assigned(first)

            b1 = body(ref="=HYPERLINK(\"http://x\")")  # a spreadsheet formula: neutralised in the CSV export
            status, reg = await acall("POST", api, op, b1, key="outage-1")
            assert status == 202 and reg["status"] == "applied", reg
            assert (reg["outcome"]["actor"], reg["outcome"]["action"]) == ("operator:op-1", "register")
            oid = reg["outage_id"]
            await f.until(lambda f: notices(f, first) == [OutageNotice.REGISTERED])
            again = await acall("POST", api, op, b1, key="outage-1")  # a retry: the same event, applied once
            assert again[0] == 202 and again[1]["event_id"] == reg["event_id"] and again[1]["status"] == "applied"

            second = await appeal(infra, prefix, f, "second@example.ru")
            assigned = await f.assigned(second)  # routed as usual...
            assert assigned.party_id == "uk-zarechye"
            await f.until(lambda f: notices(f, second) == [OutageNotice.LINKED])  # ...and told at once
            (told,) = f.of(AppealLinkedToOutage, second)
            assert str(told.outage_id) == oid and told.expected_restore_at == datetime.fromisoformat(b1["expected_restore_at"])

            later = (datetime.now(UTC) + timedelta(hours=9)).replace(microsecond=0)
            status, moved = await acall("POST", f"{api}/{oid}/restore-time", teplo,
                                        {"expected_restore_at": later.isoformat(), "reason": "замена задвижки"}, key="m1")
            assert status == 202 and moved["status"] == "applied" and moved["outcome"]["actor"] == "party:tgk-teplo", moved
            await f.until(lambda f: OutageNotice.RESTORE_TIME_CHANGED in notices(f, first)
                          and OutageNotice.RESTORE_TIME_CHANGED in notices(f, second))

            wrong = issuer.token("v-user", "party", party_ids=["vodokanal"])
            assert (await acall("POST", f"{api}/{oid}/restored", wrong, {}, key="r0"))[0] == 403
            assert (await acall("POST", f"{api}/{oid}/restored", None, {}, key="r0"))[0] == 401
            status, done = await acall("POST", f"{api}/{oid}/restored", teplo, {}, key="r1")
            assert status == 202 and done["status"] == "applied", done
            await f.until(lambda f: notices(f, first)[-1] == OutageNotice.RESTORED == notices(f, second)[-1])
            status, twice = await acall("POST", f"{api}/{oid}/restored", teplo, {}, key="r2")
            assert (status, twice["code"]) == (409, "already_restored")
            _, late = await acall("POST", f"{api}/{oid}/restore-time", op, {"expected_restore_at": later.isoformat()}, key="m2")
            assert late["code"] == "already_restored"

            third = await appeal(infra, prefix, f, "third@example.ru")
            await f.assigned(third)
            assert notices(f, third) == []  # restored: not linked any more

            inspector = issuer.token("insp-1", "inspector")
            _, active = await acall("GET", api, inspector)
            _, every = await acall("GET", f"{api}?all=true&house={HOUSE}&resource=hot_water", inspector)
            assert active["outages"] == [] and [o["outage_id"] for o in every["outages"]] == [oid]
            _, one = await acall("GET", f"{api}/{oid}", teplo)
            assert (one["active"], one["restore_time_changes"], one["linked_appeals"]) == (False, 1, 2)
            assert [(e["action"], e["outcome"]) for e in one["log"]] == [
                ("register", "applied"), ("change_restore_time", "applied"), ("restore", "applied")]

            _, dur = await acall("GET", f"{api}/durations?resource=hot_water", inspector)
            (row,) = dur["rows"]
            assert (row["house_key"], row["open"], row["party_id"]) == (f"fias:{HOUSE}", False, "tgk-teplo")
            assert 0.9 < row["duration_hours"] < 1.2  # started an hour back, restored just now
            status, raw = await asyncio.to_thread(request, "GET", f"{api}/durations?format=csv", token=inspector)
            text = raw.decode("utf-8-sig")
            assert status == 200 and text.splitlines()[0].startswith("outage_id;ref;resource;kind;house_key")
            assert f";fias:{HOUSE};" in text and ";нет;" in text
            (csv_row,) = list(csv.DictReader(io.StringIO(text), delimiter=";"))
            assert csv_row["ref"] == "'=HYPERLINK(\"http://x\")"  # a formula neutralised (CSV injection)
            assert (await acall("GET", f"{api}/durations", teplo))[0] == 403  # staff only

            envs = [e for aid in (first, second) for e in f.events(aid)
                    if isinstance(e.data, (AppealRegistered, AppealAssigned, AppealLinkedToOutage))]

        svc = Notifier(mongo_db, prefix, Clock(datetime.now(UTC)), smtp_port=port)
        for env in envs:
            await svc.handle(env)
        await svc.deliver()
        subjects = {(m["To"], m["Subject"]) for m in sink.messages}
        n1 = next(e.data.appeal.registration_number for e in envs if isinstance(e.data, AppealRegistered)
                  and str(e.data.appeal.appeal_id) == first)
        n2 = next(e.data.appeal.registration_number for e in envs if isinstance(e.data, AppealRegistered)
                  and str(e.data.appeal.appeal_id) == second)
        assert {("first@example.ru", f"Обращение {n1}: зарегистрировано отключение"),
                ("first@example.ru", f"Обращение {n1}: новое время восстановления"),
                ("first@example.ru", f"Обращение {n1}: подача восстановлена"),
                ("second@example.ru", f"Обращение {n2}: горячее водоснабжение — известное отключение"),
                ("second@example.ru", f"Обращение {n2}: подача восстановлена")} <= subjects
        linked = next(m for m in sink.messages if m["Subject"].endswith("известное отключение")).get_content()
        assert "Ожидаемое время восстановления" in linked and "остаётся на контроле" in linked
    finally:
        controller.stop()


def tokens(issuer) -> dict[str, str | None]:  # noqa: ANN001
    return {
        "anonymous": None, "garbage": "eyJhbGciOiJub25lIn0.e30.",
        "party": issuer.token("t-user", "party", party_ids=["tgk-teplo"]),
        "other_party": issuer.token("v-user", "party", party_ids=["vodokanal"]),
        "operator": issuer.token("op-1", "operator"), "inspector": issuer.token("insp-1", "inspector"),
        "analyst": issuer.token("an-1", "analyst"), "admin": issuer.token("adm-1", "admin"),
        "citizen_account": issuer.token("cit-1", "citizen"), "service": issuer.token("svc", "service", channels=["chatbot"]),
    }


def expected(allowed: set[str], ok: int = 200) -> dict[str, int]:
    return {who: ok if who in allowed else 401 if who in ("anonymous", "garbage") else 403 for who in tokens_names()}


def tokens_names() -> tuple[str, ...]:
    return ("anonymous", "garbage", "party", "other_party", "operator", "inspector", "analyst", "admin",
            "citizen_account", "service")


async def test_who_may_read_and_write_outages(infra, prefix, issuer):
    async with system(infra, prefix, issuer) as (base, _f):
        api = f"{base}/api/v1/outages"
        t = tokens(issuer)
        own = body()
        status, reg = await acall("POST", api, t["party"], own, key="own")  # a party registers its own outage
        assert status == 202 and reg["status"] == "applied" and reg["outcome"]["actor"] == "party:tgk-teplo", reg
        oid = reg["outage_id"]
        reads = {
            api: expected({"party", "other_party", "operator", "inspector", "admin"}),
            f"{api}/{oid}": expected({"party", "operator", "inspector", "admin"}),
            f"{api}/durations": expected({"operator", "inspector", "admin"}),
        }
        for url, want in reads.items():
            for who, code in want.items():
                got, answer = await acall("GET", url, t[who])
                assert got == code, (url, who, got, answer)
                if code != 200:
                    assert answer["code"] in ("unauthenticated", "invalid_token", "forbidden"), answer
        _, theirs = await acall("GET", api, t["other_party"])
        assert theirs["outages"] == []  # a party sees its own outages only
        assert (await acall("GET", f"{api}?party_id=tgk-teplo", t["other_party"]))[0] == 403

        writers = {"operator", "admin", "party"}
        for who in tokens_names():  # registering tgk-teplo's outage
            if who in writers:
                continue
            got, answer = await acall("POST", api, t[who], body(), key=f"reg-{who}")
            assert got == (401 if who in ("anonymous", "garbage") else 403), (who, got, answer)
        got, answer = await acall("POST", api, t["other_party"], body(), key="foreign")
        assert (got, answer["code"]) == (403, "forbidden")  # not its party
        for who in ("other_party", "inspector", "analyst", "citizen_account", "service", "anonymous"):
            later = (datetime.now(UTC) + timedelta(hours=30)).isoformat()
            got, _ = await acall("POST", f"{api}/{oid}/restore-time", t[who], {"expected_restore_at": later}, key=f"m-{who}")
            assert got == (401 if who == "anonymous" else 403), who
        # input checks: no place, restore before start, unknown party, unknown district, actor in the body, no key
        bad = [(body(houses=[]), "invalid_data"), (body(hours_back=1, hours_ahead=-2), "invalid_data"),
               (body(party_id="nobody"), "unknown_party"), (body(district_id="d-nowhere"), "unknown_district"),
               (body(actor="operator:boss"), "invalid_data")]
        for i, (b, code) in enumerate(bad):
            got, answer = await acall("POST", api, t["operator"], b, key=f"bad-{i}")
            assert (got, answer["code"]) == (422, code), (b, answer)
        got, answer = await acall("POST", api, t["operator"], body())
        assert (got, answer["code"]) == (422, "invalid_data")
        got, answer = await acall("POST", api, t["operator"], body(kind="planned"), key="own")  # another principal's key
        assert got == 202
        got, answer = await acall("POST", api, t["party"], body(kind="planned"), key="own")  # its own key, another body
        assert (got, answer["code"]) == (422, "idempotency_key_reused")
        assert (await acall("GET", f"{api}/{uuid.uuid4()}", t["operator"]))[0] == 404


HEADER = "ref,resource,kind,houses,district_id,starts_at,expected_restore_at,party_id,restored_at\n"


async def test_a_bad_import_is_refused_with_row_errors_and_a_good_one_registers(infra, prefix, issuer, tmp_path):
    from router.cli import import_outages
    from router.settings import RouterSettings

    async with system(infra, prefix, issuer) as (base, _f):
        api = f"{base}/api/v1/outages"
        op = issuer.token("op-1", "operator")
        bad = (HEADER + "A,hot_water,planned,not-a-guid,,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,tgk-teplo,\n"
               "B,water,planned,,d-leninsky,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,tgk-teplo,\n"
               "C,gas,planned,,d-leninsky,2026-12-01T09:00:00+05:00,2026-12-01T21:00:00+05:00,nobody,\n")
        status, raw = await asyncio.to_thread(request, "POST", f"{api}/import", bad.encode(), "text/csv", token=op,
                                              headers={"Idempotency-Key": "imp-bad"})
        import json

        problem = json.loads(raw)
        assert (status, problem["code"]) == (422, "invalid_import")
        assert problem["fields"][0].startswith("line 2: houses.0") and problem["fields"][1].startswith("line 3: resource")
        # references are checked once the rows are valid
        status, raw = await asyncio.to_thread(request, "POST", f"{api}/import", (HEADER + bad.splitlines()[3] + "\n").encode(),
                                              "text/csv", token=op, headers={"Idempotency-Key": "imp-bad2"})
        assert (status, json.loads(raw)["fields"]) == (422, ["line 2: party_id: not in the directory"])
        _, listed = await acall("GET", f"{api}?all=true", op)
        assert listed["outages"] == []  # nothing imported
        status, raw = await asyncio.to_thread(request, "POST", f"{api}/import", b"x", "text/plain", token=op,
                                              headers={"Idempotency-Key": "imp-x"})
        assert status == 415

        good = (HEADER + f"TP-1,hot_water,planned,{HOUSE},,2026-11-20T09:00:00+05:00,2026-11-20T21:00:00+05:00,tgk-teplo,"
                "2026-11-20T19:30:00+05:00\n"
                "TP-2,heating,emergency,,d-dzerzhinsky,2026-11-21T09:00:00+05:00,2026-11-22T09:00:00+05:00,tgk-teplo,\n")
        status, raw = await asyncio.to_thread(request, "POST", f"{api}/import", good.encode(), "text/csv", token=op,
                                              headers={"Idempotency-Key": "imp-good"})
        imported = json.loads(raw)
        assert status == 202 and imported["published"] == 2 and [o["ref"] for o in imported["outages"]] == ["TP-1", "TP-2"]

        async def listed_all() -> list[dict]:
            return (await acall("GET", f"{api}?all=true", op))[1]["outages"]

        for _ in range(200):
            got = await listed_all()
            if len(got) == 2 and not next(o for o in got if o["ref"] == "TP-1")["active"]:
                break
            await asyncio.sleep(0.1)
        by_ref = {o["ref"]: o for o in await listed_all()}
        assert by_ref["TP-1"]["restored_at"] and by_ref["TP-2"]["active"] and by_ref["TP-2"]["district_id"] == "d-dzerzhinsky"
        _, dur = await acall("GET", f"{api}/durations?from=2026-11-01T00:00:00Z", op)
        tp1 = [r for r in dur["rows"] if r["ref"] == "TP-1"]
        assert [(r["house_key"], r["duration_hours"], r["open"]) for r in tp1] == [(f"fias:{HOUSE}", 10.5, False)]
        tp2 = sorted(r["house_key"] for r in dur["rows"] if r["ref"] == "TP-2")  # the district's houses of the directory
        assert tp2 == ["addr:г пермь ул мира д 7", "fias:9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c"]

        # the CLI: a bad file refused (nothing published), a good one published and registered
        rs = service_settings(RouterSettings, infra, prefix)
        (tmp_path / "bad.json").write_text('{"outages": [{"ref": "X", "resource": "gas"}]}')
        assert await import_outages(tmp_path / "bad.json", rs) == 1
        (tmp_path / "ok.json").write_text(json.dumps({"outages": [{
            "ref": "CLI-1", "resource": "electricity", "kind": "planned", "houses": HOUSE, "party_id": "energosbyt",
            "starts_at": "2026-11-25T10:00:00+05:00", "expected_restore_at": "2026-11-25T12:00:00+05:00"}]}))
        assert await import_outages(tmp_path / "ok.json", rs) == 0
        for _ in range(200):
            if "CLI-1" in {o["ref"] for o in await listed_all()}:
                break
            await asyncio.sleep(0.1)
        (cli_one,) = [o for o in await listed_all() if o["ref"] == "CLI-1"]
        _, one = await acall("GET", f"{api}/{cli_one['outage_id']}", op)
        assert one["log"][0]["actor"] == "admin:cli" and one["log"][0]["outcome"] == "applied"

