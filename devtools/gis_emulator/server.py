"""The emulator over HTTP: the AppealsAsync SOAP endpoint and the JSON control API (a plain ASGI app).

    POST /ext-bus-appeals-service/services/AppealsAsync          SOAP 1.1 (exportAppeal, importAnswer, getState)
    GET  /ext-bus-appeals-service/services/AppealsAsync?wsdl     the WSDL (address = this server); XSDs beside it
    /emulator/...                                                control API, see docs/gis_emulator.md

Requests and responses are validated against the repo's XSDs (services/gis_sync/wsdl). A response
that would not validate is a bug of the emulator: it is answered with a soap:Server fault EMU-INTERNAL.
With a ``SignatureVerifier`` (``--trusted-cert``) every exportAppeal/importAnswer must carry a valid
XAdES-BES GOST signature made with the trusted certificate, else fault EMU-SIG.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
import xmlschema
from lxml import etree

from devtools import embedded

from .signature import SignatureError, SignatureVerifier
from .state import (
    Ack,
    Applicant,
    FileRef,
    AnswerAction,
    AnswerIsNotRequired,
    AnswerItem,
    Appeal,
    AppealAction,
    EmulatorState,
    ExportRequest,
    ImportRequest,
    ImportResult,
    Performer,
    RedirectAppeal,
    RollOverAppeal,
    StateReply,
)

log = logging.getLogger("devtools.gis_emulator")

WSDL_DIR = Path(__file__).resolve().parents[2] / "services" / "gis_sync" / "wsdl"
WSDL_FILE = "hcs-appeals-service-async.wsdl"
SERVICE_DIR = "/ext-bus-appeals-service/services/"
SOAP_PATH = SERVICE_DIR + "AppealsAsync"

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
BASE_NS = "http://dom.gosuslugi.ru/schema/integration/base/"
APPEALS_NS = "http://dom.gosuslugi.ru/schema/integration/appeals/"
NSI_NS = "http://dom.gosuslugi.ru/schema/integration/nsi-base/"
ORG_NS = "http://dom.gosuslugi.ru/schema/integration/organizations-registry-base/"
NSMAP = {"soap": SOAP_NS, "base": BASE_NS, "appeals": APPEALS_NS, "nsi-base": NSI_NS,
         "organizations-registry-base": ORG_NS}
STATE_RESULT_VERSION = "12.2.0.5"  # getStateResult's base:version is fixed="12.2.0.5" in the published schemas

ACTIONS = {"urn:exportAppeal": "exportAppeal", "urn:importAnswer": "importAnswer", "urn:getState": "getState"}
BODY_OPERATIONS = {
    f"{{{APPEALS_NS}}}exportAppealRequest": "exportAppeal",
    f"{{{APPEALS_NS}}}importAnswerRequest": "importAnswer",
    f"{{{BASE_NS}}}getStateRequest": "getState",
}
MAX_BODY = 16 * 1024 * 1024
# No ГИС ЖКХ error code for a failed signature check is published in the schemas (hcs-base.xsd documents
# only the base:Fault structure) nor anywhere we could check, so the code is the emulator's own.
SIGNATURE_FAULT = "EMU-SIG"
UNSIGNED_WARNING = ("signatures are NOT checked: unsigned mode, for the local emulator only "
                    "(real ГИС ЖКХ refuses unsigned requests; start with --trusted-cert to check them)")


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@lru_cache(maxsize=1)
def schema() -> xmlschema.XMLSchema:
    """The base and appeals namespaces (and what they import), from the repo's XSDs, with the
    ``xmlschema`` validator: unlike libxml2 it enforces ``fixed`` values (IsOperatorSignature, the
    getStateResult version) as well as patterns, lengths and the ``xs:key``s."""
    return xmlschema.XMLSchema(str(WSDL_DIR / "hcs-appeals-subset.xsd"))


def validation_errors(element: etree._Element) -> list[str]:
    """Schema errors of one element (validated as the root of its own document). Empty: valid."""
    s = schema()
    return [_error_text(e) for e in s.iter_errors(copy.deepcopy(element))]


def _error_text(e: xmlschema.XMLSchemaValidationError) -> str:
    where = e.path or ""
    return f"{e.reason or e.message} ({where})" if where else str(e.reason or e.message)


class SoapFault(Exception):
    def __init__(self, code: str, faultstring: str, description: str, faultcode: str = "soap:Client") -> None:
        super().__init__(code)
        self.code, self.faultstring, self.description, self.faultcode = code, faultstring, description, faultcode


# ---------------------------------------------------------------------------------------------
# request parsing (the body has already been validated against the XSD)


def _text(el: etree._Element | None) -> str | None:
    return None if el is None or el.text is None else el.text.strip()


def _child(el: etree._Element, ns: str, name: str) -> etree._Element | None:
    return el.find(_q(ns, name))


def _children_text(el: etree._Element, ns: str, name: str) -> tuple[str, ...]:
    return tuple(t for c in el.findall(_q(ns, name)) if (t := _text(c)))


def _xs_date(value: str | None) -> date | None:
    if not value:
        return None
    m = re.match(r"^(\d{4}-\d{2}-\d{2})", value)
    return date.fromisoformat(m.group(1)) if m else None


def _xs_true(el: etree._Element | None) -> bool:
    return el is not None and (_text(el) or "").lower() in ("true", "1")


def parse_export(el: etree._Element) -> ExportRequest:
    statuses: list[str] = []
    status_el = _child(el, APPEALS_NS, "StatusOfAppeal")
    theme = _child(el, APPEALS_NS, "AppealTheme")
    if status_el is not None:
        for flag, status in (("NotSent", "NotSent"), ("Sent", "Send"), ("InWork", "InWork"),
                             ("Executed", "Executed"), ("Withdrawn", "Withdrawn")):
            if _xs_true(_child(status_el, APPEALS_NS, flag)):
                statuses.append(status)
    return ExportRequest(
        appeal_guids=_children_text(el, APPEALS_NS, "AppealGUID"),
        appeal_numbers=_children_text(el, APPEALS_NS, "AppealNumber"),
        start_date=_xs_date(_text(_child(el, APPEALS_NS, "StartDate"))),
        end_date=_xs_date(_text(_child(el, APPEALS_NS, "EndDate"))),
        fias_house_guids=_children_text(el, APPEALS_NS, "FIASHouseGuid"),
        statuses=tuple(statuses),
        theme_code=None if theme is None else _text(_child(theme, NSI_NS, "Code")),
        theme_guid=None if theme is None else _text(_child(theme, NSI_NS, "GUID")),
        answer_guids=_children_text(el, APPEALS_NS, "AnswerGUID"),
        answer_created_from=_xs_date(_text(_child(el, APPEALS_NS, "StartCreateDate"))),
        answer_created_to=_xs_date(_text(_child(el, APPEALS_NS, "EndCreateDate"))),
        answer_sent_from=_xs_date(_text(_child(el, APPEALS_NS, "StartPostDate"))),
        answer_sent_to=_xs_date(_text(_child(el, APPEALS_NS, "EndPostDate"))),
    )


def _appeal_ref(el: etree._Element) -> dict[str, str | None]:
    return {"appeal_guid": _text(_child(el, APPEALS_NS, "AppealGUID")),
            "appeal_number": _text(_child(el, APPEALS_NS, "AppealNumber"))}


def _tg(el: etree._Element) -> str:
    return _text(_child(el, BASE_NS, "TransportGUID")) or ""


def _answerer(el: etree._Element) -> str:
    return _text(_child(el, APPEALS_NS, "AnswererGUID")) or ""


def _files(el: etree._Element | None) -> tuple[FileRef, ...]:
    """The base:AttachmentType children named Attachment of ``el``."""
    if el is None:
        return ()
    return tuple(
        FileRef(guid=(_text(a.find(f"{_q(BASE_NS, 'Attachment')}/{_q(BASE_NS, 'AttachmentGUID')}")) or "").lower(),
                name=_child(a, BASE_NS, "Name").text or "", description=_child(a, BASE_NS, "Description").text or "",
                hash=_text(_child(a, BASE_NS, "AttachmentHASH")))
        for a in el.findall(_q(APPEALS_NS, "Attachment"))
    )


def parse_import(el: etree._Element) -> ImportRequest:
    answer_actions = []
    for aa in el.findall(_q(APPEALS_NS, "AnswerAction")):
        items = []
        for ans in aa.findall(_q(APPEALS_NS, "Answer")):
            load = _child(ans, APPEALS_NS, "LoadAnswer")
            items.append(AnswerItem(
                transport_guid=_tg(ans), answerer_guid=_answerer(ans),
                answer_guid=_text(_child(ans, APPEALS_NS, "AnswerGUID")),
                text=None if load is None else (_child(load, APPEALS_NS, "AnswerText").text or ""),
                send=_xs_true(_child(ans, APPEALS_NS, "SendAnswer")),
                delete=_xs_true(_child(ans, APPEALS_NS, "DeleteAnswer")),
                attachments=_files(load),
            ))
        answer_actions.append(AnswerAction(transport_guid=_tg(aa), answers=tuple(items), **_appeal_ref(aa)))
    appeal_actions = []
    for ap in el.findall(_q(APPEALS_NS, "AppealAction")):
        perf = _child(ap, APPEALS_NS, "Performer")
        executed = _child(ap, APPEALS_NS, "Executed")
        roll = _child(ap, APPEALS_NS, "RollOverAppeal")
        nreq = _child(ap, APPEALS_NS, "AnswerIsNotRequired")
        appeal_actions.append(AppealAction(
            transport_guid=_tg(ap), **_appeal_ref(ap),
            performer=None if perf is None else Performer(
                _answerer(perf), _xs_date(_text(_child(perf, APPEALS_NS, "DateOfAppointment")))),
            executed=None if executed is None else _answerer(executed),
            redirects=tuple(
                RedirectAppeal(
                    receiver=_text(r.find(f"{_q(APPEALS_NS, 'Receiver')}/{_q(ORG_NS, 'orgRootEntityGUID')}")) or "",
                    answerer_guid=_answerer(r), comment=_text(_child(r, APPEALS_NS, "Comment")),
                    attachments=_files(r),
                )
                for r in ap.findall(_q(APPEALS_NS, "RedirectAppeal"))
            ),
            rollover=None if roll is None else RollOverAppeal(
                execution_date=_xs_date(_text(_child(roll, APPEALS_NS, "ExecutionDate"))) or date.min,
                comment=_child(roll, APPEALS_NS, "Comment").text or "", answerer_guid=_answerer(roll),
                attachments=_files(roll),
            ),
            not_required=None if nreq is None else AnswerIsNotRequired(
                cause=_child(nreq, APPEALS_NS, "Cause").text or "", answerer_guid=_answerer(nreq)),
        ))
    return ImportRequest(tuple(answer_actions), tuple(appeal_actions))


# ---------------------------------------------------------------------------------------------
# response building


def _sub(parent: etree._Element, ns: str, name: str, text: Any = None) -> etree._Element:
    el = etree.SubElement(parent, _q(ns, name))
    if text is not None:
        el.text = text if isinstance(text, str) else (
            "true" if text is True else text.isoformat() if isinstance(text, date | datetime) else str(text))
    return el


def _dt(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def envelope(body_child: etree._Element | None, result_guid: str | None = None) -> etree._Element:
    env = etree.Element(_q(SOAP_NS, "Envelope"), nsmap=NSMAP)
    header = _sub(env, SOAP_NS, "Header")
    rh = _sub(header, BASE_NS, "ResultHeader")
    _sub(rh, BASE_NS, "Date", _dt(datetime.now(UTC)))
    _sub(rh, BASE_NS, "MessageGUID", result_guid or str(uuid.uuid4()))
    body = _sub(env, SOAP_NS, "Body")
    if body_child is not None:
        body.append(body_child)
    return env


def ack_element(ack: Ack) -> etree._Element:
    el = etree.Element(_q(BASE_NS, "AckRequest"), nsmap=NSMAP)  # no version: AckRequest has none
    a = _sub(el, BASE_NS, "Ack")
    _sub(a, BASE_NS, "MessageGUID", ack.message_guid)
    _sub(a, BASE_NS, "RequesterMessageGUID", ack.requester_message_guid)
    return el


def _error(parent: etree._Element, tag_ns: str, tag: str, code: str, description: str) -> None:
    e = _sub(parent, tag_ns, tag)
    _sub(e, BASE_NS, "ErrorCode", code)
    _sub(e, BASE_NS, "Description", description)


def state_element(reply: StateReply) -> etree._Element:
    el = etree.Element(_q(APPEALS_NS, "getStateResult"), nsmap=NSMAP)
    el.set(_q(BASE_NS, "version"), STATE_RESULT_VERSION)
    _sub(el, BASE_NS, "RequestState", reply.request_state)
    _sub(el, BASE_NS, "MessageGUID", reply.message_guid)
    result = reply.result
    if result is None:
        return el
    if result.error is not None:
        _error(el, BASE_NS, "ErrorMessage", result.error.code, result.error.description)
    for r in result.import_results:
        _import_result(_sub(el, APPEALS_NS, "ImportResult"), r)
    for appeal in result.exported:
        _export_result(_sub(el, APPEALS_NS, "ExportAppealResult"), appeal)
    return el


def _import_result(el: etree._Element, r: ImportResult) -> None:
    if r.error is None and r.guid:
        _sub(el, BASE_NS, "GUID", r.guid)
    _sub(el, BASE_NS, "TransportGUID", r.transport_guid)
    if r.error is not None:
        _error(el, BASE_NS, "Error", r.error.code, r.error.description)
        return
    if r.unique_number:
        _sub(el, BASE_NS, "UniqueNumber", r.unique_number)
    _sub(el, BASE_NS, "UpdateDate", _dt(r.update_date or datetime.now(UTC)))


def _receiver(parent: etree._Element, org_guid: str) -> None:
    _sub(_sub(parent, APPEALS_NS, "Receiver"), ORG_NS, "orgRootEntityGUID", org_guid)


def _applicant(info: etree._Element, who: Applicant) -> None:
    A = APPEALS_NS
    person = _sub(info, A, "Person")
    _sub(person, A, "Surname", who.surname)
    _sub(person, A, "FirstName", who.first_name)
    if who.patronymic:
        _sub(person, A, "Patronymic", who.patronymic)
    for name, value in (("PostAddress", who.post_address), ("ApartmentNumber", who.apartment_number),
                        ("Email", who.email), ("PhoneNumber", who.phone)):
        if value:
            _sub(info, A, name, value)


def _attachments(parent: etree._Element, files: Any) -> None:
    for f in files or ():
        el = _sub(parent, APPEALS_NS, "Attachment")
        _sub(el, BASE_NS, "Name", f.name)
        _sub(el, BASE_NS, "Description", f.description)
        _sub(_sub(el, BASE_NS, "Attachment"), BASE_NS, "AttachmentGUID", f.guid)
        if f.hash:
            _sub(el, BASE_NS, "AttachmentHASH", f.hash)


def _export_result(el: etree._Element, a: Appeal) -> None:
    A = APPEALS_NS
    _sub(el, A, "AppealGUID", a.guid)
    _applicant(_sub(el, A, "ApplicantInfo"), a.applicant)
    _sub(el, A, "AppealNumber", a.number)
    _sub(el, A, "AppealCreateDate", a.create_date)
    if a.topic is not None:
        topic = _sub(el, A, "AppealTopic")
        _sub(topic, NSI_NS, "Code", a.topic.code)
        _sub(topic, NSI_NS, "GUID", a.topic.guid)
        _sub(topic, NSI_NS, "Name", a.topic.name)
    else:
        _sub(el, A, "AnotherTopic", a.another_topic or "Другое")
    if a.fias_house_guid:
        _sub(el, A, "FIASHouseGuid", a.fias_house_guid)
    oktmo = _sub(el, A, "OKTMO")
    _sub(oktmo, BASE_NS, "code", a.oktmo_code)
    if a.oktmo_name:
        _sub(oktmo, BASE_NS, "name", a.oktmo_name)
    _sub(el, A, "AppealText", a.text)
    _attachments(el, a.attachments)
    if a.answerer_guid:
        _sub(el, A, "AnswererGUID", a.answerer_guid)
    for h in a.history:
        entry = _sub(el, A, "AppealHistory")
        _sub(entry, A, "ChangeDate", h.change_date)
        d = h.data
        if h.kind == "Answer":
            ans = _sub(entry, A, "Answer")
            _sub(ans, A, "AnswerGUID", d["answer_guid"])
            _sub(ans, A, "AnswerNumber", d["answer_number"])
            if d.get("send_date"):
                _sub(ans, A, "SendAnswerDate", d["send_date"])
            _sub(_sub(ans, A, "Answerer"), A, "AnswererGUID", d["answerer_guid"])
            _sub(ans, A, "AnswerText", d["text"])
            _attachments(ans, d.get("attachments"))
            if d.get("is_sent"):
                _sub(ans, A, "AnswerIsSent", True)
        elif h.kind == "Redirected":
            red = _sub(entry, A, "Redirected")
            _receiver(red, d["receiver"])
            if d.get("comment"):
                _sub(red, A, "Comment", d["comment"])
            _attachments(red, d.get("attachments"))
            if d.get("answerer_guid"):
                _sub(red, A, "AnswererGUID", d["answerer_guid"])
        elif h.kind == "RolledOver":
            roll = _sub(entry, A, "RolledOver")
            _sub(roll, A, "ExecutionDate", d["execution_date"])
            _sub(roll, A, "Comment", d["comment"])
            _attachments(roll, d.get("attachments"))
            _sub(roll, A, "AnswererGUID", d["answerer_guid"])
        elif h.kind == "IsNotRequired":
            _sub(_sub(entry, A, "IsNotRequired"), A, "Cause", d["cause"])
        elif h.kind == "Assesment":
            assessment = _sub(entry, A, "Assesment")
            if d["result"] == "received":
                _sub(assessment, A, "InformationIsReceived", True)
            else:
                _sub(assessment, A, "AnswerIsPartlyReceived" if d["result"] == "partly" else "AnswerIsNotSatisfied",
                     True)
                _sub(assessment, A, "DeclineComment", d["comment"])
    _sub(el, A, "AppealStatus", a.status)
    if a.redirected_to:
        _sub(el, A, "Redirected", True)
    if a.rolled_over:
        _sub(el, A, "RolledOver", True)
    if a.not_required:
        _sub(el, A, "AnswerIsNotRequired", True)
    if a.withdrawn:
        w = _sub(el, A, "AppealWithdrawn")
        if a.withdrawn_comment:
            _sub(w, A, "Comment", a.withdrawn_comment)
    if a.from_mobile:
        _sub(el, A, "FromMobile", True)
    if a.execution_end_date:
        _sub(el, A, "ExecutionEndDate", a.execution_end_date)
    if a.npa_requirements:
        _sub(el, A, "NPARequirements", a.npa_requirements)
    if a.date_of_appointment:
        _sub(el, A, "DateOfAppointment", a.date_of_appointment)
    if a.collective:
        _sub(el, A, "Collective", True)
    for neighbour in a.neighbours:
        _applicant(_sub(el, A, "NeighbourInfo"), neighbour)


def fault_envelope(fault: SoapFault) -> bytes:
    f = etree.Element(_q(SOAP_NS, "Fault"), nsmap=NSMAP)
    etree.SubElement(f, "faultcode").text = fault.faultcode
    fs = etree.SubElement(f, "faultstring")
    fs.text = fault.faultstring
    fs.set("{http://www.w3.org/XML/1998/namespace}lang", "ru")
    detail = etree.SubElement(f, "detail")
    e = _sub(detail, BASE_NS, "Fault")  # base:Fault is ErrorCode, ErrorMessage, StackTrace (no Description)
    _sub(e, BASE_NS, "ErrorCode", fault.code)
    _sub(e, BASE_NS, "ErrorMessage", fault.description)
    return _serialise(envelope(f))


def _serialise(env: etree._Element) -> bytes:
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


# ---------------------------------------------------------------------------------------------
# the SOAP endpoint

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False, huge_tree=False)


def _operation_hint(action: str, body: bytes) -> str | None:
    """The operation a request is for, before it is checked: from SOAPAction, else from the body."""
    if action:
        return ACTIONS.get(action)
    with contextlib.suppress(etree.XMLSyntaxError):
        env = etree.fromstring(body, _PARSER)
        b = env.find(_q(SOAP_NS, "Body"))
        first = next((c for c in b if isinstance(c.tag, str)), None) if b is not None else None
        if first is not None:
            return BODY_OPERATIONS.get(first.tag)
    return None


def handle_soap(state: EmulatorState, action: str, body: bytes,
                verifier: SignatureVerifier | None = None) -> tuple[int, bytes]:
    """One SOAP request -> (HTTP status, response envelope). Synchronous: nothing here awaits.
    With ``verifier``, exportAppeal and importAnswer must be signed (getStateRequest has no signature)."""
    try:
        return 200, _handle_soap(state, action, body, verifier)
    except SoapFault as fault:
        log.info("soap fault %s", fault.code)
        return 500, fault_envelope(fault)
    except Exception as exc:  # an emulator bug: answer as ГИС would (soap:Server), keep serving
        log.exception("emulator error")
        return 500, fault_envelope(SoapFault(
            "EMU-INTERNAL", "Внутренняя ошибка эмулятора", f"{exc.__class__.__name__}", faultcode="soap:Server"))


def _schema_fault(errors: list[str]) -> SoapFault:
    return SoapFault("EMU-XSD", "Запрос не соответствует XML-схеме",
                     "Запрос не соответствует XML-схеме: " + "; ".join(errors[:5]))


def _handle_soap(state: EmulatorState, action: str, body: bytes, verifier: SignatureVerifier | None) -> bytes:
    try:
        env = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapFault("EMU-XSD", "Запрос не является корректным XML", f"Некорректный XML: {exc}") from None
    if env.tag != _q(SOAP_NS, "Envelope"):
        raise SoapFault("EMU-XSD", "Ожидается конверт SOAP 1.1",
                        f"Корневой элемент {env.tag}, ожидается Envelope SOAP 1.1")
    soap_body = env.find(_q(SOAP_NS, "Body"))
    request = next((c for c in soap_body if isinstance(c.tag, str)), None) if soap_body is not None else None
    if request is None:
        raise SoapFault("EMU-XSD", "Пустое тело SOAP-запроса", "В soap:Body нет элемента запроса")
    operation = BODY_OPERATIONS.get(request.tag)
    if operation is None or (action and ACTIONS.get(action) != operation):
        raise SoapFault("EMU-OP", "Неизвестная операция",
                        f"Операция не поддерживается: SOAPAction «{action}», элемент {etree.QName(request).localname}")
    header = env.find(f"{_q(SOAP_NS, 'Header')}/{_q(BASE_NS, 'RequestHeader')}")
    if header is None:
        raise SoapFault("EMU-XSD", "Запрос не соответствует XML-схеме", "В soap:Header нет элемента base:RequestHeader")
    errors = validation_errors(header) + validation_errors(request)
    if errors:
        raise _schema_fault(errors)
    if verifier is not None and operation != "getState":
        try:
            verifier.verify(request)
        except SignatureError as exc:
            raise SoapFault(SIGNATURE_FAULT, "Ошибка проверки электронной подписи", str(exc)) from None
    org = _text(_child(header, BASE_NS, "orgPPAGUID"))
    if org is None or org.lower() != state.org_ppa_guid:
        raise SoapFault("EMU-AUTH", "Доступ запрещён",
                        "Организация не найдена или не имеет доступа: orgPPAGUID не совпадает с организацией эмулятора")
    requester = _text(_child(header, BASE_NS, "MessageGUID")) or ""
    if operation == "getState":
        reply = state.get_state((_text(_child(request, BASE_NS, "MessageGUID")) or "").lower())
        out, result_guid = state_element(reply), reply.message_guid
    else:
        parsed = parse_export(request) if operation == "exportAppeal" else parse_import(request)
        ack = state.submit(operation, requester, parsed)
        out, result_guid = ack_element(ack), ack.message_guid
    errors = validation_errors(out)
    if errors:  # an emulator bug: say so loudly instead of sending something ГИС would never send
        log.error("response does not validate: %s", errors[:3])
        raise SoapFault("EMU-INTERNAL", "Внутренняя ошибка эмулятора", "; ".join(errors[:5]), faultcode="soap:Server")
    return _serialise(envelope(out, result_guid))


def wsdl_text(base_url: str) -> bytes:
    text = (WSDL_DIR / WSDL_FILE).read_text(encoding="utf-8")
    text = re.sub(r'(<soap:address location=")[^"]*(")', rf"\g<1>{base_url}{SOAP_PATH}\g<2>", text)
    return text.encode()


# ---------------------------------------------------------------------------------------------
# ASGI

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class EmulatorApp:
    """ASGI app over one EmulatorState. Requests are served concurrently (injected delays use asyncio.sleep)."""

    def __init__(self, state: EmulatorState, verifier: SignatureVerifier | None = None) -> None:
        self.state = state
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            body = await _read_body(receive)
            await self._route(scope, body, send)
        except _HttpError as exc:
            await _json(send, exc.status, {"error": exc.message})

    async def _route(self, scope: Scope, body: bytes, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if path == SOAP_PATH:
            if method == "POST":
                return await self._soap(scope, body, send)
            if method == "GET" and "wsdl" in {k.lower() for k in parse_qs(scope.get("query_string", b"").decode(),
                                                                           keep_blank_values=True)}:
                return await _respond(send, 200, wsdl_text(_base_url(scope)), "text/xml; charset=utf-8")
            raise _HttpError(405, "POST a SOAP request here (or GET ?wsdl)")
        if path.startswith(SERVICE_DIR) and path.endswith(".xsd") and method == "GET":
            name = path[len(SERVICE_DIR):]
            if "/" in name or not (WSDL_DIR / name).is_file():
                raise _HttpError(404, "no such schema")
            return await _respond(send, 200, (WSDL_DIR / name).read_bytes(), "text/xml; charset=utf-8")
        if path.startswith("/emulator/") or path == "/emulator":
            return await self._control(method, path.rstrip("/"), body, send)
        raise _HttpError(404, "not found")

    async def _soap(self, scope: Scope, body: bytes, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        action = headers.get("soapaction", "").strip().strip('"').strip()
        operation = _operation_hint(action, body)
        if operation is not None:  # every request that reached the endpoint, injected faults included
            self.state.count_request(operation)
        fault = self.state.take_transport_fault(operation)
        if fault is not None and fault.kind == "http_503":
            log.info("injected fault: http 503")
            return await _respond(send, 503, "Сервис временно недоступен (эмулятор: http_503)".encode(),
                                  "text/plain; charset=utf-8")
        if fault is not None and not fault.after_accept:
            log.info("injected fault: timeout %.2fs, request not accepted", fault.seconds)
            await asyncio.sleep(fault.seconds)
            return await _respond(send, 504, "Превышено время ожидания (эмулятор: timeout)".encode(),
                                  "text/plain; charset=utf-8")
        status, payload = handle_soap(self.state, action, body, self.verifier)
        if fault is not None:
            log.info("injected fault: timeout %.2fs after accepting the request", fault.seconds)
            await asyncio.sleep(fault.seconds)
        await _respond(send, status, payload, "text/xml; charset=utf-8")

    async def _control(self, method: str, path: str, body: bytes, send: Send) -> None:
        state = self.state
        parts = path.split("/")[2:]  # after "/emulator"
        if parts == ["health"] and method == "GET":
            return await _json(send, 200, {"status": "ok"})
        if parts == ["record"] and method == "GET":
            return await _json(send, 200, state.record())
        if parts == ["faults"]:
            if method == "GET":
                return await _json(send, 200, [f.to_dict() for f in state.faults()])
            if method == "POST":
                fault = _checked(lambda: state.add_fault(_load(body)))
                return await _json(send, 201, fault.to_dict())
            if method == "DELETE":
                state.clear_faults()
                return await _json(send, 200, {"cleared": True})
        if parts == ["appeals"]:
            if method == "GET":
                return await _json(send, 200, [
                    {"appeal_guid": a.guid, "appeal_number": a.number, "status": a.status} for a in state.appeals()])
            if method == "POST":
                spec = _load(body) if body.strip() else {}
                if not isinstance(spec, dict):
                    raise _HttpError(400, "expected a JSON object")
                unknown = set(spec) - {"appeals", "generate", "create_date", "fias_house_guid"}
                if unknown:
                    raise _HttpError(400, f"unknown fields: {sorted(unknown)}")
                generate = spec.get("generate", 0)
                if not isinstance(generate, int) or isinstance(generate, bool) or not 0 <= generate <= 10000:
                    raise _HttpError(400, "generate must be an integer 0..10000")
                appeals = spec.get("appeals") or []
                if not isinstance(appeals, list) or not all(isinstance(a, dict) for a in appeals):
                    raise _HttpError(400, "appeals must be a list of objects")
                created = _checked(lambda: state.create_appeals(
                    appeals, generate=generate, create_date=spec.get("create_date"),
                    fias_house_guid=spec.get("fias_house_guid")))
                return await _json(send, 201, [a.to_json() for a in created])
        if len(parts) in (2, 3) and parts[0] == "appeals":
            appeal = state.appeal(parts[1])
            if appeal is None:
                raise _HttpError(404, "no such appeal")
            if len(parts) == 2 and method == "GET":
                return await _json(send, 200, appeal.to_json())
            if len(parts) == 3 and method == "POST" and parts[2] == "withdraw":
                spec = _object(body)
                comment = spec.get("comment")
                if comment is not None and not isinstance(comment, str):
                    raise _HttpError(400, "comment must be a string")
                return await _json(send, 200, _checked(lambda: state.withdraw(appeal.guid, comment), 409).to_json())
            if len(parts) == 3 and method == "POST" and parts[2] == "assess":
                spec = _object(body)
                unknown = set(spec) - {"result", "comment"}
                if unknown:
                    raise _HttpError(400, f"unknown fields: {sorted(unknown)}")
                if spec.get("result") not in state.ASSESSMENTS:
                    raise _HttpError(400, f"result must be one of {list(state.ASSESSMENTS)}")
                comment = spec.get("comment")
                if spec["result"] != "received" and (not isinstance(comment, str) or not 1 <= len(comment) <= 1000):
                    raise _HttpError(400, "partly and not_satisfied need a comment of 1..1000 characters")
                return await _json(send, 200, _checked(
                    lambda: state.assess(appeal.guid, spec["result"], spec.get("comment")), 409).to_json())
            if len(parts) == 3 and method == "POST" and parts[2] == "drift":
                spec = _object(body)
                unknown = set(spec) - {"clear_performer", "unsend_answers", "status"}
                if unknown:
                    raise _HttpError(400, f"unknown fields: {sorted(unknown)}")
                return await _json(send, 200, _checked(lambda: state.drift(
                    appeal.guid, clear_performer=bool(spec.get("clear_performer")),
                    unsend_answers=bool(spec.get("unsend_answers")), status=spec.get("status"))).to_json())
        raise _HttpError(404 if method in ("GET", "POST", "DELETE") else 405, f"no route {method} {path}")


def create_app(state: EmulatorState, verifier: SignatureVerifier | None = None) -> EmulatorApp:
    return EmulatorApp(state, verifier)


def _checked(fn: Callable[[], Any], status: int = 400) -> Any:
    try:
        return fn()
    except ValueError as exc:
        raise _HttpError(status, str(exc)) from None


def _load(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise _HttpError(400, "body is not JSON") from None


def _object(body: bytes) -> dict[str, Any]:
    data = _load(body) if body.strip() else {}
    if not isinstance(data, dict):
        raise _HttpError(400, "expected a JSON object")
    return data


def _base_url(scope: Scope) -> str:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _HttpError(413, "request too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, data: Any) -> None:
    await _respond(send, status, json.dumps(data, ensure_ascii=False).encode(), "application/json; charset=utf-8")


# ---------------------------------------------------------------------------------------------
# runner


class EmulatorServer:
    """Serves an EmulatorState over real HTTP with uvicorn, inside the running event loop.

        async with EmulatorServer(state) as url:
            soap_endpoint = url + "/ext-bus-appeals-service/services/AppealsAsync"
    """

    def __init__(self, state: EmulatorState, host: str = "127.0.0.1", port: int | None = None,
                 log_level: str = "warning", verifier: SignatureVerifier | None = None) -> None:
        self.state = state
        self.verifier = verifier
        self.host = host
        self.port = port if port is not None else embedded.free_port()
        self._server = uvicorn.Server(uvicorn.Config(
            create_app(state, verifier), host=host, port=self.port, log_config=None, log_level=log_level, lifespan="on",
            access_log=False,
        ))
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def soap_url(self) -> str:
        return self.url + SOAP_PATH

    async def start(self) -> str:
        if self.verifier is None:
            log.warning(UNSIGNED_WARNING)
        else:
            log.info("signatures required: XAdES-BES GOST R 34.10-2012 with the trusted certificate (serial %s)",
                     self.verifier.trusted.serial)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("gis emulator stopped during startup")
            await asyncio.sleep(0.02)
        if self.port == 0:  # the OS picked the port
            self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.url

    async def stop(self, timeout: float = 10.0) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout)
        finally:
            self._task = None

    async def wait(self) -> None:
        """Until the server stops (uvicorn handles SIGINT/SIGTERM when run in the main thread)."""
        if self._task is not None:
            await self._task

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def serving(state: EmulatorState, **kwargs: Any) -> AsyncIterator[EmulatorServer]:
    """Like ``async with EmulatorServer(...)`` but yields the server (url, soap_url, state)."""
    server = EmulatorServer(state, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


__all__ = ["SIGNATURE_FAULT", "EmulatorApp", "EmulatorServer", "create_app", "handle_soap", "schema", "serving",
           "validation_errors"]
