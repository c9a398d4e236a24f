"""gis_sync's pure translations: exported ГИС appeal -> raw event, party map, importAnswer items, drift."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import pytest
from lxml import etree

import xmlschema
from gis_sync.mapping import (
    PartyMap,
    action_payload,
    category_of_topic,
    not_required_cause,
    raw_from_export,
    redirect_comment,
    rollover_comment,
    transport_guid,
    zeep_action,
)
from gis_sync.reconcile import drift
from gis_sync.soap import BINDING, IMPORT_VERSION, WSDL, GisClient
from zeep.helpers import serialize_object
from zhkh_contracts import ApplicantKind, Category, Channel

ROOT = Path(__file__).resolve().parents[2]
GUID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

EXPORTED = {
    "AppealGUID": GUID,
    "ApplicantInfo": {"Person": {"Surname": "Петрова", "FirstName": "Анна", "Patronymic": "Игоревна"},
                      "PostAddress": "г. Пермь, ул. Ленина, д. 10", "ApartmentNumber": "15",
                      "Email": "anna@example.ru", "PhoneNumber": "+79123456789"},
    "AppealNumber": "59-2026-0000007",
    "AppealCreateDate": date(2026, 11, 20),
    "AppealTopic": {"Code": "12", "GUID": "6f9d2c1e-0a1b-4c2d-8e3f-405162738495", "Name": "Отопление"},
    "FIASHouseGuid": "5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b",
    "OKTMO": {"code": "57701000"},
    "AppealText": "В квартире холодно, батареи еле тёплые.",
    "AppealStatus": "Send",
    "ExecutionEndDate": date(2026, 12, 21),
    "FromMobile": True,
    "Collective": None,
}


def test_exported_appeal_becomes_a_raw_gis_submission_with_ids_and_deadline():
    raw = raw_from_export(EXPORTED)
    assert raw.channel is Channel.GIS
    assert raw.source_id == GUID
    assert raw.applicant.name == "Петрова Анна Игоревна"
    assert raw.applicant.kind is ApplicantKind.PERSON
    assert raw.address.fias_house_guid == uuid.UUID("5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b")
    assert raw.address.apartment == "15"
    assert raw.category is Category.HEATING
    assert raw.channel_meta["gis_appeal_guid"] == GUID
    assert raw.channel_meta["gis_appeal_number"] == "59-2026-0000007"
    assert raw.channel_meta["execution_end_date"] == "2026-12-21"  # the notifier's deadline source
    assert raw.channel_meta["gis_from_mobile"] == "true"
    assert raw.consent.personal_data is True


def test_unknown_topic_is_left_to_the_classifier():
    assert category_of_topic("Прочие вопросы") is None
    assert category_of_topic("Вывоз ТКО") is Category.WASTE
    raw = raw_from_export({**EXPORTED, "AppealTopic": None, "AnotherTopic": "Шум от соседей"})
    assert raw.category is None and raw.channel_meta["gis_topic_name"] == "Шум от соседей"


def test_party_map_reads_the_sample_and_refuses_ambiguous_rows(tmp_path):
    parties = PartyMap.load(ROOT / "devtools/sample_gis/gis_parties.csv")
    assert parties.get("uk-zarechye").answerer_guid and parties.get("uk-zarechye").org_guid is None
    assert parties.get("tgk-teplo").org_guid and parties.get("tgk-teplo").answerer_guid is None
    assert parties.get("nobody") is None
    bad = tmp_path / "bad.csv"
    bad.write_text(f"party_id,answerer_guid,org_guid\nx,{GUID},{GUID}\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        PartyMap.load(bad)


def test_transport_guids_are_stable_per_input():
    assert transport_guid("ev", 0) == transport_guid("ev", 0)
    assert transport_guid("ev", 0) != transport_guid("ev", 1)


def _serialised(item: dict) -> etree._Element:
    """The importAnswer body zeep builds for one queue item, validated against our XSD."""
    client = GisClient("http://127.0.0.1:9/none", "0f6f1d2a-5c1e-4b8e-9f00-000000000059")
    section, action = zeep_action(item)
    kwargs = {"AnswerAction" if section == "answer" else "AppealAction": [action]}
    msg = client._client.create_message(client._service, "importAnswer", _soapheaders=client._header(), version=IMPORT_VERSION, **kwargs)
    body = msg.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0]
    xmlschema.XMLSchema(str(WSDL.parent / "hcs-appeals-subset.xsd")).validate(body)
    return body


@pytest.mark.parametrize("kind,kw", [
    ("Performer", {}),
    ("Executed", {}),
    ("RedirectAppeal", {"receiver": "e28a2919-a17c-5705-8937-efadbc97b6e1", "comment": redirect_comment(
        registration_number="ZH-2026-0000001", gis_number="59-2026-0000001", party_id="teplo",
        reason="heating_to_supplier", redirected_on=date(2026, 12, 1))}),
    ("RollOverAppeal", {"execution_date": "2027-01-10", "comment": rollover_comment(
        days=10, new_date=date(2027, 1, 10), reason="Нужны запчасти")}),
    ("AnswerIsNotRequired", {"cause": not_required_cause(registration_number="ZH-2026-0000001",
                                                          withdrawn_on=date(2026, 12, 1))}),
    ("Answer", {"text": "Батареи промыты, температура в норме.", "answer_transport_guid": transport_guid("a", 1)}),
])
def test_every_action_serialises_to_a_schema_valid_import_answer(kind, kw):
    answerer = "c32e262b-dfb9-5b4c-9d8e-8df0e87b94f2"
    item = {"_id": transport_guid("e", kind), "appeal_guid": GUID, "kind": kind, "payload": action_payload(kind, answerer, **kw)}
    body = _serialised(item)
    ns = "{http://dom.gosuslugi.ru/schema/integration/appeals/}"
    element = body.find(f"{ns}AnswerAction" if kind == "Answer" else f"{ns}AppealAction")
    assert element is not None
    if kind != "Answer":
        assert element.find(f"{ns}{kind}") is not None
    else:
        assert element.find(f"{ns}Answer/{ns}SendAnswer").text == "true"


def test_drift_lists_confirmed_steps_that_gis_no_longer_shows():
    link = {"confirmed": {"performer": "p-1", "answer_sent": True, "executed": True}}
    intact = {"AnswererGUID": "p-1", "AppealStatus": "Executed",
              "AppealHistory": [{"ChangeDate": date(2026, 11, 21), "Answer": {"AnswerIsSent": True}}]}
    assert drift(link, intact) == []
    drifted = {"AnswererGUID": None, "AppealStatus": "InWork", "AppealHistory": []}
    assert drift(link, drifted) == ["Performer", "Answer", "Executed"]


def test_import_results_of_both_kinds_parse():
    """zeep 4.3.3's strict mode cannot read CommonResultType's Error branch; the client parses leniently."""
    client = GisClient("http://127.0.0.1:9/none", "0f6f1d2a-5c1e-4b8e-9f00-000000000059")
    b, a = "http://dom.gosuslugi.ru/schema/integration/base/", "http://dom.gosuslugi.ru/schema/integration/appeals/"
    xml = f"""<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
      <a:getStateResult xmlns:a="{a}" xmlns:b="{b}" b:version="12.2.0.5">
        <b:RequestState>3</b:RequestState><b:MessageGUID>{GUID}</b:MessageGUID>
        <a:ImportResult><b:TransportGUID>{GUID}</b:TransportGUID>
          <b:Error><b:ErrorCode>EMU-004</b:ErrorCode><b:Description>Срок уже продлевался</b:Description></b:Error></a:ImportResult>
        <a:ImportResult><b:GUID>{GUID}</b:GUID><b:TransportGUID>{GUID}</b:TransportGUID>
          <b:UpdateDate>2026-11-23T10:00:00Z</b:UpdateDate></a:ImportResult>
      </a:getStateResult></s:Body></s:Envelope>"""
    op = client._client.wsdl.bindings[BINDING].get("getState")
    reply = op.process_reply(etree.fromstring(xml.encode()))
    body = serialize_object(reply.body if hasattr(reply, "body") else reply, dict)
    failed, ok = body["ImportResult"]
    assert failed["Error"][0]["ErrorCode"] == "EMU-004" and ok["GUID"] == GUID and ok["UpdateDate"] is not None


def test_incoming_attachments_become_references_and_answer_attachments_go_back():
    from gis_sync.mapping import GIS_FILE_URI, attachment_refs, gis_attachment

    guid = "5eed0000-0000-4000-8000-000000000001"
    refs = attachment_refs([
        {"Name": "фото.jpg", "Description": "Фото протечки", "Attachment": {"AttachmentGUID": guid},
         "AttachmentHASH": "ab12"},
        {"Name": "скан.pdf", "Description": "Скан", "Attachment": {"AttachmentGUID": guid.replace("1", "2")}},
    ])
    assert [(r.uri, r.name, r.size_bytes, r.media_type) for r in refs] == [
        (GIS_FILE_URI + guid + "#ab12", "фото.jpg", None, None),
        (GIS_FILE_URI + guid.replace("1", "2"), "скан.pdf", None, None),
    ]
    assert gis_attachment(refs[0]) == {"Name": "фото.jpg", "Description": "фото.jpg",
                                       "Attachment": {"AttachmentGUID": guid}, "AttachmentHASH": "ab12"}
    from zhkh_contracts import AttachmentRef

    assert gis_attachment(AttachmentRef(uri="s3://bucket/answer.pdf", name="answer.pdf")) is None  # not in ГИС
    payload = action_payload("Answer", "c32e262b-dfb9-5b4c-9d8e-8df0e87b94f2", text="Ответ", attachments=[
        gis_attachment(refs[0])], answer_transport_guid=transport_guid("a", 2))
    body = _serialised({"_id": transport_guid("e", "att"), "appeal_guid": GUID, "kind": "Answer", "payload": payload})
    assert body.find(".//{http://dom.gosuslugi.ru/schema/integration/appeals/}LoadAnswer/"
                     "{http://dom.gosuslugi.ru/schema/integration/appeals/}Attachment") is not None
