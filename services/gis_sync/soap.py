"""The ГИС ЖКХ AppealsAsync SOAP client (zeep, async over httpx).

Every call is one SOAP request; the asynchronous protocol (request -> Ack MessageGUID -> getState
until RequestState 3) is driven by the service, which stores the MessageGUID between polls so a
restart resumes polling instead of sending again.

Errors: a timeout, a connection failure or an HTTP 5xx without a SOAP fault is ``TransientError``
(retry); a SOAP fault is ``GisFault`` (the request itself is wrong: not retried); a message-level
``ErrorMessage`` or a per-object ``Error`` in ``getState`` is returned as data, for the caller
to turn into failure events.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import structlog
from lxml import etree
from zeep import AsyncClient, Plugin, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError, XMLSyntaxError
from zeep.helpers import serialize_object
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from zhkh_runtime.errors import TransientError

from .ports import GisError, GisFault, ImportResult, StateResult

log = structlog.get_logger(__name__)

WSDL = Path(__file__).parent / "wsdl" / "hcs-appeals-service-async.wsdl"
BINDING = "{http://dom.gosuslugi.ru/schema/integration/appeals-service-async/}AppealsAsyncBinding"
# The operation versions we speak (the base:version attribute of each request). exportAppeal 14.8.0.1 is
# the newest the published schemas list (bundle 16.3.0.0): from 14.4.0.1 on ГИС returns Collective and
# DateOfAppointment, and 14.8.0.1 came with PremiseNumber and AppealEmail, which we map. importAnswer
# 15.11.0.0 is the version whose Comment/Cause lengths we meet. Both can be set (ZHKH_GIS_*_VERSION).
EXPORT_VERSION = "14.8.0.1"
IMPORT_VERSION = "15.11.0.0"

from .ports import IN_PROGRESS, PROCESSED, RECEIVED  # noqa: E402,F401 - re-exported


class Signer(Protocol):
    """Signs an outgoing SOAP envelope in place (XAdES-BES with a GOST key for the real ГИС ЖКХ).

    ``ZHKH_GIS_SIGNER=gost`` is gis_sync.signing.GostXadesSigner (key and certificate from files);
    ``module:factory`` plugs in another one (e.g. a CryptoPro-backed signer).
    """

    def sign(self, envelope: etree._Element) -> etree._Element: ...


class NoopSigner:
    """Sends requests unsigned. Only the local emulator accepts that; it is not a fake signature."""

    def sign(self, envelope: etree._Element) -> etree._Element:
        return envelope


class _SigningPlugin(Plugin):
    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> tuple[Any, Any]:
        return self.signer.sign(envelope), http_headers


def load_signer(spec: str, key: Path | None = None, cert: Path | None = None) -> Signer:
    if spec in ("", "none"):
        return NoopSigner()
    if spec == "gost":
        if key is None or cert is None:
            raise ValueError("ZHKH_GIS_SIGNER=gost needs ZHKH_GIS_SIGNING_KEY and ZHKH_GIS_SIGNING_CERT")
        from .signing import GostXadesSigner

        return GostXadesSigner.from_files(key, cert)
    module, _, attr = spec.partition(":")
    import importlib

    factory = getattr(importlib.import_module(module), attr)
    return factory()


class _StatusCheckingTransport(AsyncTransport):
    """Decides by HTTP status before zeep parses: with ``strict=False`` zeep turns a plain-text 503
    into an AttributeError and an HTML 5xx page into a SOAP Fault. A SOAP fault (5xx with a SOAP
    envelope) still goes to zeep."""

    async def post_xml(self, address: str, envelope: Any, headers: Any) -> Any:
        response = await super().post_xml(address, envelope, headers)
        status = response.status_code
        if status >= 400 and b"Envelope" not in response.content[:2000]:
            if status >= 500 or status in (408, 429):
                raise TransientError(f"ГИС ЖКХ answered HTTP {status}")
            raise GisFault(f"http_{status}", "unexpected HTTP status")
        return response


class GisClient:
    def __init__(
        self, endpoint: str, org_ppa_guid: str, timeout_s: float = 10.0, signer: Signer | None = None,
        *, transport: httpx.AsyncBaseTransport | None = None, export_version: str = EXPORT_VERSION,
        import_version: str = IMPORT_VERSION,
    ) -> None:
        self.export_version, self.import_version = export_version, import_version
        self.endpoint = endpoint
        self.org_ppa_guid = org_ppa_guid
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        # strict=False: zeep 4.3.3 in strict mode cannot parse CommonResultType's
        # choice(sequence(UniqueNumber?, UpdateDate) | Error+) when the Error branch comes (it insists
        # on UpdateDate). Lenient parsing reads both branches right (tests/unit/test_gis_mapping.py).
        self._client = AsyncClient(
            str(WSDL), transport=_StatusCheckingTransport(client=self._http), plugins=[_SigningPlugin(signer or NoopSigner())],
            settings=Settings(strict=False),
        )
        # AsyncClient.create_service returns the synchronous proxy (zeep 4.3.3): build the async one.
        self._service = AsyncServiceProxy(self._client, self._client.wsdl.bindings[BINDING], address=endpoint)

    async def close(self) -> None:
        await self._http.aclose()

    def _header(self, message_guid: str | None = None) -> dict[str, Any]:
        return {"Header": {
            "Date": datetime.now(UTC), "MessageGUID": message_guid or str(uuid.uuid4()), "orgPPAGUID": self.org_ppa_guid,
        }}

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            response = await getattr(self._service, operation)(**kwargs)
        except Fault as exc:
            code = _fault_code(exc)
            raise GisFault(code, str(exc.message)[:500]) from None
        except TransportError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 429):
                raise TransientError(f"ГИС ЖКХ answered HTTP {exc.status_code}") from None
            raise GisFault(f"http_{exc.status_code}", "unexpected HTTP status") from None
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TransientError(f"ГИС ЖКХ unreachable: {exc.__class__.__name__}") from None
        except XMLSyntaxError:
            raise TransientError("ГИС ЖКХ answered with a body that is not XML") from None
        except ZeepError as exc:  # a reply that does not match the schema: retrying will not help
            raise GisFault("unparseable_response", f"{exc.__class__.__name__}: {exc}"[:500]) from None
        body = getattr(response, "body", response)
        return body

    async def submit_export(
        self, *, appeal_guids: Sequence[str] = (), start: date | None = None, end: date | None = None,
        request_guid: str | None = None,
    ) -> str:
        """exportAppeal by GUIDs (at most 1000) or by creation date window. Returns the ack MessageGUID."""
        criteria: dict[str, Any] = {"AppealGUID": list(appeal_guids)} if appeal_guids else {"StartDate": start, "EndDate": end}
        body = await self._call(
            "exportAppeal", _soapheaders=self._header(request_guid), version=self.export_version, **criteria
        )
        return str(body.Ack.MessageGUID)

    async def submit_import(
        self, *, answer_actions: Sequence[Mapping[str, Any]] = (), appeal_actions: Sequence[Mapping[str, Any]] = (),
        request_guid: str | None = None,
    ) -> str:
        body = await self._call(
            "importAnswer", _soapheaders=self._header(request_guid), version=self.import_version,
            AnswerAction=list(answer_actions) or None, AppealAction=list(appeal_actions) or None,
        )
        return str(body.Ack.MessageGUID)

    async def get_state(self, message_guid: str) -> StateResult:
        body = await self._call("getState", _soapheaders=self._header(), MessageGUID=message_guid)
        data = serialize_object(body, dict)
        error = data.get("ErrorMessage")
        return StateResult(
            state=int(data["RequestState"]),
            message_guid=str(data["MessageGUID"]),
            error=GisError(str(error["ErrorCode"]), str(error.get("Description") or "")) if error else None,
            import_results=tuple(
                ImportResult(
                    transport_guid=str(r["TransportGUID"]),
                    guid=str(r["GUID"]) if r.get("GUID") else None,
                    errors=tuple(GisError(str(e["ErrorCode"]), str(e.get("Description") or "")) for e in r.get("Error") or ()),
                )
                for r in data.get("ImportResult") or ()
            ),
            appeals=tuple(data.get("ExportAppealResult") or ()),
        )


def _fault_code(exc: Fault) -> str:
    detail = exc.detail
    if detail is not None:
        for el in detail.iter():
            if isinstance(el.tag, str) and etree.QName(el).localname == "ErrorCode" and el.text:
                return el.text.strip()
    return str(exc.code or "fault")
