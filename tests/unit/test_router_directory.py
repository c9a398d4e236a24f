"""Directory import validation: every bad row reported with file and line; references checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from router.directory import ImportFailed, parse

SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "sample_directory"


def copy_sample(tmp: Path) -> Path:
    for f in SAMPLE.glob("*.csv"):
        shutil.copy(f, tmp / f.name)
    return tmp


def test_sample_directory_is_valid():
    d = parse(sorted(SAMPLE.glob("*.csv")))
    assert (len(d.parties), len(d.districts), len(d.houses)) == (12, 2, 4)
    assert d.houses["addr:г пермь ул мира д 7"].managing_org_id == "tsj-mira-7"
    assert d.houses["fias:5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b"].direct_contracts == {"electricity", "gas"}


def test_bad_rows_are_all_reported_with_file_and_line(tmp_path):
    folder = copy_sample(tmp_path)
    with (folder / "parties.csv").open("a", encoding="utf-8") as f:
        f.write("bad party,managing_organisation,X,Europe/Moscow,\n")  # line 14: bad id
        f.write("uk-2,plumber,Y,Europe/Moscow,\n")  # line 15: unknown kind
        f.write("uk-3,managing_organisation,Z,Mars/Olympus,\n")  # line 16: unknown time zone
        f.write("gzhi,housing_inspection,Дубль,Europe/Moscow,\n")  # line 17: duplicate id
    with (folder / "houses.csv").open("a", encoding="utf-8") as f:
        f.write(",,d-leninsky,uk-zarechye,,,,,,,,\n")  # line 6: no fias_guid, no address
        f.write(",ул. Новая 1,d-nowhere,tgk-teplo,,,,,,,,\n")  # line 7: unknown district; supplier as MO
        f.write(",ул. Новая 2,d-leninsky,,steam,,,,,,,\n")  # line 8: unknown resource
    with pytest.raises(ImportFailed) as err:
        parse(sorted(folder.glob("*.csv")))
    text = "\n".join(map(str, err.value.errors))
    for where in ("parties.csv:14", "parties.csv:15", "parties.csv:16", "parties.csv:17", "houses.csv:6", "houses.csv:8"):
        assert where in text, (where, text)
    assert "houses.csv:7: district_id 'd-nowhere' is not in the directory" in text
    assert "houses.csv:7: managing_org_id 'tgk-teplo' is a resource_supplier, not a managing_organisation" in text


def test_json_document_works_too(tmp_path):
    doc = {
        "parties": [{"party_id": "uk-1", "kind": "managing_organisation", "name": "УК", "timezone": "Europe/Moscow"},
                    {"party_id": "adm", "kind": "district_administration", "name": "Адм."}],
        "districts": [{"district_id": "d1", "name": "Район", "administration_id": "adm"}],
        "houses": [{"address": "ул. Ленина, 1", "district_id": "d1", "managing_org_id": "uk-1", "direct_contracts": ["gas"]}],
    }
    path = tmp_path / "dir.json"
    path.write_text(json.dumps(doc, ensure_ascii=False))
    d = parse([path])
    assert d.houses["addr:ул ленина 1"].direct_contracts == {"gas"}
    doc["houses"][0]["managing_org_id"] = "adm"
    path.write_text(json.dumps(doc, ensure_ascii=False))
    with pytest.raises(ImportFailed) as err:
        parse([path])
    assert "dir.json:houses[1]" in str(err.value.errors[0])
