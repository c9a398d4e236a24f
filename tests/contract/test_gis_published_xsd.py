"""Every request gis_sync builds and every response the emulator sends, for every operation, action
and error kind, validated against the *published* ГИС ЖКХ bundles (14.4.0.1 and 16.3.0.0) with
``xmlschema`` (fixed values, keys, patterns, lengths), not against the project's own subset.

The traffic is real: gis_sync's GisClient talks to the emulator over HTTP; every request and response
body is captured on the wire and each of its parts (RequestHeader/ResultHeader, the body element, a
fault's base:Fault) is checked against both bundles.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import etree

from devtools.gis_emulator import DEFAULT_ORG_PPA_GUID, EmulatorServer, EmulatorState
from gis_sync.mapping import (
    ANSWER,
    action_payload,
    not_required_cause,
    redirect_comment,
    rollover_comment,
    transport_guid,
    zeep_action,
)
from gis_sync.soap import GisClient, GisFault
from tests.support.gis_xsd import BUNDLES, envelope_parts, errors, published

ROOT = Path(__file__).resolve().parents[2]
PARTY_MAP = ROOT / "devtools" / "sample_gis" / "gis_parties.csv"
UK = "c32e262b-dfb9-5b4c-9d8e-8df0e87b94f2"
TEPLO = "e28a2919-a17c-5705-8937-efadbc97b6e1"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
BASE = "http://dom.gosuslugi.ru/schema/integration/base/"
APPEALS = "http://dom.gosuslugi.ru/schema/integration/appeals/"


class Wire:
    """Captures every request and response body that passes through an httpx client."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.responses: list[tuple[int, bytes]] = []

    def attach(self, client: httpx.AsyncClient) -> None:
        async def on_request(request: httpx.Request) -> None:
            self.requests.append(request.content)

        async def on_response(response: httpx.Response) -> None:
            await response.aread()
            self.responses.append((response.status_code, response.content))

        client.event_hooks = {"request": [on_request], "response": [on_response]}


def _item(kind: str, appeal_guid: str, **kw: object) -> dict:
    payload = action_payload(kind, UK, **kw)
    return {"_id": str(uuid.uuid4()), "appeal_guid": appeal_guid, "kind": kind, "payload": payload}


async def _done(client: GisClient, message_guid: str):
    for _ in range(50):
        st = await client.get_state(message_guid)
        if st.done:
            return st
        await asyncio.sleep(0.02)
    raise AssertionError("message never completed")


async def _import(client: GisClient, items: list[dict]):
    answer, appeal = [], []
    for item in items:
        section, action = zeep_action(item)
        (answer if section == "answer" else appeal).append(action)
    return await _done(client, await client.submit_import(answer_actions=answer, appeal_actions=appeal))


@pytest.fixture(scope="module")
def bundles():
    for v in BUNDLES:
        published(v)  # skips the module with the message when a bundle is missing
    return BUNDLES


async def test_all_traffic_of_every_operation_action_and_error_validates_against_both_bundles(bundles):
    state = EmulatorState.from_party_map(PARTY_MAP, processing_delay_s=0.0, polls_to_complete=3, seed=0,
                                         random_seed=7)
    today = datetime.now(UTC).date()
    a, b, c, d = state.create_appeals(generate=4, create_date=today - timedelta(days=1))
    state.withdraw(d.guid, "Вопрос решён без обращения")
    wire = Wire()
    seen: set[str] = set()
    async with EmulatorServer(state) as url:
        client = GisClient(url + "/ext-bus-appeals-service/services/AppealsAsync", DEFAULT_ORG_PPA_GUID)
        wire.attach(client._http)
        try:
            # exportAppeal by date window: RequestState 1, 2, then 3 with ExportAppealResult
            st = await _done(client, await client.submit_export(start=today - timedelta(days=3), end=today))
            assert len(st.appeals) == 4
            seen |= {"export_by_date", "state_1", "state_2", "export_result"}
            # every action gis_sync sends, then their business errors
            end = date.fromisoformat(state.appeal(a.guid).to_json()["execution_end_date"])
            new_end = end + timedelta(days=10)
            items = [
                _item("Performer", a.guid),
                _item("RedirectAppeal", b.guid, receiver=TEPLO, comment=redirect_comment(
                    registration_number="ZH-2026-0000002", gis_number=b.number, party_id="teplo",
                    reason="heating_to_supplier", redirected_on=today)),
                _item("Performer", c.guid),
            ]
            st = await _import(client, items)
            assert all(r.ok for r in st.import_results), st.import_results
            items = [
                _item(ANSWER, a.guid, text="Батареи промыты, температура в норме.",
                      answer_transport_guid=transport_guid("answer", a.guid)),
                _item("RollOverAppeal", c.guid, execution_date=new_end.isoformat(), comment=rollover_comment(
                    days=10, new_date=new_end, reason="Нужны запчасти")),
            ]
            st = await _import(client, items)
            assert all(r.ok for r in st.import_results), st.import_results
            st = await _import(client, [
                _item("Executed", a.guid),
                _item("AnswerIsNotRequired", c.guid, cause=not_required_cause(
                    registration_number="ZH-2026-0000003", withdrawn_on=today)),
            ])
            assert all(r.ok for r in st.import_results), st.import_results
            seen |= {"Performer", "RedirectAppeal", "Answer", "RollOverAppeal", "Executed", "AnswerIsNotRequired",
                     "import_ok"}
            st = await _import(client, [_item("Executed", b.guid), _item("Performer", str(uuid.uuid4()))])
            assert [e.code for r in st.import_results for e in r.errors] == ["EMU-003", "EMU-001"]
            seen.add("import_error")
            # exportAppeal by GUIDs: the history of every action above
            st = await _done(client, await client.submit_export(appeal_guids=[a.guid, b.guid, c.guid, d.guid]))
            kinds = {k for ap in st.appeals for h in ap.get("AppealHistory") or () for k in h}
            assert {"Answer", "Redirected", "RolledOver", "IsNotRequired"} <= kinds, kinds
            seen.add("export_by_guid")
            # message-level errors: nothing to export, unknown MessageGUID, an injected message error
            st = await _done(client, await client.submit_export(start=today + timedelta(days=400),
                                                                end=today + timedelta(days=401)))
            assert st.error is not None and st.error.code == "INT002012"
            st = await client.get_state(str(uuid.uuid4()))
            assert st.error is not None and st.error.code == "EMU-NOMSG"
            state.add_fault({"kind": "message_error", "count": 1})
            st = await _done(client, await client.submit_export(appeal_guids=[a.guid]))
            assert st.error is not None and st.error.code == "EMU-MSG"
            seen |= {"INT002012", "EMU-NOMSG", "message_error"}
            # SOAP faults: a request the schema refuses, a foreign organisation, an unknown operation
            foreign = GisClient(url + "/ext-bus-appeals-service/services/AppealsAsync", str(uuid.uuid4()))
            wire.attach(foreign._http)
            with pytest.raises(GisFault) as exc:
                await foreign.submit_export(appeal_guids=[a.guid])
            assert exc.value.code == "EMU-AUTH"
            await foreign.close()
            soap = url + "/ext-bus-appeals-service/services/AppealsAsync"
            for action, body in (
                ("urn:exportAppeal", b"<not-xml"),
                ("urn:nothing", wire.requests[0]),
                ("urn:exportAppeal", wire.requests[0].replace(b"14.8.0.1", b"14.8.0.1\" Id=\"x").replace(
                    b"<ns0:StartDate>", b"<ns0:StartDate>bad")),
            ):
                r = await client._http.post(soap, content=body, headers={"SOAPAction": action,
                                                                         "Content-Type": "text/xml"})
                assert r.status_code == 500
            seen |= {"EMU-AUTH", "EMU-XSD", "EMU-OP"}
        finally:
            await client.close()

    assert {"state_1", "state_2", "export_result", "import_error", "EMU-XSD"} <= seen
    faults = [body for status, body in wire.responses if status == 500]
    assert {etree.fromstring(f).findtext(f".//{{{BASE}}}ErrorCode") for f in faults} == {"EMU-AUTH", "EMU-XSD", "EMU-OP"}
    # the requests gis_sync built (the last three raw ones are deliberately broken)
    requests = [r for r in wire.requests[:-3]]
    responses = [body for _, body in wire.responses]
    assert len(requests) >= 15 and len(responses) == len(wire.requests)
    for version in bundles:
        for n, body in enumerate(requests):
            for part in envelope_parts(body):
                assert errors(version, part) == [], (version, "request", n, etree.QName(part).localname)
        for n, body in enumerate(responses):
            for part in envelope_parts(body):
                assert errors(version, part) == [], (version, "response", n, etree.QName(part).localname)
    tags = {etree.QName(p).localname for body in responses for p in envelope_parts(body)}
    assert {"ResultHeader", "AckRequest", "getStateResult", "Fault"} <= tags
    tags = {etree.QName(p).localname for body in requests for p in envelope_parts(body)}
    assert {"RequestHeader", "exportAppealRequest", "importAnswerRequest", "getStateRequest"} <= tags
