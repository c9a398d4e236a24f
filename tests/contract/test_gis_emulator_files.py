"""Files, neighbours and assessments: the emulator stores what gis_sync sends and exports what gis_sync reads.

An appeal seeded with attachments and neighbours; gis_sync answers it with a file already in ГИС's
store, rolls it over and redirects another one with files attached; the citizen assesses the answer.
The export (gis_sync's GisClient over HTTP) carries all of it: gis_sync's reader turns the appeal's
files into AttachmentRefs, and every request and response on the wire is valid against both published
bundles (that part skips, saying why, without them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree

from devtools.gis_emulator import DEFAULT_ORG_PPA_GUID, EmulatorServer, EmulatorState
from devtools.gis_emulator.state import Answer
from gis_sync.mapping import (
    ANSWER,
    GIS_FILE_URI,
    gis_attachment,
    raw_from_export,
    redirect_comment,
    rollover_comment,
    transport_guid,
)
from gis_sync.soap import GisClient
from tests.contract.test_gis_published_xsd import PARTY_MAP, TEPLO, UK, Wire, _done, _item
from tests.contract.test_gis_published_xsd import _import as _submit_import
from tests.support.gis_xsd import BUNDLES, envelope_parts, errors, published
from zhkh_contracts import AttachmentRef

PHOTO = {"name": "Фото протечки.jpg", "description": "Потолок в спальне", "attachment_guid":
         "3f0c2a9e-8d1b-4c55-9a7e-1b2c3d4e5f60", "hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
ACT = {"name": "Акт осмотра.pdf", "attachment_guid": "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}
NEIGHBOURS = [{"surname": "Петрова", "first_name": "Анна", "patronymic": "Ивановна", "apartment_number": "12"},
              {"surname": "Сидоров", "first_name": "Олег"}]
ANSWER_FILE = AttachmentRef(uri=f"{GIS_FILE_URI}0b1c2d3e-4f50-4a61-9b72-8c93a4b5c6d7#abc123", name="Ответ.pdf")
ROLLOVER_FILE = {"Name": "График работ.pdf", "Description": "График работ",
                 "Attachment": {"AttachmentGUID": "1c2d3e4f-5061-4b72-8c83-9d4e5f607182"}}


async def _import(client: GisClient, items: list[dict[str, Any]]):
    st = await _submit_import(client, items)
    assert all(r.ok for r in st.import_results), st.import_results
    return st


async def _scenario() -> tuple[EmulatorState, Any, Wire, list[str]]:
    state = EmulatorState.from_party_map(PARTY_MAP, processing_delay_s=0.0, polls_to_complete=1, random_seed=11)
    today = datetime.now(UTC).date()
    x, y = state.create_appeals([
        {"attachments": [PHOTO, ACT], "neighbours": NEIGHBOURS, "collective": True},
        {"attachments": [], "neighbours": []}], create_date=today - timedelta(days=1))
    generated = state.create_appeals(generate=12, create_date=today - timedelta(days=2))
    wire = Wire()
    async with EmulatorServer(state) as url:
        client = GisClient(url + "/ext-bus-appeals-service/services/AppealsAsync", DEFAULT_ORG_PPA_GUID)
        wire.attach(client._http)
        try:
            await _import(client, [_item("Performer", x.guid), _item("Performer", y.guid)])
            new_end = state.appeal(x.guid).execution_end_date + timedelta(days=10)
            rollover = _item("RollOverAppeal", x.guid, execution_date=new_end.isoformat(),
                             comment=rollover_comment(days=10, new_date=new_end, reason="Нужны запчасти"))
            rollover["payload"]["RollOverAppeal"]["Attachment"] = [ROLLOVER_FILE]
            redirect = _item("RedirectAppeal", y.guid, receiver=TEPLO, comment=redirect_comment(
                registration_number="ZH-2026-0000009", gis_number=y.number, party_id="teplo",
                reason="heating_to_supplier", redirected_on=today))
            redirect["payload"]["RedirectAppeal"][0]["Attachment"] = [ROLLOVER_FILE]
            await _import(client, [
                _item(ANSWER, x.guid, text="Кровля отремонтирована, акт приложен.",
                      answer_transport_guid=transport_guid("answer", x.guid),
                      attachments=[gis_attachment(ANSWER_FILE)]),
                rollover, redirect])
            state.assess(x.guid, "not_satisfied", "Потолок всё ещё мокрый после дождя.")
            st = await _done(client, await client.submit_export(
                appeal_guids=[x.guid, y.guid, *(g.guid for g in generated)]))
        finally:
            await client.close()
    return state, st, wire, [x.guid, y.guid]


async def test_files_neighbours_and_assessments_are_stored_exported_and_read_by_gis_sync():
    state, st, _, (x_guid, y_guid) = await _scenario()
    by_guid = {a["AppealGUID"]: a for a in st.appeals}
    x = by_guid[x_guid]
    # the appeal's own files, as gis_sync's reader hands them to intake
    raw = raw_from_export(x)
    assert [(r.uri, r.name) for r in raw.attachments] == [
        (f"{GIS_FILE_URI}{PHOTO['attachment_guid']}#{PHOTO['hash']}", PHOTO["name"]),
        (f"{GIS_FILE_URI}{ACT['attachment_guid']}", ACT["name"])]
    assert [(a["Description"]) for a in x["Attachment"]] == ["Потолок в спальне", "Акт осмотра.pdf"]
    assert [(n["Person"]["Surname"], n.get("ApartmentNumber")) for n in x["NeighbourInfo"]] == [
        ("Петрова", "12"), ("Сидоров", None)]
    history = {k: h[k] for h in x["AppealHistory"] for k in ("Answer", "RolledOver", "Assesment") if h.get(k)}
    (answer_file,) = history["Answer"]["Attachment"]
    assert (answer_file["Attachment"]["AttachmentGUID"], answer_file["AttachmentHASH"], answer_file["Name"]) == (
        "0b1c2d3e-4f50-4a61-9b72-8c93a4b5c6d7", "abc123", "Ответ.pdf")
    assert [f["Name"] for f in history["RolledOver"]["Attachment"]] == ["График работ.pdf"]
    assert history["Assesment"]["AnswerIsNotSatisfied"] is True
    assert history["Assesment"]["DeclineComment"] == "Потолок всё ещё мокрый после дождя."
    (redirected,) = [h["Redirected"] for h in by_guid[y_guid]["AppealHistory"] if h.get("Redirected")]
    assert [f["Name"] for f in redirected["Attachment"]] == ["График работ.pdf"]
    assert not by_guid[y_guid].get("Attachment") and not by_guid[y_guid].get("NeighbourInfo")
    # the emulator's own view, and generated appeals that carry files and neighbours too
    js = state.appeal(x_guid).to_json()
    assert js["answers"][0]["attachments"][0]["name"] == "Ответ.pdf" and len(js["neighbours"]) == 2
    generated = [a for g, a in by_guid.items() if g not in (x_guid, y_guid)]
    assert any(a.get("Attachment") for a in generated) and any(not a.get("Attachment") for a in generated)
    assert all(bool(a.get("NeighbourInfo")) == bool(a.get("Collective")) for a in generated)


async def test_that_traffic_validates_against_both_published_bundles():
    for v in BUNDLES:
        published(v)  # skips with the message when a bundle is missing
    _, _, wire, _ = await _scenario()
    assert len(wire.requests) >= 6 and len(wire.responses) == len(wire.requests)
    tags = set()
    for version in BUNDLES:
        for n, body in enumerate([*wire.requests, *(b for _, b in wire.responses)]):
            for part in envelope_parts(body):
                tags.add(etree.QName(part).localname)
                assert errors(version, part) == [], (version, n, etree.QName(part).localname)
    assert {"importAnswerRequest", "getStateResult"} <= tags
    exported = [etree.fromstring(b) for _, b in wire.responses if b"ExportAppealResult" in b]
    names = {etree.QName(el).localname for doc in exported for el in doc.iter() if isinstance(el.tag, str)}
    assert {"Attachment", "AttachmentHASH", "NeighbourInfo", "Assesment", "DeclineComment"} <= names


def test_bad_files_and_neighbours_are_refused():
    state = EmulatorState()
    for spec, message in (
        ({"attachments": [{"description": "без имени"}]}, "needs a name"),
        ({"attachments": [{"name": "a.pdf", "attachment_guid": "not-a-guid"}]}, "attachment_guid"),
        ({"attachments": [{"name": "a.pdf", "size": 3}]}, "unknown attachment fields"),
        ({"neighbours": [{"surname": "Петрова"}]}, "surname and first_name"),
        ({"neighbours": "Петрова"}, "list of objects"),
    ):
        with pytest.raises(ValueError, match=message):
            state.create_appeals([spec])
    assert state.appeals() == []
    (a,) = state.create_appeals([{}])
    with pytest.raises(ValueError, match="no sent answer"):
        state.assess(a.guid, "received")
    with pytest.raises(ValueError, match="need a comment"):
        state.assess(a.guid, "partly")


async def test_control_api_creates_files_and_neighbours_and_assesses():
    import httpx

    state = EmulatorState.from_party_map(PARTY_MAP, processing_delay_s=0.0, polls_to_complete=1)
    async with EmulatorServer(state) as url, httpx.AsyncClient(base_url=url, timeout=5) as http:
        r = await http.post("/emulator/appeals",
                            json={"appeals": [{"attachments": [ACT], "neighbours": NEIGHBOURS}]})
        assert r.status_code == 201
        (js,) = r.json()
        assert [f["attachment_guid"] for f in js["attachments"]] == [ACT["attachment_guid"]]
        assert js["attachments"][0]["description"] == ACT["name"]  # a description defaults to the name
        assert [n["surname"] for n in js["neighbours"]] == ["Петрова", "Сидоров"]
        path = f"/emulator/appeals/{js['appeal_guid']}/assess"
        assert (await http.post(path, json={"result": "received"})).status_code == 409  # nothing sent yet
        assert (await http.post(path, json={"result": "excellent"})).status_code == 400
        assert (await http.post(path, json={"result": "partly"})).status_code == 400  # needs a comment
        appeal = state.appeal(js["appeal_guid"])
        appeal.answers.append(Answer("0b1c2d3e-4f50-4a61-9b72-8c93a4b5c6d7", appeal.number + "/1", UK, "Готово",
                                     sent=True))
        r = await http.post(path, json={"result": "partly", "comment": "Сделали только половину"})
        assert r.status_code == 200
        assert r.json()["history"][-1] == {"change_date": state.today().isoformat(), "kind": "Assesment",
                                           "result": "partly", "comment": "Сделали только половину"}
