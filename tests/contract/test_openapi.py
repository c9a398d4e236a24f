"""Every service's HTTP API: OpenAPI 3.1 generated from the code (served at /openapi.json), checked by
an independent linter (Redocly CLI, pinned in tests/contract/tools, strict ruleset in
tests/contract/redocly.yaml), and our own rules: one problem-details error shape, a bearer security
scheme on every operation that is not deliberately public."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TOOLS = Path(__file__).resolve().parent / "tools"
CONFIG = Path(__file__).resolve().parent / "redocly.yaml"
SERVICES = ("intake", "router", "notifier", "gis_sync", "analytics")
PUBLIC_OPS = {"citizen_status", "citizen_rate", "citizen_complain", "citizen_withdraw", "submit_appeal"}


def openapi_of(service: str) -> dict[str, Any]:
    main = __import__(f"{service}.main", fromlist=["create_app"])
    return main.create_app().openapi()


class Documents(dict):
    def __missing__(self, service: str) -> dict[str, Any]:
        self[service] = openapi_of(service)
        return self[service]

    def all(self) -> dict[str, dict[str, Any]]:
        return {s: self[s] for s in SERVICES}


@pytest.fixture(scope="module")
def documents() -> Documents:
    return Documents()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
            if method in ("get", "post", "put", "patch", "delete")]


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_is_3_1_with_problem_details_and_security(documents, service):
    doc = documents[service]
    assert doc["openapi"].startswith("3.1.")
    schemes = doc.get("components", {}).get("securitySchemes", {})
    for path, method, op in operations(doc):
        where = f"{service} {method.upper()} {path}"
        errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        assert errors, where
        for code, resp in errors.items():
            assert list(resp["content"]) == ["application/problem+json"], (where, code)
            assert resp["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}
        if op["operationId"] in PUBLIC_OPS:  # anonymous allowed: no requirement, or bearer-or-nothing
            assert op.get("security") in ([], [{"HTTPBearer": []}, {}]), where
        else:
            assert op.get("security"), f"{where} has no security requirement"
            assert all(schemes[name]["scheme"] == "bearer" for req in op["security"] for name in req), where
            assert "401" in op["responses"] and "403" in op["responses"], where


def test_redocly_lints_every_document_clean(documents, tmp_path):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("npm/node not found: Redocly CLI needs Node.js >= 20 with npm")
    done = subprocess.run([str(TOOLS / "install")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    files = []
    for service, doc in documents.all().items():
        if not doc["paths"]:
            continue  # a service with no API beyond /health, /ready and /metrics
        path = tmp_path / f"{service}.openapi.json"
        path.write_text(json.dumps(doc, ensure_ascii=False))
        files.append(str(path))
    assert len(files) >= 4
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "REDOCLY_TELEMETRY": "off", "CI": "true",
           "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true", "HOME": str(tmp_path)}
    for f in files:
        out = subprocess.run([str(TOOLS / "node_modules" / ".bin" / "redocly"), "lint", "--config", str(CONFIG),
                              "--format", "json", f], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        report = json.loads(out.stdout[out.stdout.index("{"):])
        problems = [(p.get("ruleId"), p.get("message"), [loc.get("pointer") for loc in p.get("location", [])])
                    for p in report.get("problems", [])]
        assert out.returncode == 0 and not problems, (f, problems[:20], out.stderr[-2000:])


def test_redocly_is_not_a_rubber_stamp(documents, tmp_path):
    """The same linter and rules refuse a document with the defects they are there to catch."""
    if shutil.which("node") is None:
        pytest.skip("node not found")
    doc = json.loads(json.dumps(documents["router"]))
    op = doc["paths"]["/api/v1/appeals"]["get"]
    del op["operationId"]
    op["responses"] = {"200": op["responses"]["200"]}
    op["security"] = [{"NoSuchScheme": []}]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    out = subprocess.run([str(TOOLS / "node_modules" / ".bin" / "redocly"), "lint", "--config", str(CONFIG),
                          "--format", "json", str(bad)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin:/usr/local/bin", "REDOCLY_TELEMETRY": "off", "CI": "true",
                              "HOME": str(tmp_path)})
    rules = {p["ruleId"] for p in json.loads(out.stdout[out.stdout.index("{"):])["problems"]}
    assert out.returncode != 0
    assert {"operation-operationId", "operation-4xx-response", "security-defined"} <= rules, rules
