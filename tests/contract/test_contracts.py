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
EXAMPLES = sorted((ROOT / "contracts" / "examples").glob("*.json"))


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
    assert {p.name for p in gen_contracts.SCHEMAS_DIR.glob("*.json")} == set(wanted)


def test_asyncapi_documents_every_topic_with_its_events():
    doc = json.loads((gen_contracts.SCHEMAS_DIR / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == {spec.name for spec in c.CATALOG}
    schemas = doc["components"]["schemas"]
    for cls in c.EVENT_CLASSES:
        assert cls.__name__ in schemas
    for message in doc["components"]["messages"].values():
        assert message["correlationId"]["location"] == "$message.header#/ce_correlationid"
        assert "ce_id" in message["headers"]["properties"]


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
    example = EXAMPLES[0]
    code = (
        "import json, sys, zhkh_contracts as c, importlib.util as u;"
        "assert u.find_spec('faststream') is None and u.find_spec('zhkh_runtime') is None;"
        f"d=json.load(open({str(example)!r}));"
        "e=c.from_kafka(json.dumps(d['value']).encode(),[(k,v.encode()) for k,v in d['headers'].items()],c.REGISTRY);"
        "import pathlib; assert (pathlib.Path(c.__file__).parent/'py.typed').exists();"
        "print(e.type)"
    )
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == json.loads(example.read_text())["headers"]["ce_type"]
