"""The contracts integrators code against: golden examples, committed schemas, AsyncAPI, packaging."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest
from pydantic import BaseModel

import zhkh_contracts as c
from devtools import gen_contracts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "contracts" / "src" / "zhkh_contracts" / "examples").glob("*.json"))


def test_there_is_a_golden_example_for_every_event_type():
    types = {json.loads(p.read_text())["headers"]["ce_type"] for p in EXAMPLES}
    assert types == set(c.REGISTRY), f"missing examples for {set(c.REGISTRY) - types}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_old_golden_examples_still_decode(path: Path):
    """Compatibility: every example ever committed must still validate with the current code."""
    doc = json.loads(path.read_text())
    headers = [(k, v.encode()) for k, v in doc["headers"].items()]
    env = c.from_kafka(json.dumps(doc["value"]).encode(), headers, c.REGISTRY)
    assert env.appeal_id == doc["key"]
    assert str(env.id) == doc["headers"]["ce_id"]
    major = int(env.schema_version.split(".")[0])
    assert env.type.endswith(f".v{major}")


def test_committed_schemas_and_asyncapi_are_current():
    wanted = gen_contracts.render()
    for name, text in wanted.items():
        path = gen_contracts.SCHEMAS_DIR / name
        assert path.exists(), f"{name} not committed; run python -m devtools.gen_contracts"
        assert path.read_text() == text, f"{name} is stale; run python -m devtools.gen_contracts"
    assert {p.name for p in gen_contracts.SCHEMAS_DIR.glob("*.json")} == {n for n in wanted if "/" not in n}
    assert gen_contracts.main(["--check"]) == 0


def test_asyncapi_documents_every_topic_with_its_events():
    doc = json.loads((gen_contracts.SCHEMAS_DIR / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    assert {ch["address"] for ch in doc["channels"].values()} == {spec.name for spec in c.CATALOG}
    schemas = doc["components"]["schemas"]
    for cls in c.EVENT_CLASSES:
        assert cls.__name__ in schemas
        message = doc["components"]["messages"][cls.__name__]
        assert message["correlationId"]["location"] == "$message.header#/ce_correlationid"
        assert "ce_id" in message["headers"]["required"]


def _models(cls: type[BaseModel], seen: dict[str, type]) -> None:
    for field in cls.model_fields.values():
        for arg in _types(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                if arg.__name__ in seen and seen[arg.__name__] is not arg:
                    raise AssertionError(f"two models named {arg.__name__}")
                if arg.__name__ not in seen:
                    seen[arg.__name__] = arg
                    _models(arg, seen)


def _types(t: object) -> list[object]:
    args = getattr(t, "__args__", ())
    return [t, *[x for a in args for x in _types(a)]]


def test_model_class_names_are_unique():
    seen: dict[str, type] = {}
    for cls in c.EVENT_CLASSES:
        assert cls.__name__ not in seen
        seen[cls.__name__] = cls
        _models(cls, seen)
    assert {"Appeal", "Applicant", "Address"} <= set(seen)


def test_event_types_carry_their_major_version():
    for cls in c.EVENT_CLASSES:
        major = cls.SCHEMA_VERSION.split(".")[0]
        assert cls.EVENT_TYPE.endswith(f".v{major}"), cls


def test_contracts_package_installs_and_works_on_its_own(tmp_path: Path):
    """pip install ./contracts into an empty venv: no services, no FastStream."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(ROOT / "constraints.txt"),
         str(ROOT / "contracts")],
        check=True, capture_output=True, timeout=300,
    )
    code = r"""
import json, pathlib, importlib.util as u, importlib.metadata as md
import zhkh_contracts as c
from zhkh_contracts import resources as r
assert u.find_spec('faststream') is None and u.find_spec('zhkh_runtime') is None
pkg = pathlib.Path(c.__file__).parent
assert 'site-packages' in str(pkg), pkg
assert (pkg / 'py.typed').exists()
names = r.schema_names()
for cls in c.EVENT_CLASSES:
    assert r.event_schema(cls.EVENT_TYPE)['$id'] == r.dataschema(cls.EVENT_TYPE)
assert {r.INBOUND_HEADERS, r.PRODUCED_HEADERS, 'asyncapi.json'} <= set(names)
assert r.asyncapi()['asyncapi'].startswith('3.')
assert 'Minor change' in r.read_text('VERSIONING.md')
ex = r.examples()
for d in ex.values():
    c.from_kafka(json.dumps(d['value']).encode(), [(k, v.encode()) for k, v in d['headers'].items()], c.REGISTRY)
dist = md.distribution('zhkh-contracts')
meta = dist.metadata
lic = [f for f in dist.files if f.name == 'LICENSE']
assert lic and 'Apache License' in lic[0].read_text(), dist.files
assert meta['License-Expression'] == 'Apache-2.0'
urls = meta.get_all('Project-URL')
assert urls and any(u.startswith('Source') for u in urls), urls
assert any(x.startswith('Programming Language :: Python :: 3.11') for x in meta.get_all('Classifier'))
assert '](VERSIONING.md)' not in meta.get_payload() and '](https://' in meta.get_payload()
print(len(names), len(ex))
"""
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [str(len(list(gen_contracts.SCHEMAS_DIR.glob("*.json")))), str(len(EXAMPLES))]


def test_the_license_is_in_the_repository_and_in_the_contracts_package():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert (ROOT / "contracts" / "LICENSE").read_text() == text
