"""Generate the published contracts from the code: a JSON Schema per event, the two Kafka header
schemas, the AsyncAPI 3.0 document, and the catalog's producer/consumer lists.

    python -m devtools.gen_contracts          # write the files
    python -m devtools.gen_contracts --check  # exit 1 if the committed files differ

Nothing about who publishes or consumes what is written by hand:

* consumers: each service's ``create_app`` is called with ``ServiceRuntime.process`` recorded, which
  gives the topics it consumes and its ``Handlers`` registry (the event types it handles);
* producers: each service's ``PUBLISHES`` (in its ``main.py``; tests/contract checks it against the
  event classes the service's code constructs), the topic of each type found the way
  ``zhkh_runtime.engine.Emitter`` finds it (the catalog); dead letters from every service that
  processes events, rejections from the services given a ``reject_topic``;
* systems outside this repository: ``zhkh_contracts.topics.EXTERNAL_PRODUCERS``.

Outputs: ``contracts/src/zhkh_contracts/schemas/*.json``, ``contracts/src/zhkh_contracts/_wiring.py``
(read by ``Topics.catalog()`` and ``zhkh_contracts.owners``) and the package's copy of ``contracts/VERSIONING.md``.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import pprint
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zhkh_contracts as c
from zhkh_contracts import resources
from zhkh_contracts.topics import EXTERNAL_PRODUCERS

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "contracts" / "src" / "zhkh_contracts"
SCHEMAS_DIR = PACKAGE_DIR / "schemas"
WIRING_FILE = PACKAGE_DIR / "_wiring.py"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING = "0.5.0"
LICENSE = {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"}

_UUID = {"type": "string", "format": "uuid"}
_JSON_CT = r"^application/json(\s*;.*)?$"
_STRUCTURED_CT = r"^application/cloudevents\+json(\s*;.*)?$"

PRODUCED_HEADERS: dict[str, Any] = {
    "$schema": DRAFT,
    "$id": resources.schema_id(resources.PRODUCED_HEADERS),
    "title": "CeHeadersProduced",
    "description": (
        "Kafka headers of every record the zhkh-appeals services publish (lifecycle and actions topics): "
        "CloudEvents 1.0 Kafka protocol binding, binary content mode. All of them are always present; "
        "ce_dataschema since contracts 1.3.0. Since 1.4.0 only the services publish on these topics, each event "
        "type only from its owner's ce_source (/zhkh-appeals/<service>)."
    ),
    "type": "object",
    "required": [
        "ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_schemaversion",
        "ce_correlationid", "ce_partitionkey", "content-type",
    ],
    "properties": {
        "ce_specversion": {"type": "string", "const": c.SPEC_VERSION},
        "ce_id": {**_UUID, "description": "event id; consumers dedupe on it"},
        "ce_type": {"type": "string", "minLength": 1, "description": "event type, major version included"},
        "ce_source": {"type": "string", "minLength": 1, "description": "producer, e.g. /zhkh-appeals/intake"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "minLength": 1, "description": "appeal id (incident:<id> for incidents)"},
        "ce_schemaversion": {"type": "string", "pattern": r"^\d+\.\d+$"},
        "ce_correlationid": {**_UUID, "description": "shared by every event caused by one submission"},
        "ce_partitionkey": {"type": "string", "minLength": 1, "description": "equals the record key"},
        "ce_dataschema": {"type": "string", "format": "uri", "description": "$id of the value's JSON Schema"},
        "content-type": {"type": "string", "const": c.CONTENT_TYPE},
    },
}

INBOUND_HEADERS: dict[str, Any] = {
    "$schema": DRAFT,
    "$id": resources.schema_id(resources.INBOUND_HEADERS),
    "title": "CeHeadersInbound",
    "description": (
        "Kafka headers a record on a raw (inbound) topic must carry: what the CloudEvents 1.0 Kafka protocol "
        "binding requires. Binary mode: ce_id, ce_source, ce_type and ce_specversion; content-type, if "
        "present, application/json. Structured mode: content-type application/cloudevents+json and the "
        "attributes inside the JSON value instead of headers. ce_time is optional (intake then uses the time "
        "it received the record); the partition key is ce_partitionkey or else the record key."
    ),
    "type": "object",
    "properties": {
        "ce_specversion": {"type": "string", "const": c.SPEC_VERSION},
        "ce_id": {"type": "string", "minLength": 1, "description": "unique per source; any string"},
        "ce_type": {"type": "string", "minLength": 1},
        "ce_source": {"type": "string", "minLength": 1},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string"},
        "ce_schemaversion": {"type": "string", "pattern": r"^\d+\.\d+$"},
        "ce_correlationid": {"type": "string"},
        "ce_partitionkey": {"type": "string", "minLength": 1},
        "ce_dataschema": {"type": "string", "format": "uri"},
        "content-type": {"type": "string", "pattern": rf"{_JSON_CT}|{_STRUCTURED_CT}"},
    },
    "anyOf": [
        {
            "title": "binary mode",
            "required": ["ce_id", "ce_source", "ce_type", "ce_specversion"],
            "properties": {
                "ce_id": {"type": "string"}, "ce_source": {"type": "string"}, "ce_type": {"type": "string"},
                "ce_specversion": {"type": "string"}, "content-type": {"type": "string", "pattern": _JSON_CT},
            },
        },
        {
            "title": "structured mode",
            "required": ["content-type"],
            "properties": {"content-type": {"type": "string", "pattern": _STRUCTURED_CT}},
        },
    ],
}

DEAD_LETTER_HEADERS: dict[str, Any] = {
    "title": "DeadLetterHeaders",
    "description": "The original record's headers, byte for byte, plus these (docs/contracts.md).",
    "type": "object",
    "required": ["x-dlq-reason", "x-dlq-service", "x-dlq-original-topic", "x-dlq-attempts", "x-dlq-failed-at"],
    "properties": {
        "x-dlq-reason": {"type": "string", "description": "machine-readable reason"},
        "x-dlq-error": {"type": "string", "description": "field paths and error kinds, never input values"},
        "x-dlq-message-ru": {"type": "string", "description": "intake only: what to tell the citizen"},
        "x-dlq-service": {"type": "string"},
        "x-dlq-consumer-group": {"type": "string"},
        "x-dlq-original-topic": {"type": "string"},
        "x-dlq-original-partition": {"type": "string"},
        "x-dlq-original-offset": {"type": "string"},
        "x-dlq-attempts": {"type": "string"},
        "x-dlq-failed-at": {"type": "string", "format": "date-time"},
    },
}

KEY_OF: dict[str, str] = {
    c.RawAppealSubmitted.EVENT_TYPE: "<channel>:<source_id>",
    c.MassIncidentDetected.EVENT_TYPE: "incident:<incident id>",
}


# ---- the wiring, from the services' own code -----------------------------------------------------


@dataclass
class Wiring:
    """Per service: (topic, event types) it consumes and publishes, under the default prefix."""

    consumes: dict[str, dict[str, list[type[c.EventData]]]] = field(default_factory=dict)
    publishes: dict[str, dict[str, list[type[c.EventData]]]] = field(default_factory=dict)
    dead_letters: dict[str, list[str]] = field(default_factory=dict)  # service -> dlq/rejected topics


@contextmanager
def _recording() -> Iterator[list[tuple[Any, tuple[str, ...], Any, str | None]]]:
    from zhkh_runtime import app as runtime_app

    calls: list[tuple[Any, tuple[str, ...], Any, str | None]] = []
    original = runtime_app.ServiceRuntime.process

    def record(self: Any, topics: tuple[str, ...], handlers: Any, make_uow: Any, **kw: Any) -> None:  # noqa: ARG001
        calls.append((self, tuple(topics), handlers, kw.get("reject_topic")))

    runtime_app.ServiceRuntime.process = record  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        runtime_app.ServiceRuntime.process = original  # type: ignore[method-assign]


def _default(topic: str, prefix: str) -> str:
    return c.PREFIX + topic[len(prefix):] if topic.startswith(prefix + ".") else topic


def service_wiring() -> Wiring:
    """Build every service's app (nothing connects) with ``ServiceRuntime.process`` recorded."""
    w = Wiring()
    topics = c.Topics()
    topic_of = {cls: spec.name for spec in c.CATALOG for cls in spec.events}
    for svc in c.SERVICES:
        main = importlib.import_module(f"{svc}.main")
        with _recording() as calls:
            main.create_app()
        consumes: dict[str, list[type[c.EventData]]] = {}
        dead: list[str] = []
        for rt, consumed, handlers, reject_topic in calls:
            prefix = rt.topics.prefix
            for topic in consumed:
                name = _default(topic, prefix)
                on_topic = next(spec.events for spec in c.CATALOG if spec.name == name)
                consumes[name] = [cls for cls in on_topic if cls.EVENT_TYPE in handlers.classes]
            dead.append(c.dlq_topic(svc))
            if reject_topic:
                dead.append(_default(reject_topic, prefix))
        publishes: dict[str, list[type[c.EventData]]] = {}
        for cls in main.PUBLISHES:
            if cls is c.RawAppealSubmitted:
                names = [topics.raw(ch) for ch in getattr(main, "RAW_CHANNELS", tuple(c.Channel))]
            else:
                names = [topic_of[cls]]
            for name in names:
                publishes.setdefault(name, []).append(cls)
        w.consumes[svc] = consumes
        w.publishes[svc] = publishes
        w.dead_letters[svc] = sorted(set(dead))
    return w


def _kind(topic: str) -> str:
    return topic[len(c.PREFIX) + 1:]


def wiring_tables(w: Wiring) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(producers, consumers) by topic name without the prefix: the content of ``_wiring``."""
    producers: dict[str, list[str]] = {}
    consumers: dict[str, list[str]] = {}
    for svc in c.SERVICES:
        for topic in [*w.publishes[svc], *w.dead_letters[svc]]:
            producers.setdefault(_kind(topic), []).append(svc)
        for topic in w.consumes[svc]:
            consumers.setdefault(_kind(topic), []).append(svc)
    return ({k: tuple(v) for k, v in sorted(producers.items())}, {k: tuple(v) for k, v in sorted(consumers.items())})


def type_producers(w: Wiring) -> dict[str, tuple[str, ...]]:
    """Event type -> the services that publish it (in ``c.SERVICES`` order): ``zhkh_contracts.owners``."""
    owners: dict[str, list[str]] = {}
    for svc in c.SERVICES:
        for classes in w.publishes[svc].values():
            for cls in classes:
                if svc not in owners.setdefault(cls.EVENT_TYPE, []):
                    owners[cls.EVENT_TYPE].append(svc)
    return {k: tuple(v) for k, v in sorted(owners.items())}


def catalog_of(w: Wiring) -> tuple[c.TopicSpec, ...]:
    """The topic catalog as zhkh_contracts builds it, with this wiring instead of the committed one."""
    from zhkh_contracts import _wiring

    saved = _wiring.PRODUCERS, _wiring.CONSUMERS
    _wiring.PRODUCERS, _wiring.CONSUMERS = wiring_tables(w)
    try:
        return c.Topics().catalog()
    finally:
        _wiring.PRODUCERS, _wiring.CONSUMERS = saved


def wiring_module(w: Wiring) -> str:
    producers, consumers = wiring_tables(w)

    def literal(d: dict[str, tuple[str, ...]]) -> str:
        return pprint.pformat(d, width=110, sort_dicts=True)

    return (
        '"""Generated by devtools/gen_contracts.py from the services\' code: producers from each service\'s\n'
        "PUBLISHES and its dead letters, consumers from the topics and Handlers each service gives the runtime,\n"
        "the services owning each event type (TYPE_PRODUCERS, read by zhkh_contracts.owners) from PUBLISHES.\n"
        'Topic names without the prefix. Do not edit: run python -m devtools.gen_contracts."""\n\n'
        f"PRODUCERS: dict[str, tuple[str, ...]] = {literal(producers)}\n"
        f"CONSUMERS: dict[str, tuple[str, ...]] = {literal(consumers)}\n"
        f"TYPE_PRODUCERS: dict[str, tuple[str, ...]] = {literal(type_producers(w))}\n"
    )


# ---- JSON Schemas --------------------------------------------------------------------------------


def event_schema(cls: type[c.EventData]) -> dict[str, Any]:
    """The value's schema: JSON Schema 2020-12 with its ``$id``, standard keywords only."""
    schema = cls.model_json_schema(mode="serialization")
    return {
        "$schema": DRAFT,
        "$id": resources.dataschema(cls.EVENT_TYPE),
        "$comment": f"ce_type {cls.EVENT_TYPE}, ce_schemaversion {cls.SCHEMA_VERSION}",
        **schema,
    }


def _rewrite_refs(node: Any, base: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (base + v[len("#/$defs/"):] if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                else _rewrite_refs(v, base))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(x, base) for x in node]
    return node


def _hoist(schema: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """A schema for components/schemas: its $defs moved beside it, refs rewritten, no $id/$schema (an
    embedded $id would change the base URI that the document's refs resolve against)."""
    schema = copy.deepcopy(schema)
    for k in ("$schema", "$id", "$comment"):
        schema.pop(k, None)
    base = "#/components/schemas/"
    for name, sub in schema.pop("$defs", {}).items():
        sub = _rewrite_refs(sub, base)
        if name in into and into[name] != sub:
            raise ValueError(f"two different schemas named {name}: class names must be unique (VERSIONING.md)")
        into[name] = sub
    return _rewrite_refs(schema, base)


# ---- AsyncAPI ------------------------------------------------------------------------------------


def _channel_id(topic: str) -> str:
    return _kind(topic).replace(".", "_")


def _message_headers(cls: type[c.EventData], inbound: bool) -> dict[str, Any]:
    fixed = {
        "ce_type": {"type": "string", "const": cls.EVENT_TYPE},
        "ce_dataschema": {"type": "string", "const": resources.dataschema(cls.EVENT_TYPE)},
        "ce_schemaversion": {"type": "string", "pattern": rf"^{cls.SCHEMA_VERSION.split('.')[0]}\.\d+$"},
    }
    if inbound:
        base = INBOUND_HEADERS
        required = ["ce_id", "ce_source", "ce_type", "ce_specversion"]
        props = {**base["properties"], "content-type": {"type": "string", "pattern": _JSON_CT}, **fixed}
    else:
        base = PRODUCED_HEADERS
        required = base["required"]
        props = {**base["properties"], **fixed}
    return {
        "title": f"{cls.__name__}Headers",
        "description": f"{base['description']} Schema: {base['$id']}",
        "type": "object",
        "required": list(required),
        "properties": props,
    }


def _structured_payload(cls: type[c.EventData]) -> dict[str, Any]:
    return {
        "title": f"{cls.__name__}CloudEvent",
        "description": "Structured content mode: the whole CloudEvent as the record value.",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": {
            "specversion": {"type": "string", "const": c.SPEC_VERSION},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": {"type": "string", "const": cls.EVENT_TYPE},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"type": "string", "pattern": _JSON_CT},
            "dataschema": {"type": "string", "const": resources.dataschema(cls.EVENT_TYPE)},
            "subject": {"type": "string"},
            "partitionkey": {"type": "string", "minLength": 1},
            "data": {"$ref": f"#/components/schemas/{cls.__name__}"},
        },
    }


def asyncapi_document(w: Wiring) -> dict[str, Any]:
    catalog = catalog_of(w)
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    raw_types = {c.RawAppealSubmitted}

    for cls in c.EVENT_CLASSES:
        schemas[cls.__name__] = _hoist(event_schema(cls), schemas)
        inbound = cls in raw_types
        messages[cls.__name__] = {
            "name": cls.__name__,
            "title": cls.__name__,
            "summary": (cls.__doc__ or cls.__name__).strip().split("\n\n")[0].replace("\n", " "),
            "contentType": c.CONTENT_TYPE,
            "headers": _message_headers(cls, inbound),
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
            "correlationId": {"location": "$message.header#/ce_correlationid"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": f"record key: {KEY_OF.get(cls.EVENT_TYPE, 'appeal id')}"},
                    "bindingVersion": KAFKA_BINDING,
                }
            },
            "tags": [{"name": cls.EVENT_TYPE}],
        }
    for cls in raw_types:
        name = f"{cls.__name__}Structured"
        schemas[f"{cls.__name__}CloudEvent"] = _structured_payload(cls)
        messages[name] = {
            "name": name,
            "title": f"{cls.__name__} (structured mode)",
            "summary": f"{cls.EVENT_TYPE} as one application/cloudevents+json value (CloudEvents structured mode).",
            "contentType": "application/cloudevents+json",
            "headers": {
                "title": f"{name}Headers",
                "type": "object",
                "required": ["content-type"],
                "properties": {"content-type": {"type": "string", "pattern": _STRUCTURED_CT}},
            },
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}CloudEvent"},
            "bindings": messages[cls.__name__]["bindings"],
            "tags": [{"name": cls.EVENT_TYPE}],
        }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "Dead letter or rejection",
        "summary": "The original record (key, value, headers) byte for byte, plus x-dlq-* headers.",
        "contentType": "application/octet-stream",
        "headers": DEAD_LETTER_HEADERS,
        "payload": {"type": "string", "description": "the original value, byte for byte"},
    }

    for spec in catalog:
        cid = _channel_id(spec.name)
        names = [cls.__name__ for cls in spec.events]
        if c.RawAppealSubmitted in spec.events:
            names.append(f"{c.RawAppealSubmitted.__name__}Structured")
        if not spec.events:
            names = ["DeadLetter"]
        config = {"cleanup.policy": ["delete"]}
        if spec.retention_ms:
            config["retention.ms"] = spec.retention_ms
        channels[cid] = {
            "address": spec.name,
            "title": spec.name,
            "description": (
                f"{spec.description} Producers: {', '.join(spec.producers) or '-'}. "
                f"Consumers: {', '.join(spec.consumers) or '-'}. The prefix '{c.PREFIX}' is a deployment "
                "setting (ZHKH_TOPIC_PREFIX)."
            ),
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "bindings": {
                "kafka": {
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "topicConfiguration": config,
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }

    def op(op_id: str, action: str, topic: str, names: list[str], who: str, summary: str,
           group: str | None = None) -> None:
        cid = _channel_id(topic)
        operations[op_id] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{cid}/messages/{n}"} for n in names],
            "tags": [{"name": who}],
        }
        if group:
            operations[op_id]["bindings"] = {
                "kafka": {"groupId": {"type": "string", "enum": [group]}, "bindingVersion": KAFKA_BINDING}
            }

    for svc in c.SERVICES:
        for topic, classes in w.consumes[svc].items():
            names = [cls.__name__ for cls in classes]
            if c.RawAppealSubmitted in classes:
                names.append(f"{c.RawAppealSubmitted.__name__}Structured")
            op(f"{svc}_receives_{_channel_id(topic)}", "receive", topic, names, svc,
               f"{svc} handles these types (others on the topic are skipped)", group=f"{c.PREFIX}.{svc}")
        for topic, classes in w.publishes[svc].items():
            op(f"{svc}_sends_{_channel_id(topic)}", "send", topic, [cls.__name__ for cls in classes], svc,
               f"{svc} publishes these types")
        for topic in w.dead_letters[svc]:
            op(f"{svc}_sends_{_channel_id(topic)}", "send", topic, ["DeadLetter"], svc,
               f"{svc} dead-letters (or rejects) what it cannot process")
    for who, classes in EXTERNAL_PRODUCERS.items():
        who_id = "".join(ch if ch.isalnum() else "_" for ch in who).strip("_")
        for spec in catalog:
            sent = [cls for cls in spec.events if cls in classes]
            if not sent or (spec.name == c.raw_topic(c.Channel.GIS) and who == "channel adapters"):
                continue
            names = [cls.__name__ for cls in sent]
            if c.RawAppealSubmitted in sent:
                names.append(f"{c.RawAppealSubmitted.__name__}Structured")
            op(f"{who_id}_send_{_channel_id(spec.name)}", "send", spec.name, names, who,
               f"{who} (outside this repository) publish these types")

    return {
        "asyncapi": "3.0.0",
        "id": "urn:ru:zhkh-appeals:events",
        "info": {
            "title": "zhkh-appeals events",
            "version": c.__version__,
            "description": (
                "Events of zhkh-appeals. Every record is one CloudEvent 1.0 in Kafka binary content mode: the value "
                "is the event's data (JSON), the attributes are ce_* headers, the key is the appeal id. One message "
                "per event type, told apart by its fixed ce_type header. Raw topics also accept structured mode. "
                "Operations are per service, generated from the services' code; tags name the service."
            ),
            "license": LICENSE,
        },
        "defaultContentType": c.CONTENT_TYPE,
        "servers": {
            "kafka": {"host": "kafka:9092", "protocol": "kafka", "description": "Kafka cluster of zhkh-appeals"},
        },
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }


# ---- files ---------------------------------------------------------------------------------------


def render() -> dict[str, str]:
    """Every generated file: schemas/<name> relative to SCHEMAS_DIR, and _wiring.py."""
    w = service_wiring()
    files: dict[str, Any] = {f"{cls.EVENT_TYPE}.json": event_schema(cls) for cls in c.EVENT_CLASSES}
    files[resources.INBOUND_HEADERS] = INBOUND_HEADERS
    files[resources.PRODUCED_HEADERS] = PRODUCED_HEADERS
    files["asyncapi.json"] = asyncapi_document(w)
    out = {name: json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n" for name, doc in files.items()}
    out["../_wiring.py"] = wiring_module(w)
    out["../VERSIONING.md"] = (PACKAGE_DIR.parent.parent / "VERSIONING.md").read_text()  # shipped copy
    return out


def path_of(name: str) -> Path:
    return (SCHEMAS_DIR / name).resolve()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if committed files are stale")
    args = ap.parse_args(argv)
    wanted = render()
    present = {p.name for p in SCHEMAS_DIR.glob("*.json")}
    schema_names = {n for n in wanted if "/" not in n}
    if args.check:
        stale = sorted(n for n, t in wanted.items() if not path_of(n).exists() or path_of(n).read_text() != t)
        extra = sorted(present - schema_names)
        if stale or extra:
            print(f"generated contracts are stale: differs {stale}, not generated {extra}", file=sys.stderr)
            print("run: python -m devtools.gen_contracts", file=sys.stderr)
            return 1
        print(f"generated contracts are current ({len(wanted)} files)")
        return 0
    SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    for name in present - schema_names:
        (SCHEMAS_DIR / name).unlink()
    for name, text in wanted.items():
        path_of(name).write_text(text)
    print(f"wrote {len(wanted)} files under {PACKAGE_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
