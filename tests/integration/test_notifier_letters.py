"""Paper answer letters on the real broker and database: the notifier served over HTTP with tokens from
the dev issuer consumes a paper appeal's registration, assignment and answer from the lifecycle topic;
the citizen has only a postal address, so the answer becomes one letter in the print queue, which an
operator downloads, marks printed and posted. A redelivered answer makes no second letter; the queue
answers only operators and admins."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from tests.support.engine import owned
from tests.support.http import api_call, request
from tests.support.kafka import eventually, produce
from tests.support.services import served, service_settings
from zhkh_contracts import (
    Address,
    Appeal,
    AppealAnswered,
    AppealAssigned,
    AppealRegistered,
    Applicant,
    Category,
    Channel,
    Consent,
    PartyKind,
    Topics,
    to_kafka,
)

pytestmark = pytest.mark.integration

NAME = "Сидоров Пётр Иванович"
POSTAL = "620014, г. Екатеринбург, ул. Малышева, д. 5, кв. 12"
ANSWER = "Перерасчёт платы за отопление за декабрь 2025 года выполнен, он отражён в квитанции за январь."
ORG = "МКУ «Единый контакт-центр ЖКХ»"


async def publish(infra, prefix, env) -> None:  # noqa: ANN001
    """A lifecycle event as its owner (intake, the router) publishes it."""
    key, value, headers = to_kafka(env)
    await produce(infra.bootstrap, Topics(prefix).lifecycle, value, key, [(k, v.encode()) for k, v in headers.items()])


def paper_appeal(number: str, postal: str | None = POSTAL, email: str | None = None) -> Appeal:
    at = datetime.now(UTC)
    return Appeal(appeal_id=uuid.uuid4(), registration_number=number, channel=Channel.PAPER, source_id=f"p-{uuid.uuid4()}",
                  received_at=at, registered_at=at, applicant=Applicant(name=NAME, postal_address=postal, email=email),
                  consent=Consent(personal_data=True), address=Address(text="ул. Малышева, 5"),
                  house_key="addr:ул малышева 5", category=Category.BILLING, category_source="channel",
                  emergency=False, text="Прошу сделать перерасчёт", source_refs={})


async def answer_paper_appeal(infra, prefix, a: Appeal):  # noqa: ANN001, ANN201
    aid = str(a.appeal_id)
    reg = owned(AppealRegistered(appeal=a), appeal_id=aid)
    assigned = owned(AppealAssigned(appeal_id=a.appeal_id, registration_number=a.registration_number,
                                    party_id="uk-zarechye", party_kind=PartyKind.MANAGING_ORGANISATION, reason="rule",
                                    assigned_at=datetime.now(UTC), party_timezone="Asia/Yekaterinburg",
                                    party_name='ООО "УК Заречье"'), appeal_id=aid, correlation_id=reg.correlation_id)
    answer = owned(AppealAnswered(appeal_id=a.appeal_id, registration_number=a.registration_number,
                                  party_id="uk-zarechye", text=ANSWER, answered_at=datetime.now(UTC)),
                   appeal_id=aid, correlation_id=reg.correlation_id)
    for env in (reg, assigned, answer):
        await publish(infra, prefix, env)
    return answer


def call(method: str, url: str, token: str | None = None):  # noqa: ANN201
    return api_call(method, url, None, token)


async def acall(*a, **kw):  # noqa: ANN002, ANN003, ANN201
    return await asyncio.to_thread(call, *a, **kw)


async def test_an_answer_by_post_is_one_letter_to_download_print_and_post(infra, prefix, issuer, mongo_db):
    from notifier.settings import NotifierSettings

    settings = service_settings(NotifierSettings, infra, prefix, auth_issuer=issuer.url, scan_interval_s=0.2,
                                quiet_hours="", letter_org_name=ORG, letter_org_address="620014, г. Екатеринбург, "
                                "пр. Ленина, д. 24а", letter_org_phone="+7 (343) 000-00-00")
    from notifier.main import create_app

    op, admin = issuer.token("op-1", "operator"), issuer.token("adm-1", "admin")
    async with served(create_app(settings)) as base:
        api = f"{base}/api/v1/letters"
        first = paper_appeal("ZH-2026-0100001")
        answer = await answer_paper_appeal(infra, prefix, first)

        async def rendered(n: int) -> list[dict]:
            status, body = await acall("GET", api, op)
            assert status == 200, body
            return body["letters"] if len(body["letters"]) == n and all(x["rendered_at"] for x in body["letters"]) \
                else None

        (row,) = await eventually(lambda: rendered(1), timeout=60)
        assert (row["registration_number"], row["state"]) == ("ZH-2026-0100001", "queued")
        # the listing names the number only: no addressee, no answer
        listing = json.dumps(await acall("GET", api, op), ensure_ascii=False)
        assert NAME not in listing and POSTAL not in listing and ANSWER not in listing

        status, pdf = await asyncio.to_thread(request, "GET", f"{api}/{row['letter_id']}/pdf", token=op)
        assert status == 200 and pdf.startswith(b"%PDF-")
        reader = PdfReader(io.BytesIO(pdf))
        text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in reader.pages))
        for part in ("На Ваше обращение № ZH-2026-0100001", NAME, POSTAL, ANSWER, ORG, 'ООО "УК Заречье"'):
            assert part in text, part
        # the answer's delivery record: by post, waiting for print (not lost, not sent by the delivery loop)
        delivery = await mongo_db["notifier_deliveries"].find_one({"_id": f"{answer.id}:answered"})
        assert (delivery["target_kind"], delivery["state"]) == ("post", "print_queued")
        assert POSTAL not in json.dumps(delivery, default=str, ensure_ascii=False)

        # printed, printed again (idempotent), then posted: the delivery is done
        s1, printed = await acall("POST", f"{api}/{row['letter_id']}/printed", op)
        s2, again = await acall("POST", f"{api}/{row['letter_id']}/printed", admin)
        assert (s1, s2, printed["state"]) == (200, 200, "printed") and again == printed
        s3, posted = await acall("POST", f"{api}/{row['letter_id']}/posted", op)
        assert s3 == 200 and posted["state"] == "posted" and posted["printed_at"] == printed["printed_at"]
        delivery = await mongo_db["notifier_deliveries"].find_one({"_id": f"{answer.id}:answered"})
        assert delivery["state"] == "sent"
        assert (await acall("GET", f"{api}?state=queued", op))[1]["letters"] == []
        status, body = await acall("GET", f"{api}?state=posted", op)
        assert [x["letter_id"] for x in body["letters"]] == [row["letter_id"]]

        # the answer redelivered (the same record again), then a second appeal's answer, whose letter shows
        # that the notifier is past the redelivery; the pause covers another partition lagging behind
        await publish(infra, prefix, answer)
        await answer_paper_appeal(infra, prefix, paper_appeal("ZH-2026-0100002"))
        await asyncio.sleep(1.0)
        letters = await eventually(lambda: rendered(2), timeout=60)
        assert sorted(x["registration_number"] for x in letters) == ["ZH-2026-0100001", "ZH-2026-0100002"]
        assert await mongo_db["notifier_letters"].count_documents({"appeal_id": str(first.appeal_id)}) == 1
        # the same PDF as before: the stored one
        assert (await asyncio.to_thread(request, "GET", f"{api}/{row['letter_id']}/pdf", token=op))[1] == pdf

        # authorisation: operators and admins only
        lid = row["letter_id"]
        who = {
            "anonymous": None, "garbage": "eyJhbGciOiJub25lIn0.e30.",
            "party": issuer.token("p-user", "party", party_ids=["uk-zarechye"]),
            "citizen": issuer.token("cit-1", "citizen"), "inspector": issuer.token("insp-1", "inspector"),
            "analyst": issuer.token("an-1", "analyst"), "operator": op, "admin": admin,
        }
        for method, url in (("GET", api), ("GET", f"{api}/{lid}/pdf"), ("POST", f"{api}/{lid}/printed"),
                            ("POST", f"{api}/{lid}/posted")):
            for name, token in who.items():
                status, body = await asyncio.to_thread(request, method, url, token=token)
                want = 200 if name in ("operator", "admin") else 401 if name in ("anonymous", "garbage") else 403
                assert status == want, (method, url, name, status)
                if want != 200:
                    problem = json.loads(body)
                    assert problem["code"] in ("unauthenticated", "invalid_token", "forbidden")
                    assert POSTAL not in body.decode() and NAME not in body.decode()
        # unknown and malformed ids, a bad cursor, a bad state
        assert (await acall("GET", f"{api}/{uuid.uuid4()}/pdf", op))[0] == 404
        assert (await acall("POST", f"{api}/{uuid.uuid4()}/posted", op))[0] == 404
        assert (await acall("GET", f"{api}/not-a-letter/pdf", op))[0] == 422
        assert (await acall("GET", f"{api}?after=%%%", op))[1]["code"] == "invalid_cursor"
        assert (await acall("GET", f"{api}?state=lost", op))[0] == 422
        # paging: one at a time, the cursor gives the second
        status, page1 = await acall("GET", f"{api}?limit=1", op)
        status, page2 = await acall("GET", f"{api}?limit=1&after={page1['next']}", op)
        assert page1["letters"][0]["letter_id"] != page2["letters"][0]["letter_id"]
        assert page1["next"] is not None and page2["next"] is None  # two letters: a full last page has no next


async def test_the_letter_store_on_the_real_database(mongo_db):
    """Queued once per id across transactions, the first PDF kept, marks only forward, a letter that
    failed to render left out of the loop's work (SecantusDB matches a missing field with null)."""
    from notifier.letters import MongoLetterStore
    from notifier.repository import MongoInsertOnce

    store = MongoLetterStore(mongo_db["notifier_letters"], mongo_db["notifier_deliveries"])
    await store.ensure_indexes()
    at = datetime.now(UTC)
    docs = [{"_id": str(uuid.uuid4()), "delivery_id": f"{uuid.uuid4()}:answered", "number": f"ZH-2026-010000{i}",
             "state": "queued", "created_at": at, "text": ANSWER} for i in range(3)]
    for _ in range(2):  # the same letters queued by two transactions (a redelivery): stored once
        async with mongo_db.client.start_session() as session, await session.start_transaction():
            port = MongoInsertOnce(mongo_db["notifier_letters"], session)
            for d in docs:
                await port.queue(d)
            await port.flush()
    assert await mongo_db["notifier_letters"].count_documents({}) == 3
    assert {d["_id"] for d in await store.unrendered(10)} == {d["_id"] for d in docs}
    assert await store.store_pdf(docs[0]["_id"], b"%PDF-first", at) is True
    assert await store.store_pdf(docs[0]["_id"], b"%PDF-second", at) is False  # the first rendering wins
    assert bytes((await store.get(docs[0]["_id"]))["pdf"]) == b"%PDF-first"
    await store.render_failed(docs[1]["_id"])
    assert [d["_id"] for d in await store.unrendered(10)] == [docs[2]["_id"]]
    posted = await store.mark(docs[2]["_id"], "posted", at, "op-1")  # posted without a printed mark
    assert posted["state"] == "posted" and posted["printed_at"] is not None
    assert (await store.mark(docs[2]["_id"], "printed", at, "op-2"))["state"] == "posted"
    rows = await store.listing(None, None, 10)
    assert len(rows) == 3 and all("text" not in r and "pdf" not in r for r in rows)
    page = await store.listing(None, (rows[0]["created_at"], rows[0]["_id"]), 10)
    assert [r["_id"] for r in page] == [r["_id"] for r in rows[1:]]
