"""gis_sync reads every element the published schemas allow in a getState reply, without losing the
ones after it: replies generated from the published XSDs (both bundles; every optional element, each
branch of each choice) go through GisClient.get_state and are compared field by field with what
``xmlschema`` decodes from the same bytes with the published schema."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from lxml import etree

from gis_sync.mapping import raw_from_export
from gis_sync.soap import GisClient
from tests.support.gis_xsd import BUNDLES, errors, published
from tests.support.xsd_instances import Generator

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
BASE = "http://dom.gosuslugi.ru/schema/integration/base/"
APPEALS = "http://dom.gosuslugi.ru/schema/integration/appeals/"
VARIANTS = range(24)


def _leaf(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _flatten(value: Any, path: str, out: Counter) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("@") or k.startswith("xmlns") or k == "_value_1" and v is None:
                continue
            _flatten(v, f"{path}/{k.split('}')[-1].split(':')[-1]}", out)
    elif isinstance(value, list | tuple):
        for v in value:
            _flatten(v, path, out)
    else:
        out[(path, _leaf(value))] += 1


def _reply(state_result: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP, "base": BASE})
    rh = etree.SubElement(etree.SubElement(env, f"{{{SOAP}}}Header"), f"{{{BASE}}}ResultHeader")
    etree.SubElement(rh, f"{{{BASE}}}Date").text = "2026-03-04T10:15:00+03:00"
    etree.SubElement(rh, f"{{{BASE}}}MessageGUID").text = "5eed0000-0000-4000-8000-00000000ffff"
    etree.SubElement(env, f"{{{SOAP}}}Body").append(state_result)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("version", BUNDLES)
async def test_every_generated_reply_parses_losslessly(version):
    schema = published(version)
    history_kinds: set[str] = set()
    seen_paths: set[str] = set()
    for variant in VARIANTS:
        el = Generator(schema, variant).element(f"{{{APPEALS}}}getStateResult")
        assert errors(version, el) == []
        body = _reply(el)
        client = GisClient("http://gis.invalid/AppealsAsync", "0f6f1d2a-5c1e-4b8e-9f00-000000000059",
                           transport=httpx.MockTransport(lambda request, body=body: httpx.Response(
                               200, content=body, headers={"Content-Type": "text/xml"})))
        try:
            state = await client.get_state("5eed0000-0000-4000-8000-00000000ffff")
        finally:
            await client.close()
        truth = schema.decode(etree.fromstring(etree.tostring(el)), validation="strict", process_namespaces=True,
                              strip_namespaces=True)
        results = truth.get("ExportAppealResult") or []
        assert len(state.appeals) == len(results)
        for got, want in zip(state.appeals, results, strict=True):
            g, w = Counter(), Counter()
            _flatten(got, "", g)
            _flatten(want, "", w)
            assert g == w, (variant, sorted((w - g).items())[:10], sorted((g - w).items())[:10])
            seen_paths |= {p for p, _ in w}
            history_kinds |= {k for h in want.get("AppealHistory") or () for k in h if k not in ("ChangeDate",)}
            raw = raw_from_export(got)  # and every reply maps to a valid raw event
            assert raw.source_id == str(want["AppealGUID"])
        if truth.get("ImportResult"):
            assert [r.transport_guid for r in state.import_results] == [r["TransportGUID"] for r in truth["ImportResult"]]
        if truth.get("ErrorMessage"):
            assert state.error is not None and state.error.code == truth["ErrorMessage"]["ErrorCode"]
    # the generated replies did reach the parts a subset would miss
    assert {"Answer", "Redirected", "RolledOver", "IsNotRequired", "Assesment", "Organization"} <= history_kinds
    for path in ("/Attachment/Attachment/AttachmentGUID", "/NeighbourInfo/PostAddress", "/Collective",
                 "/AppealHistory/Answer/SignedAttachments/Signature/Name", "/AppealHistory/Answer/AnswerIsSent",
                 "/ExecutionEndDate", "/AppealStatus", "/DateOfAppointment"):
        assert path in seen_paths, path
