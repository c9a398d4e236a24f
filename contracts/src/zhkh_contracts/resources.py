"""The published files shipped inside the package: JSON Schemas, the AsyncAPI document, the golden
examples and the versioning policy. Read them without knowing where the package is installed::

    from zhkh_contracts import resources
    schema = resources.event_schema("ru.zhkh-appeals.appeal.registered.v1")   # dict, has "$id"
    doc = resources.asyncapi()
    for name, record in resources.examples().items(): ...                  # {"key", "headers", "value"}

The files themselves: ``resources.files()`` (an ``importlib.resources`` Traversable) or, on disk,
``zhkh_contracts/schemas/`` beside this module.
"""

from __future__ import annotations

import json
from importlib import resources as _res
from importlib.resources.abc import Traversable
from typing import Any

SCHEMA_BASE = "https://zhkh-appeals.example/schemas/"
"""Base of every published schema's ``$id`` (and of ``ce_dataschema``): ``<base><file name>``."""

INBOUND_HEADERS = "ce-headers.inbound.json"
"""Kafka headers a record on a raw (inbound) topic must carry: the CloudEvents Kafka binding's minimum."""

PRODUCED_HEADERS = "ce-headers.produced.json"
"""Kafka headers every record the services publish carries (lifecycle, actions)."""


def schema_id(file_name: str) -> str:
    """The ``$id`` of a published schema file, e.g. ``schema_id("ce-headers.inbound.json")``."""
    return SCHEMA_BASE + file_name


def dataschema(event_type: str) -> str:
    """The ``$id`` of an event type's data schema: the value of its ``ce_dataschema`` header."""
    return schema_id(f"{event_type}.json")


def files() -> Traversable:
    """The package's root as a Traversable: ``schemas/``, ``examples/``, ``VERSIONING.md``."""
    return _res.files(__package__ or "zhkh_contracts")


def read_text(name: str) -> str:
    """A shipped text file by its path inside the package, e.g. ``"VERSIONING.md"``."""
    node = files()
    for part in name.split("/"):
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")


def schema(file_name: str) -> dict[str, Any]:
    """A file of ``schemas/`` parsed, e.g. ``schema("ce-headers.produced.json")``."""
    return json.loads(read_text(f"schemas/{file_name}"))


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an event type's data (the record value)."""
    return schema(f"{event_type}.json")


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic, message and service operation."""
    return schema("asyncapi.json")


def schema_names() -> list[str]:
    """File names in ``schemas/``."""
    return sorted(p.name for p in files().joinpath("schemas").iterdir() if p.name.endswith(".json"))


def examples() -> dict[str, dict[str, Any]]:
    """Golden records by file name (``<ce_type>.<major>.<minor>.json``): ``{"key", "headers", "value"}``."""
    folder = files().joinpath("examples")
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".json")
    }
