"""The ГИС ЖКХ AppealsAsync emulator over real HTTP: zeep (as gis_sync uses it) and raw envelopes.

Every response the emulator sends in these tests is validated against the repo's XSDs by a zeep
plugin with its own schema (built here, not taken from the emulator).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from zeep import AsyncClient, Plugin, Settings
from zeep.exceptions import Fault
from zeep.helpers import serialize_object
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from devtools.gis_emulator import DEFAULT_ORG_PPA_GUID, SOAP_PATH, EmulatorServer, EmulatorState
from devtools.gis_emulator.state import TOPICS

ROOT = Path(__file__).resolve().parents[2]
WSDL_DIR = ROOT / "services" / "gis_sync" / "wsdl"
WSDL = WSDL_DIR / "hcs-appeals-service-async.wsdl"
PARTY_MAP = ROOT / "devtools" / "sample_gis" / "gis_parties.csv"
BINDING = "{http://dom.gosuslugi.ru/schema/integration/appeals-service-async/}AppealsAsyncBinding"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
BASE = "http://dom.gosuslugi.ru/schema/integration/base/"
APPEALS = "http://dom.gosuslugi.ru/schema/integration/appeals/"
ORG = DEFAULT_ORG_PPA_GUID
UK = "c32e262b-dfb9-5b4c-9d8e-8df0e87b94f2"  # a performer in the party map
TSJ = "f16a4105-94df-56c1-a4c5-34beb8d0484b"
TEPLO = "e28a2919-a17c-5705-8937-efadbc97b6e1"  # another ГИС organisation in the party map
REDIRECT_COMMENT = ("Обращение переадресовано по компетенции в ресурсоснабжающую организацию, "
                    "которая отвечает за качество горячей воды в этом доме.")
DEMO_HOUSE = "5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b"
OTHER_HOUSE = "9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c"


@lru_cache(maxsize=1)
def xsd() -> etree.XMLSchema:
    wrapper = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:test">
      <xs:import namespace="{BASE}" schemaLocation="hcs-base-subset.xsd"/>
      <xs:import namespace="{APPEALS}" schemaLocation="hcs-appeals-subset.xsd"/>
    </xs:schema>"""
    return etree.XMLSchema(etree.fromstring(wrapper.encode(), base_url=(WSDL_DIR / "test-wrapper.xsd").as_uri()))


def assert_valid(el: etree._Element) -> None:
    doc = etree.fromstring(etree.tostring(el))
    assert xsd().validate(doc), f"{etree.QName(el).localname}: {xsd().error_log}"


class ValidateResponses(Plugin):
    """Validates the ResultHeader and the body (or the fault's base:Fault) of every response."""

    def __init__(self) -> None:
        self.validated = 0

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> tuple[Any, Any]:
        header = envelope.find(f"{{{SOAP}}}Header/{{{BASE}}}ResultHeader")
        assert header is not None, "no ResultHeader"
        assert_valid(header)
        body = next(c for c in envelope.find(f"{{{SOAP}}}Body") if isinstance(c.tag, str))
        if body.tag == f"{{{SOAP}}}Fault":
            body = body.find(f"detail/{{{BASE}}}Fault")
        assert_valid(body)
        self.validated += 1
        return envelope, http_headers


class Gis:
    """zeep against the WSDL with the endpoint overridden to the emulator, plus the control API."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.http = httpx.AsyncClient(timeout=timeout)
        self.wsdl_http = httpx.Client()
        self.plugin = ValidateResponses()
        # strict=False: zeep 4.3.3 flattens a choice nested in a sequence, so in strict mode it cannot read a
        # (valid) CommonResultType with Error instead of UpdateDate. The plugin validates against the XSD instead.
        self.client = AsyncClient(str(WSDL), transport=AsyncTransport(client=self.http, wsdl_client=self.wsdl_http),
                                  plugins=[self.plugin], settings=Settings(strict=False))
        # AsyncClient.create_service returns the synchronous proxy in zeep 4.3.3: build the async one
        self.service = AsyncServiceProxy(self.client, self.client.wsdl.bindings[BINDING], address=url + SOAP_PATH)

    async def close(self) -> None:
        await self.http.aclose()
        self.wsdl_http.close()

    @staticmethod
    def header(guid: str | None = None, org: str = ORG) -> dict[str, Any]:
        return {"Header": {"Date": datetime.now(UTC), "MessageGUID": guid or str(uuid.uuid4()), "orgPPAGUID": org}}

    async def export(self, header_guid: str | None = None, **criteria: Any) -> dict[str, Any]:
        response = await self.service.exportAppeal(_soapheaders=self.header(header_guid), version="13.1.10.1",
                                                   **criteria)
        return serialize_object(response.body, dict)

    async def import_answer(self, answer: list[dict[str, Any]] | None = None,
                            appeal: list[dict[str, Any]] | None = None,
                            header_guid: str | None = None) -> dict[str, Any]:
        response = await self.service.importAnswer(_soapheaders=self.header(header_guid), version="13.2.1.0",
                                                   AnswerAction=answer, AppealAction=appeal)
        return serialize_object(response.body, dict)

    async def state(self, message_guid: str) -> dict[str, Any]:
        response = await self.service.getState(_soapheaders=self.header(), MessageGUID=message_guid)
        return serialize_object(response.body, dict)

    async def result(self, message_guid: str, polls: int = 20) -> tuple[list[int], dict[str, Any]]:
        """Polls until RequestState 3; returns the states seen and the final getStateResult."""
        seen = []
        for _ in range(polls):
            st = await self.state(message_guid)
            seen.append(int(st["RequestState"]))
            if seen[-1] == 3:
                return seen, st
            await asyncio.sleep(0.01)
        raise AssertionError(f"not processed after {polls} polls: {seen}")

    async def run_import(self, answer: list[dict[str, Any]] | None = None,
                         appeal: list[dict[str, Any]] | None = None) -> dict[str, tuple[str | None, str | None]]:
        """importAnswer -> getState until done -> {TransportGUID: (GUID, ErrorCode)}."""
        ack = await self.import_answer(answer, appeal)
        _, st = await self.result(ack["Ack"]["MessageGUID"])
        return by_tg(st)

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        r = await self.http.request(method, self.url + path, json=body)
        return r.status_code, r.json()


def by_tg(st: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    assert st["ErrorMessage"] is None, st["ErrorMessage"]
    return {r["TransportGUID"]: (r["GUID"], r["Error"][0]["ErrorCode"] if r["Error"] else None)
            for r in st["ImportResult"]}


def tg() -> str:
    return str(uuid.uuid4())


def performer(guid: str, transport: str, answerer: str = UK) -> dict[str, Any]:
    return {"TransportGUID": transport, "AppealGUID": guid, "Performer": {"AnswererGUID": answerer}}


def answer(guid: str, transport: str, answer_transport: str, text: str = "Батареи промыты, температура в норме.",
           send: bool = True) -> dict[str, Any]:
    item: dict[str, Any] = {"TransportGUID": answer_transport, "AnswererGUID": UK, "LoadAnswer": {"AnswerText": text}}
    if send:
        item["SendAnswer"] = True
    return {"TransportGUID": transport, "AppealGUID": guid, "Answer": [item]}


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState.from_party_map(PARTY_MAP, processing_delay_s=0.0, polls_to_complete=2, random_seed=7)


@pytest.fixture
async def gis(state: EmulatorState) -> Any:
    async with EmulatorServer(state) as url:
        g = Gis(url)
        try:
            yield g
        finally:
            await g.close()


def envelope(body: str, org: str = ORG, header_guid: str | None = None) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="{SOAP}" xmlns:base="{BASE}" xmlns:ap="{APPEALS}">
  <soap:Header><base:RequestHeader><base:Date>2026-11-23T10:00:00+05:00</base:Date>
    <base:MessageGUID>{header_guid or uuid.uuid4()}</base:MessageGUID><base:orgPPAGUID>{org}</base:orgPPAGUID>
  </base:RequestHeader></soap:Header>
  <soap:Body>{body}</soap:Body>
</soap:Envelope>""".encode()


async def post_raw(url: str, body: bytes, action: str) -> tuple[int, etree._Element | bytes]:
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.post(url + SOAP_PATH, content=body,
                         headers={"content-type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'})
    if r.headers["content-type"].startswith("text/xml"):
        return r.status_code, etree.fromstring(r.content)
    return r.status_code, r.content


def fault_of(doc: etree._Element) -> tuple[str, str, str, str]:
    """(faultcode, faultstring, ErrorCode, ErrorMessage) of a SOAP 1.1 fault; its base:Fault validated."""
    f = doc.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert f is not None
    detail = f.find(f"detail/{{{BASE}}}Fault")
    assert_valid(detail)
    return (f.findtext("faultcode"), f.findtext("faultstring"), detail.findtext(f"{{{BASE}}}ErrorCode"),
            detail.findtext(f"{{{BASE}}}ErrorMessage"))


# ---- exportAppeal ---------------------------------------------------------------------------------


async def test_export_by_date_window_acks_then_goes_1_2_3_with_the_appeals(state, gis):
    state.polls_to_complete = 3
    status, created = await gis.control("POST", "/emulator/appeals", {"appeals": [
        {"create_date": "2026-03-10", "from_mobile": True, "topic_code": "1.2"},
        {"create_date": "2026-03-31", "fias_house_guid": OTHER_HOUSE},
        {"create_date": "2026-04-01"},  # outside the window
    ]})
    assert status == 201 and len(created) == 3
    header_guid = str(uuid.uuid4())
    ack = await gis.export(header_guid, StartDate=date(2026, 3, 1), EndDate=date(2026, 3, 31))
    assert ack["Ack"]["RequesterMessageGUID"] == header_guid
    message_guid = ack["Ack"]["MessageGUID"]
    assert message_guid != header_guid and state.message(message_guid).operation == "exportAppeal"

    seen, st = await gis.result(message_guid)
    assert seen == [1, 2, 3]
    assert st["MessageGUID"] == message_guid and st["ErrorMessage"] is None
    exported = st["ExportAppealResult"]
    assert [a["AppealGUID"] for a in exported] == [created[0]["appeal_guid"], created[1]["appeal_guid"]]
    first, src = exported[0], state.appeal(created[0]["appeal_guid"])
    assert first["AppealNumber"] == created[0]["appeal_number"]
    assert first["AppealNumber"].startswith("59-2026-")
    assert first["AppealCreateDate"] == date(2026, 3, 10)
    person = first["ApplicantInfo"]["Person"]
    assert (person["Surname"], person["FirstName"]) == (src.applicant.surname, src.applicant.first_name)
    assert first["ApplicantInfo"]["PhoneNumber"].startswith("+7") and "@" in first["ApplicantInfo"]["Email"]
    assert first["AppealTopic"] == {"Code": "1.2", "GUID": TOPICS["1.2"].guid, "Name": "Горячее водоснабжение"}
    assert first["FIASHouseGuid"] == DEMO_HOUSE and exported[1]["FIASHouseGuid"] == OTHER_HOUSE
    assert first["OKTMO"]["code"] == "57701000"
    assert first["AppealText"] == src.text and len(first["AppealText"]) > 20
    assert first["AppealStatus"] == "Send" and first["AnswererGUID"] is None
    assert first["ExecutionEndDate"] == date(2026, 4, 9)  # created + 30 days
    assert first["FromMobile"] is True and first["Redirected"] is None
    # processed once: later polls return the same stored result
    again = await gis.state(message_guid)
    assert again == st
    assert state.record()["requests"] == {"exportAppeal": 1, "importAnswer": 0, "getState": 4}
    assert gis.plugin.validated == 5


async def test_processing_happens_at_completion_not_at_submission(state, gis):
    state.polls_to_complete, state.processing_delay_s = 1, 0.3
    state.create_appeals(generate=1, create_date="2026-06-01")
    ack = await gis.export(StartDate=date(2026, 6, 1), EndDate=date(2026, 6, 1))
    message_guid = ack["Ack"]["MessageGUID"]
    assert (await gis.state(message_guid))["RequestState"] == 1  # polled, but the delay has not passed
    (late,) = state.create_appeals(generate=1, create_date="2026-06-01")  # created after the request was accepted
    await asyncio.sleep(0.35)
    st = await gis.state(message_guid)
    assert st["RequestState"] == 3
    assert late.guid in [a["AppealGUID"] for a in st["ExportAppealResult"]] and len(st["ExportAppealResult"]) == 2


async def test_empty_window_is_int002012(gis):
    ack = await gis.export(StartDate=date(2020, 1, 1), EndDate=date(2020, 1, 31))
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    assert st["ErrorMessage"] == {
        "ErrorCode": "INT002012", "Description": "Нет объектов для экспорта", "StackTrace": None}
    assert st["ExportAppealResult"] is None


async def test_export_by_guids_numbers_house_and_status(state, gis):
    a, b, c = state.create_appeals([{"create_date": "2026-05-02"}, {"create_date": "2026-05-03",
                                    "fias_house_guid": OTHER_HOUSE}, {"create_date": "2026-05-04"}])
    state.withdraw(c.guid)

    async def exported(**criteria: Any) -> list[str]:
        ack = await gis.export(**criteria)
        _, st = await gis.result(ack["Ack"]["MessageGUID"])
        return [x["AppealGUID"] for x in st["ExportAppealResult"] or ()]

    assert await exported(AppealGUID=[b.guid, str(uuid.uuid4())]) == [b.guid]
    assert await exported(AppealNumber=[c.number, a.number]) == [c.guid, a.guid]
    assert await exported(StartDate=date(2026, 5, 1), FIASHouseGuid=[OTHER_HOUSE]) == [b.guid]
    assert await exported(EndDate=date(2026, 5, 31), StatusOfAppeal={"Withdrawn": True}) == [c.guid]
    assert await exported(StartDate=date(2026, 5, 1), StatusOfAppeal={"Sent": True}) == [a.guid, b.guid]
    assert await exported(StartDate=date(2026, 5, 3), EndDate=date(2026, 5, 3)) == [b.guid]  # inclusive


# ---- importAnswer ---------------------------------------------------------------------------------


async def test_performer_then_answer_then_executed(state, gis):
    (appeal,) = state.create_appeals(generate=1)
    g = appeal.guid
    t_perf, t_ans, t_ans_item, t_exec = tg(), tg(), tg(), tg()

    ack = await gis.import_answer(appeal=[performer(g, t_perf)])
    assert state.appeal(g).answerer_guid is None  # accepted, not yet applied
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    assert by_tg(st) == {t_perf: (g, None)}
    assert isinstance(st["ImportResult"][0]["UpdateDate"], datetime)
    assert (state.appeal(g).status, state.appeal(g).answerer_guid) == ("InWork", UK)

    results = await gis.run_import(answer=[answer(g, t_ans, t_ans_item)])
    answer_guid = results[t_ans_item][0]
    assert results[t_ans] == (g, None) and results[t_ans_item][1] is None and answer_guid != g
    executed = {"TransportGUID": t_exec, "AppealGUID": g, "Executed": {"AnswererGUID": UK}}
    results = await gis.run_import(appeal=[executed])
    assert results == {t_exec: (g, None)}

    status, js = await gis.control("GET", f"/emulator/appeals/{g}")
    assert status == 200 and js["status"] == "Executed" and js["answerer_guid"] == UK
    assert js["answers"] == [{"answer_guid": answer_guid, "answer_number": f"{appeal.number}/1", "answerer_guid": UK,
                              "text": "Батареи промыты, температура в норме.", "sent": True,
                              "send_date": state.today().isoformat(), "create_date": state.today().isoformat(),
                              "attachments": []}]
    record = state.record()
    assert [(x["kind"], x["transport_guid"]) for x in record["applied"]] == [
        ("Performer", t_perf), ("LoadAnswer", t_ans_item), ("SendAnswer", t_ans), ("Executed", t_exec)]
    assert all(state.applied_count(t) == 1 for t in (t_perf, t_ans, t_ans_item, t_exec))
    assert record["duplicates"] == {} and record["requests"]["importAnswer"] == 3
    assert "Батареи" not in str(record)  # no answer text in the record

    # the export shows the performer, the sent answer in the history and the final status
    ack = await gis.export(AppealGUID=[g])
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    (exp,) = st["ExportAppealResult"]
    assert exp["AnswererGUID"] == UK and exp["AppealStatus"] == "Executed"
    assert exp["DateOfAppointment"] == state.today()
    sent = [h["Answer"] for h in exp["AppealHistory"] if h["Answer"]]
    assert len(sent) == 1 and sent[0]["AnswerGUID"] == answer_guid and sent[0]["AnswerIsSent"] is True
    assert sent[0]["Answerer"]["AnswererGUID"] == UK and sent[0]["SendAnswerDate"] == state.today()


async def test_a_transport_guid_is_applied_once_and_a_resend_gets_the_stored_result(state, gis):
    a, b = state.create_appeals(generate=2)
    t1, t_bad = tg(), tg()
    ack = await gis.import_answer(appeal=[performer(a.guid, t1)])
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    first, stored_update = by_tg(st), st["ImportResult"][0]["UpdateDate"]
    assert first == {t1: (a.guid, None)}
    refused = await gis.run_import(appeal=[performer(b.guid, t_bad, answerer=str(uuid.uuid4()))])
    assert refused == {t_bad: (None, "EMU-007")}

    state.drift(a.guid, clear_performer=True)  # would be re-applied if the resend were applied again
    ack1 = await gis.import_answer(appeal=[performer(a.guid, t1)])
    ack2 = await gis.import_answer(appeal=[performer(b.guid, t_bad)])  # now valid, but already answered
    _, st1 = await gis.result(ack1["Ack"]["MessageGUID"])
    _, st2 = await gis.result(ack2["Ack"]["MessageGUID"])
    assert by_tg(st1) == first and by_tg(st2) == refused
    assert st1["ImportResult"][0]["UpdateDate"] == stored_update
    assert state.appeal(a.guid).answerer_guid is None and state.appeal(b.guid).answerer_guid is None
    record = state.record()
    assert record["duplicates"] == {t1: 1, t_bad: 1}
    assert [x["transport_guid"] for x in record["applied"]] == [t1] and state.applied_count(t1) == 1
    assert state.applied_count(t_bad) == 0


async def test_a_resent_request_header_guid_gets_the_same_ack_and_creates_nothing(state, gis):
    (a,) = state.create_appeals(generate=1)
    header_guid, t1 = str(uuid.uuid4()), tg()
    ack1 = await gis.import_answer(appeal=[performer(a.guid, t1)], header_guid=header_guid)
    ack2 = await gis.import_answer(appeal=[performer(a.guid, t1)], header_guid=header_guid)
    assert ack1 == ack2 and ack1["Ack"]["RequesterMessageGUID"] == header_guid
    assert len(state.messages()) == 1
    ack3 = await gis.export(header_guid, AppealGUID=[a.guid])  # same header GUID, whatever the body
    assert ack3["Ack"]["MessageGUID"] == ack1["Ack"]["MessageGUID"] and len(state.messages()) == 1


async def test_business_rules(state, gis):
    a, b, c, d = (x.guid for x in state.create_appeals(generate=4))
    unknown_org = str(uuid.uuid4())
    t_early, t_early_item = tg(), tg()
    results = await gis.run_import(answer=[answer(a, t_early, t_early_item)])
    assert results == {t_early: (None, "EMU-006"), t_early_item: (None, "EMU-006")}  # no performer yet
    assert await gis.run_import(appeal=[performer(str(uuid.uuid4()), t := tg())]) == {t: (None, "EMU-001")}

    end = state.appeal(b).execution_end_date
    roll = {"ExecutionDate": end + timedelta(days=10), "Comment": "Продление срока: нужна экспертиза", "AnswererGUID": UK}
    t1, t2, t3 = tg(), tg(), tg()
    results = await gis.run_import(appeal=[
        {"TransportGUID": t1, "AppealGUID": b, "Performer": {"AnswererGUID": UK}, "RollOverAppeal": roll},
        {"TransportGUID": t2, "AppealGUID": c, "Executed": {"AnswererGUID": UK}},
        {"TransportGUID": t3, "AppealGUID": d, "RedirectAppeal": [
            {"Receiver": {"orgRootEntityGUID": unknown_org}, "Comment": REDIRECT_COMMENT, "AnswererGUID": UK}]},
    ])
    assert results == {t1: (b, None), t2: (None, "EMU-002"), t3: (None, "EMU-005")}
    assert state.appeal(b).execution_end_date == end + timedelta(days=10) and state.appeal(b).rolled_over

    t4, t5, t6 = tg(), tg(), tg()
    results = await gis.run_import(appeal=[
        {"TransportGUID": t4, "AppealGUID": b,
         "RollOverAppeal": {**roll, "ExecutionDate": end + timedelta(days=20)}},
        # atomic: the performer is valid, the rollover date is not later than the current one -> nothing applied
        {"TransportGUID": t5, "AppealGUID": c, "Performer": {"AnswererGUID": TSJ},
         "RollOverAppeal": {**roll, "ExecutionDate": state.appeal(c).execution_end_date}},
        {"TransportGUID": t6, "AppealGUID": d, "RedirectAppeal": [
            {"Receiver": {"orgRootEntityGUID": TEPLO}, "Comment": REDIRECT_COMMENT, "AnswererGUID": UK}]},
    ])
    assert results == {t4: (None, "EMU-004"), t5: (None, "EMU-008"), t6: (d, None)}
    assert state.appeal(c).answerer_guid is None and state.appeal(c).status == "Send"
    # redirected away: closed for this organisation, still exported with Redirected=true
    assert await gis.run_import(appeal=[performer(d, t7 := tg())]) == {t7: (None, "EMU-003")}
    ack = await gis.export(AppealGUID=[d])
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    (exp,) = st["ExportAppealResult"]
    assert exp["Redirected"] is True
    receivers = [h["Redirected"]["Receiver"]["orgRootEntityGUID"] for h in exp["AppealHistory"] if h["Redirected"]]
    assert receivers == [TEPLO]
    assert [x["kind"] for x in state.record()["applied"]] == ["Performer", "RedirectAppeal"]
    assert state.record()["applied"][0]["details"]["kinds"] == ["Performer", "RollOverAppeal"]


async def test_injected_business_fault_and_message_error(state, gis):
    a, b = (x.guid for x in state.create_appeals(generate=2))
    status, _ = await gis.control("POST", "/emulator/faults", {
        "kind": "business", "appeal_guid": a, "code": "EMU-900", "description": "Отказ", "count": 1})
    assert status == 201
    t1, t2 = tg(), tg()
    results = await gis.run_import(appeal=[performer(a, t1), performer(b, t2)])
    assert results == {t1: (None, "EMU-900"), t2: (b, None)}  # only that appeal, only once
    assert await gis.run_import(appeal=[performer(a, t3 := tg())]) == {t3: (a, None)}

    await gis.control("POST", "/emulator/faults", {"kind": "message_error", "code": "EMU-500", "description": "Сбой"})
    ack = await gis.import_answer(answer=[answer(a, t4 := tg(), tg())])
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    assert st["ErrorMessage"]["ErrorCode"] == "EMU-500" and st["ImportResult"] is None
    assert state.appeal(a).answers == [] and state.applied_count(t4) == 0
    assert [x["transport_guid"] for x in state.record()["applied"]] == [t2, t3]


# ---- SOAP faults ----------------------------------------------------------------------------------


async def test_schema_auth_and_operation_faults(state, gis):
    url = gis.url
    bad_guid = envelope('<ap:exportAppealRequest base:version="13.1.10.1"><ap:AppealGUID>nope</ap:AppealGUID>'
                        '</ap:exportAppealRequest>')
    status, doc = await post_raw(url, bad_guid, "urn:exportAppeal")
    code, faultstring, error_code, description = fault_of(doc)
    assert (status, code, error_code) == (500, "soap:Client", "EMU-XSD")
    assert "схеме" in faultstring and "AppealGUID" in description
    assert doc.find(f"{{{SOAP}}}Header/{{{BASE}}}ResultHeader") is not None

    no_version = envelope(
        f"<ap:exportAppealRequest><ap:AppealGUID>{uuid.uuid4()}</ap:AppealGUID></ap:exportAppealRequest>")
    assert fault_of((await post_raw(url, no_version, "urn:exportAppeal"))[1])[2] == "EMU-XSD"
    assert fault_of((await post_raw(url, b"<soap:Envelope", "urn:getState"))[1])[2] == "EMU-XSD"
    no_header = (f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:base="{BASE}"><soap:Body><base:getStateRequest>'
                 f'<base:MessageGUID>{uuid.uuid4()}</base:MessageGUID></base:getStateRequest>'
                 '</soap:Body></soap:Envelope>')
    assert fault_of((await post_raw(url, no_header.encode(), "urn:getState"))[1])[2] == "EMU-XSD"

    get_state = f"<base:getStateRequest><base:MessageGUID>{uuid.uuid4()}</base:MessageGUID></base:getStateRequest>"
    status, doc = await post_raw(url, envelope(get_state, org=str(uuid.uuid4())), "urn:getState")
    assert status == 500 and fault_of(doc)[2] == "EMU-AUTH"
    assert fault_of((await post_raw(url, envelope(get_state), "urn:exportAppeal"))[1])[2] == "EMU-OP"
    assert fault_of((await post_raw(url, envelope(get_state), "urn:deleteEverything"))[1])[2] == "EMU-OP"
    assert fault_of((await post_raw(url, envelope("<ap:exportAppealResult/>"), ""))[1])[2] == "EMU-OP"
    assert state.messages() == []

    with pytest.raises(Fault) as exc:  # zeep sees the fault too, with base:Fault in the detail
        await gis.service.getState(_soapheaders=gis.header(org=str(uuid.uuid4())), MessageGUID=str(uuid.uuid4()))
    assert exc.value.detail.find(f".//{{{BASE}}}ErrorCode").text == "EMU-AUTH"
    # a raw getState for a GUID nobody sent: processed, with EMU-NOMSG
    status, doc = await post_raw(url, envelope(get_state), "urn:getState")
    result = doc.find(f"{{{SOAP}}}Body/{{{APPEALS}}}getStateResult")
    assert status == 200 and result.findtext(f"{{{BASE}}}RequestState") == "3"
    assert result.findtext(f"{{{BASE}}}ErrorMessage/{{{BASE}}}ErrorCode") == "EMU-NOMSG"
    assert_valid(result)


# ---- injected transport faults --------------------------------------------------------------------


async def test_http_503_refuses_the_next_requests_and_stores_nothing(state, gis):
    (a,) = state.create_appeals(generate=1)
    await gis.control("POST", "/emulator/faults", {"kind": "http_503", "count": 2, "operation": "importAnswer"})
    ack = await gis.export(AppealGUID=[a.guid])  # another operation: not affected
    request = envelope(f'<ap:importAnswerRequest base:version="13.2.1.0"><ap:AppealAction>'
                       f'<base:TransportGUID>{tg()}</base:TransportGUID><ap:AppealGUID>{a.guid}</ap:AppealGUID>'
                       f'<ap:Performer><ap:AnswererGUID>{UK}</ap:AnswererGUID></ap:Performer>'
                       f'</ap:AppealAction></ap:importAnswerRequest>')
    for _ in range(2):
        status, body = await post_raw(gis.url, request, "urn:importAnswer")
        assert status == 503 and "недоступен".encode() in body  # plain text, not SOAP
    assert [m.operation for m in state.messages()] == ["exportAppeal"]
    assert (await gis.control("GET", "/emulator/faults"))[1] == []
    t1 = tg()
    assert await gis.run_import(appeal=[performer(a.guid, t1)]) == {t1: (a.guid, None)}
    await gis.result(ack["Ack"]["MessageGUID"])
    assert state.record()["requests"]["importAnswer"] == 3  # the refused ones were received too


async def test_stuck_message_never_completes(state, gis):
    (a,) = state.create_appeals(generate=1)
    await gis.control("POST", "/emulator/faults", {"kind": "stuck", "count": 1})
    stuck = (await gis.import_answer(appeal=[performer(a.guid, t1 := tg())]))["Ack"]["MessageGUID"]
    states = [int((await gis.state(stuck))["RequestState"]) for _ in range(6)]
    assert states == [1, 2, 2, 2, 2, 2]
    assert state.appeal(a.guid).answerer_guid is None and state.applied_count(t1) == 0
    # the client gives up and sends the same TransportGUID in a new message: applied once
    assert await gis.run_import(appeal=[performer(a.guid, t1)]) == {t1: (a.guid, None)}
    assert state.applied_count(t1) == 1 and state.record()["duplicates"] == {}


async def test_timeout_after_accept_delays_the_answer_but_keeps_the_message(state, gis):
    (a,) = state.create_appeals(generate=1)
    await gis.control("POST", "/emulator/faults", {"kind": "timeout", "count": 1, "seconds": 0.8, "after_accept": True})
    impatient = Gis(gis.url, timeout=0.3)
    header_guid, t1 = str(uuid.uuid4()), tg()
    try:
        started = asyncio.get_running_loop().time()
        slow = asyncio.create_task(impatient.import_answer(appeal=[performer(a.guid, t1)], header_guid=header_guid))
        await asyncio.sleep(0.1)
        status, health = await gis.control("GET", "/emulator/health")  # served while the other one sleeps
        assert (status, health) == (200, {"status": "ok"})
        assert asyncio.get_running_loop().time() - started < 0.5
        with pytest.raises(httpx.TimeoutException):
            await slow
    finally:
        await impatient.close()
    (message,) = state.messages()  # received although the client timed out
    assert message.requester_guid == header_guid
    ack = await gis.import_answer(appeal=[performer(a.guid, t1)], header_guid=header_guid)  # the client's resend
    assert ack["Ack"]["MessageGUID"] == message.guid and len(state.messages()) == 1
    assert by_tg((await gis.result(message.guid))[1]) == {t1: (a.guid, None)}

    # without after_accept: a late 504, and nothing was received
    await gis.control("POST", "/emulator/faults", {"kind": "timeout", "seconds": 0.2, "operation": "exportAppeal"})
    request = envelope(f'<ap:exportAppealRequest base:version="13.1.10.1"><ap:AppealGUID>{a.guid}</ap:AppealGUID>'
                       f'</ap:exportAppealRequest>')
    started = asyncio.get_running_loop().time()
    status, _ = await post_raw(gis.url, request, "urn:exportAppeal")
    assert status == 504 and asyncio.get_running_loop().time() - started >= 0.2 and len(state.messages()) == 1


# ---- the citizen and the web UI -------------------------------------------------------------------


async def test_withdraw_and_drift(state, gis):
    a, b = (x.guid for x in state.create_appeals(generate=2))
    await gis.run_import(appeal=[performer(a, tg()), performer(b, tg())])
    await gis.run_import(answer=[answer(a, tg(), tg())])
    record_before = state.record()["applied"]

    status, js = await gis.control("POST", f"/emulator/appeals/{b}/withdraw", {"comment": "Вопрос решён"})
    assert status == 200 and js["status"] == "Withdrawn" and js["withdrawn"]
    assert js["withdrawn_comment"] == "Вопрос решён"
    t1, t2 = tg(), tg()
    assert await gis.run_import(answer=[answer(b, t1, t2)]) == {t1: (None, "EMU-003"), t2: (None, "EMU-003")}

    status, js = await gis.control("POST", f"/emulator/appeals/{a}/drift",
                                   {"clear_performer": True, "unsend_answers": True})
    assert status == 200 and js["answerer_guid"] is None and [x["sent"] for x in js["answers"]] == [False]
    assert state.record()["applied"] == record_before  # drift is not an applied action

    ack = await gis.export(AppealGUID=[a, b])
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    ea, eb = st["ExportAppealResult"]
    assert ea["AnswererGUID"] is None and ea["AppealStatus"] == "InWork"
    assert [h["Answer"]["AnswerIsSent"] for h in ea["AppealHistory"] if h["Answer"]] == [None]
    assert eb["AppealStatus"] == "Withdrawn" and eb["AppealWithdrawn"] == {"Comment": "Вопрос решён"}

    status, js = await gis.control("POST", f"/emulator/appeals/{a}/drift", {"status": "Executed"})
    assert js["status"] == "Executed"
    assert (await gis.control("POST", f"/emulator/appeals/{a}/drift", {"status": "Closed"}))[0] == 400
    assert (await gis.control("POST", f"/emulator/appeals/{a}/withdraw", {}))[0] == 409  # executed: too late


async def test_every_optional_part_of_an_exported_appeal_validates(state, gis):
    (a,) = state.create_appeals([{"collective": True, "from_mobile": True, "npa_requirements": "ЖК РФ ст. 161",
                                  "patronymic": None, "another_topic": "Шум от соседей", "topic_code": "1.1"}])
    (b,) = state.create_appeals(generate=1)
    await gis.run_import(appeal=[performer(a.guid, tg()), performer(b.guid, tg())])
    await gis.run_import(answer=[answer(a.guid, tg(), tg())])
    end = state.appeal(a.guid).execution_end_date + timedelta(days=5)
    results = await gis.run_import(appeal=[
        {"TransportGUID": (t1 := tg()), "AppealGUID": a.guid,
         "RollOverAppeal": {"ExecutionDate": end, "Comment": "Нужны запчасти для ремонта насоса", "AnswererGUID": UK},
         "AnswerIsNotRequired": {"Cause": "Повторное обращение по тому же вопросу", "AnswererGUID": UK}},
        {"TransportGUID": (t2 := tg()), "AppealGUID": b.guid, "RedirectAppeal": [
            {"Receiver": {"orgRootEntityGUID": TEPLO}, "Comment": REDIRECT_COMMENT, "AnswererGUID": UK}]},
    ])
    assert results == {t1: (a.guid, None), t2: (b.guid, None)}
    ack = await gis.export(AppealGUID=[a.guid, b.guid])
    _, st = await gis.result(ack["Ack"]["MessageGUID"])
    ea, eb = st["ExportAppealResult"]
    assert ea["AnotherTopic"] == "Шум от соседей" and ea["AppealTopic"] is None
    assert ea["RolledOver"] and ea["AnswerIsNotRequired"] and ea["Collective"] and ea["FromMobile"]
    assert ea["ExecutionEndDate"] == end and ea["NPARequirements"] == "ЖК РФ ст. 161"
    assert ea["ApplicantInfo"]["Person"]["Patronymic"] is None and ea["AppealStatus"] == "Executed"
    parts = ("Answer", "Redirected", "RolledOver", "IsNotRequired")
    kinds = [next((k for k in parts if h[k]), "ChangeDate only") for h in ea["AppealHistory"]]
    assert kinds == ["ChangeDate only", "Answer", "RolledOver", "IsNotRequired"]  # the first: the Performer
    assert eb["Redirected"] is True
    assert gis.plugin.validated >= 10  # each response above, validated against the XSD


# ---- control API and the command line -------------------------------------------------------------


async def test_control_api(state, gis):
    status, created = await gis.control("POST", "/emulator/appeals", {"generate": 5, "create_date": "2026-02-01"})
    assert status == 201 and len(created) == 5
    assert len({x["appeal_number"] for x in created}) == 5 and len({x["appeal_guid"] for x in created}) == 5
    for x in created:
        assert x["create_date"] == "2026-02-01" and x["execution_end_date"] == "2026-03-03"
        assert x["status"] == "Send" and x["fias_house_guid"] == DEMO_HOUSE
        assert x["applicant"]["phone"].startswith("+79") and len(x["applicant"]["phone"]) == 12
        assert x["topic"]["code"] in TOPICS and any("а" <= ch <= "я" for ch in x["text"])
        assert x["applicant"]["surname"][0].isupper() and x["oktmo"]["code"] == "57701000"
    status, one = await gis.control("GET", f"/emulator/appeals/{created[0]['appeal_guid']}")
    assert status == 200 and one == created[0]
    assert (await gis.control("GET", f"/emulator/appeals/{uuid.uuid4()}"))[0] == 404
    assert len((await gis.control("GET", "/emulator/appeals"))[1]) == 5
    assert (await gis.control("POST", "/emulator/appeals", {"appeals": [{"colour": "red"}]}))[0] == 400
    assert (await gis.control("POST", "/emulator/appeals", {"appeals": [
        {"appeal_number": created[0]["appeal_number"]}]}))[0] == 400
    assert (await gis.control("POST", "/emulator/faults", {"kind": "meteor"}))[0] == 400
    assert (await gis.control("POST", "/emulator/faults", {"kind": "timeout", "count": 1}))[0] == 400
    await gis.control("POST", "/emulator/faults", {"kind": "stuck", "count": 3})
    assert (await gis.control("GET", "/emulator/faults"))[1] == [{"kind": "stuck", "count": 3}]
    assert (await gis.control("DELETE", "/emulator/faults"))[0] == 200
    assert (await gis.control("GET", "/emulator/faults"))[1] == []
    assert (await gis.control("GET", "/emulator/record"))[1] == {
        "applied": [], "duplicates": {}, "requests": {"exportAppeal": 0, "importAnswer": 0, "getState": 0}}
    r = await gis.http.get(gis.url + SOAP_PATH + "?wsdl")
    assert r.status_code == 200 and f'location="{gis.url}{SOAP_PATH}"'.encode() in r.content
    assert (await gis.http.get(gis.url + "/ext-bus-appeals-service/services/hcs-base-subset.xsd")).status_code == 200


def test_party_map_and_seed():
    state = EmulatorState.from_party_map(PARTY_MAP, seed=3)
    assert len(state.appeals()) == 3 and UK in state.answerers and TEPLO in state.orgs
    assert len(state.answerers) == 7 and len(state.orgs) == 5 and not state.answerers & state.orgs


def test_command_line_prints_the_url_and_stops_cleanly_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.gis_emulator", "--host", "127.0.0.1", "--port", "0", "--seed", "2",
         "--party-map", str(PARTY_MAP), "--org-ppa-guid", ORG, "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("gis-emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert httpx.get(url + "/emulator/health").json() == {"status": "ok"}
        assert len(httpx.get(url + "/emulator/appeals").json()) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
