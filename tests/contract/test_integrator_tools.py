"""The published contracts checked with tools nobody here wrote: python jsonschema (no options), Ajv in
strict mode, the official AsyncAPI CLI and parser, Modelina (TypeScript models, type-checked by tsc).

The npm tools are pinned by tests/contract/tools/package-lock.json and installed by
tests/contract/tools/install (scripts/test runs it). Without npm those tests skip and say so.
"""

from __future__ import annotations

import ast
import copy
import importlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import zhkh_contracts as c
from devtools import gen_contracts
from zhkh_contracts import resources

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(__file__).resolve().parent / "tools"
BIN = TOOLS / "node_modules" / ".bin"
SCHEMA_FILES = sorted(p for p in gen_contracts.SCHEMAS_DIR.glob("*.json") if p.name != "asyncapi.json")
ASYNCAPI = gen_contracts.SCHEMAS_DIR / "asyncapi.json"
EXAMPLES = resources.examples()
RAW = c.RawAppealSubmitted.EVENT_TYPE


def _headers_schema_of(event_type: str) -> str:
    return resources.INBOUND_HEADERS if event_type == RAW else resources.PRODUCED_HEADERS


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


def _cases() -> list[tuple[str, str, Any, bool]]:
    """(label, schema $id, instance, valid?): every golden record's value and headers, and mutations of
    each that a strict consumer must refuse."""
    out: list[tuple[str, str, Any, bool]] = []
    for name, rec in EXAMPLES.items():
        et = rec["headers"]["ce_type"]
        schema = resources.event_schema(et)
        value, headers = rec["value"], rec["headers"]
        hid = resources.schema_id(_headers_schema_of(et))
        out.append((f"{name}:value", schema["$id"], value, True))
        out.append((f"{name}:headers", hid, headers, True))
        for field in schema.get("required", []):
            out.append((f"{name}:value-{field}", schema["$id"], _without(value, field), False))
        first = next(iter(schema.get("properties", {})), None)
        if first is not None:
            out.append((f"{name}:value-{first}-nested-lists", schema["$id"], {**value, first: [[[]]]}, False))
        out.append((f"{name}:value-not-object", schema["$id"], [value], False))
        out.append((f"{name}:headers-ce_id", hid, _without(headers, "ce_id"), False))
        out.append((f"{name}:headers-specversion", hid, {**headers, "ce_specversion": "0.3"}, False))
        if et != RAW:
            out.append((f"{name}:headers-ce_time", hid, _without(headers, "ce_time"), False))
    raw = next(r for r in EXAMPLES.values() if r["headers"]["ce_type"] == RAW)["headers"]
    inbound = resources.schema_id(resources.INBOUND_HEADERS)
    minimal = {k: raw[k] for k in ("ce_id", "ce_source", "ce_type", "ce_specversion")}
    out += [
        ("inbound:minimal", inbound, minimal, True),
        ("inbound:non-uuid-id", inbound, {**minimal, "ce_id": "site-42"}, True),
        ("inbound:json-charset", inbound, {**minimal, "content-type": "application/json; charset=utf-8"}, True),
        ("inbound:structured", inbound, {"content-type": "application/cloudevents+json"}, True),
        ("inbound:no-source", inbound, _without(minimal, "ce_source"), False),
        ("inbound:xml", inbound, {**minimal, "content-type": "application/xml"}, False),
        ("inbound:bad-time", inbound, {**minimal, "ce_time": "yesterday"}, True),  # formats annotate, see ajv
    ]
    return out


CASES = _cases()


# ---- python jsonschema, no options ---------------------------------------------------------------


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[p.name for p in SCHEMA_FILES])
def test_every_schema_declares_its_dialect_and_id_and_is_valid_for_it(path: Path):
    schema = json.loads(path.read_text())
    assert schema["$schema"] == gen_contracts.DRAFT
    assert schema["$id"] == resources.schema_id(path.name)
    assert not [k for k in _keys(schema) if k.startswith("x-")], "no vendor keywords: strict validators refuse them"
    jsonschema.validators.validator_for(schema).check_schema(schema)


def _keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*node, *(k for v in node.values() for k in _keys(v))]
    if isinstance(node, list):
        return [k for v in node for k in _keys(v)]
    return []


def test_python_jsonschema_accepts_every_golden_record_and_refuses_the_mutations():
    by_id = {json.loads(p.read_text())["$id"]: json.loads(p.read_text()) for p in SCHEMA_FILES}
    wrong = []
    for label, sid, instance, valid in CASES:
        if label == "inbound:bad-time":
            continue
        try:
            jsonschema.validate(instance, by_id[sid])
            ok = True
        except jsonschema.ValidationError:
            ok = False
        if ok is not valid:
            wrong.append(label)
    assert not wrong
    assert sum(1 for *_, v in CASES if not v) > 100


# ---- npm tools -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools() -> Path:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node not found: the AsyncAPI CLI, Modelina and Ajv checks need Node.js >= 20 with npm")
    done = subprocess.run([str(TOOLS / "install")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"tests/contract/tools/install failed:\n{done.stderr[-3000:]}"
    return BIN


def _node_env(tmp: Path) -> dict[str, str]:
    cfg = tmp / "asyncapi-analytics.json"
    cfg.write_text(json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "contract-tests"}))
    return {**os.environ, "ASYNCAPI_METRICS_CONFIG_PATH": str(cfg), "CI": "true", "SUPPRESS_NO_CONFIG_WARNING": "1"}


def test_ajv_strict_compiles_every_schema_and_agrees_on_every_case(tools: Path, tmp_path: Path):
    request = {"schemas": [str(p) for p in SCHEMA_FILES], "cases": [{"schema": s, "data": d} for _, s, d, _ in CASES]}
    done = subprocess.run(["node", str(TOOLS / "ajv-strict.mjs")], input=json.dumps(request), capture_output=True,
                          text=True, timeout=120, env=_node_env(tmp_path))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["compiled"]) == len(SCHEMA_FILES)
    got = {label: r["valid"] for (label, *_), r in zip(CASES, out["results"], strict=True)}
    # with ajv-formats, formats assert: an unparseable ce_time is refused
    expected = {label: (False if label == "inbound:bad-time" else valid) for label, _, _, valid in CASES}
    assert {k for k in got if got[k] != expected[k]} == set()


def test_asyncapi_cli_validates_the_document_without_warnings(tools: Path, tmp_path: Path):
    done = subprocess.run([str(tools / "asyncapi"), "validate", str(ASYNCAPI), "--fail-severity", "warn"],
                          capture_output=True, text=True, timeout=180, env=_node_env(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "is valid" in done.stdout


def test_asyncapi_cli_generates_one_model_per_event(tools: Path, tmp_path: Path):
    out = tmp_path / "models"
    done = subprocess.run([str(tools / "asyncapi"), "generate", "models", "typescript", str(ASYNCAPI), "-o", str(out),
                           "--tsModelType=interface", "--no-interactive"],
                          capture_output=True, text=True, timeout=180, env=_node_env(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    models = {p.stem for p in out.glob("*.ts")}
    assert {cls.__name__ for cls in c.EVENT_CLASSES} <= models


def test_modelina_record_models_tell_every_event_apart_by_its_fixed_type(tools: Path, tmp_path: Path):
    """Models of whole records (headers + key + value), generated by Modelina from the document as the
    official parser reads it; tsc proves each has its literal ce_type and that no event's record is
    assignable to another's on the same topic (an accept is not a withdrawal)."""
    out = tmp_path / "records"
    done = subprocess.run(["node", str(TOOLS / "record-models.mjs"), str(ASYNCAPI), str(out)],
                          capture_output=True, text=True, timeout=180, env=_node_env(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = []
    for spec in c.CATALOG:
        if spec.name not in (c.LIFECYCLE, c.DEFAULT_TOPICS.actions):
            continue
        names = [cls.__name__ for cls in spec.events]
        for cls in spec.events:
            n = cls.__name__
            lines += [f"import {n}Record from './{n}Record';"] if f"import {n}Record " not in "\n".join(lines) else []
            lines.append(f"declare const r_{n}: {n}Record;")
            lines.append(f"const t_{n}: '{cls.EVENT_TYPE}' = r_{n}.headers.ceType;")
        for a in names:
            for b in names:
                if a != b:
                    lines += ["// @ts-expect-error different event types", f"const x_{a}_{b}: {b}Record = r_{a};"]
    imports = sorted({ln for ln in lines if ln.startswith("import")})
    (out / "check.ts").write_text("\n".join(imports + [ln for ln in lines if not ln.startswith("import")]) + "\n")
    done = subprocess.run([str(tools / "tsc"), "--noEmit", "--strict", "--esModuleInterop", "--target", "es2020",
                           "--module", "commonjs", "check.ts"], cwd=out, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:]
    assert len([ln for ln in lines if ln.startswith("// @ts-expect-error")]) == 20 * 19 + 13 * 12


# ---- the AsyncAPI document says what the code does -----------------------------------------------

DOC = json.loads(ASYNCAPI.read_text())


def test_one_message_per_event_type_with_its_fixed_type_and_dataschema():
    messages = DOC["components"]["messages"]
    for cls in c.EVENT_CLASSES:
        m = messages[cls.__name__]
        props = m["headers"]["properties"]
        assert props["ce_type"]["const"] == cls.EVENT_TYPE
        assert props["ce_dataschema"]["const"] == resources.event_schema(cls.EVENT_TYPE)["$id"]
        assert m["payload"] == {"$ref": f"#/components/schemas/{cls.__name__}"}
    for channel in DOC["channels"].values():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]


def _ops(service: str, action: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for op in DOC["operations"].values():
        if op["action"] == action and op["tags"] == [{"name": service}]:
            address = DOC["channels"][op["channel"]["$ref"].split("/")[-1]]["address"]
            out[address] = {m["$ref"].split("/")[-1] for m in op["messages"]}
    return out


def test_operations_follow_the_services_registries_and_publishes():
    w = gen_contracts.service_wiring()
    for svc in c.SERVICES:
        receives = _ops(svc, "receive")
        assert {t: {cls.__name__ for cls in classes} for t, classes in w.consumes[svc].items()} == {
            t: names - {"RawAppealSubmittedStructured"} for t, names in receives.items()}
    assert _ops("gis_sync", "send")[c.DEFAULT_TOPICS.actions] == {"CitizenWithdrew"}
    assert _ops("gis_sync", "send")[c.raw_topic(c.Channel.GIS)] == {"RawAppealSubmitted"}
    assert _ops("notifier", "send")[c.DEFAULT_TOPICS.actions] == {"DeadlineExpired"}
    assert _ops("router", "receive")[c.DEFAULT_TOPICS.actions] == {
        cls.__name__ for cls in (*c.ACTION_CLASSES, *c.CARD_ACTION_CLASSES)}
    actions = next(s for s in c.CATALOG if s.name == c.DEFAULT_TOPICS.actions)
    assert {"gis_sync", "notifier"} <= set(actions.producers) and actions.consumers == ("router",)
    assert actions.producers == ("router", "notifier", "gis_sync")  # parties, operators, citizens: the router's API


def test_every_event_type_has_owners_derived_from_the_services_publishes():
    """zhkh_contracts.owners is what the engine trusts (forged_source): it must be the code's PUBLISHES."""
    w = gen_contracts.service_wiring()
    assert gen_contracts.type_producers(w) == c._wiring.TYPE_PRODUCERS  # noqa: SLF001 - the generated table
    assert set(c._wiring.TYPE_PRODUCERS) == set(c.REGISTRY)  # noqa: SLF001 - every type has an owner
    party_actions = (c.PartyAccepted, c.PartyAnswered, c.PartyRejectedNotResponsible, c.PartyRequestedExtension,
                     c.OperatorAssigned, c.CitizenRatedAnswer, c.CitizenComplained)
    assert {c.owners(cls.EVENT_TYPE) for cls in party_actions} == {("router",)}
    assert c.owners(c.CitizenWithdrew.EVENT_TYPE) == ("router", "gis_sync")
    assert c.owners(c.DeadlineExpired.EVENT_TYPE) == ("notifier",)
    assert c.owners(c.AppealAnswered.EVENT_TYPE) == ("router",)
    assert c.owners(c.AppealRegistered.EVENT_TYPE) == ("intake",)
    assert c.owners("ru.somebody.else.v1") == ()
    raw_gis = next(s for s in c.CATALOG if s.name == c.raw_topic(c.Channel.GIS))
    assert raw_gis.producers == ("gis_sync",)  # no channel adapters there: only gis_sync is trusted


def test_the_router_consumes_what_is_really_registered():
    """A derived list must move when the code does: drop a handler and the wiring loses it."""
    from router import service as router_service

    original = router_service.RouterService.handlers

    def fewer(self):  # noqa: ANN001, ANN202
        h = original(self)
        h.by_type.pop(c.DeadlinePlanned.EVENT_TYPE)
        h.classes.pop(c.DeadlinePlanned.EVENT_TYPE)
        return h

    router_service.RouterService.handlers = fewer  # type: ignore[method-assign]
    try:
        w = gen_contracts.service_wiring()
    finally:
        router_service.RouterService.handlers = original  # type: ignore[method-assign]
    assert c.DeadlinePlanned not in w.consumes["router"][c.LIFECYCLE]
    assert c.DeadlinePlanned in gen_contracts.service_wiring().consumes["router"][c.LIFECYCLE]


def _constructed(service: str) -> set[str]:
    """Event classes a service's code constructs (``X(...)`` or ``X.model_validate(...)``)."""
    names = {cls.__name__ for cls in c.EVENT_CLASSES}
    found: set[str] = set()
    for path in (ROOT / "services" / service).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id in names:
                found.add(f.id)
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in names \
                    and f.attr.startswith("model_validate"):
                found.add(f.value.id)
    return found


@pytest.mark.parametrize("service", c.SERVICES)
def test_each_services_publishes_declaration_matches_the_events_its_code_makes(service: str):
    main = importlib.import_module(f"{service}.main")
    declared = {cls.__name__ for cls in main.PUBLISHES}
    # the router's HTTP API (issue 13, written apart from the engine's checks) publishes API_ACTIONS; until its
    # code is here they are declared (so the engine accepts them from the router only) without being constructed
    api = {cls.__name__ for cls in getattr(main, "API_ACTIONS", ())}
    constructed = _constructed(service)
    assert declared - (api - constructed) == constructed, f"update {service}/main.py PUBLISHES"


def test_structurally_equal_payloads_stay_apart_in_the_document():
    """The actions' payloads are identical in shape; in the document they are separate messages whose
    headers differ by ce_type, so a validator of the whole record refuses an accept as a withdrawal."""
    accept = next(r for r in EXAMPLES.values() if r["headers"]["ce_type"] == c.PartyAccepted.EVENT_TYPE)
    withdraw = DOC["components"]["messages"]["CitizenWithdrew"]["headers"]
    schema = copy.deepcopy(withdraw)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(accept["headers"], schema)
