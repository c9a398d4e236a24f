"""Generate contracts/schemas/ (JSON Schema per event + AsyncAPI 3.0) from zhkh_contracts.

    python -m devtools.gen_contracts          # write the files
    python -m devtools.gen_contracts --check  # exit 1 if the committed files differ

The AsyncAPI document is produced by FastStream from a catalog broker that declares, for each
topic in zhkh_contracts.CATALOG, a publisher with that topic's event classes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Union

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

import zhkh_contracts as c

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "contracts" / "schemas"

CE_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka protocol binding, binary content mode",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type"],
    "properties": {
        "ce_specversion": {"const": c.SPEC_VERSION},
        "ce_id": {"type": "string", "format": "uuid", "description": "event id; dedupe on it"},
        "ce_type": {"type": "string"},
        "ce_source": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "appeal id"},
        "ce_schemaversion": {"type": "string", "pattern": r"^\d+\.\d+$"},
        "ce_correlationid": {"type": "string", "format": "uuid"},
        "ce_partitionkey": {"type": "string", "description": "appeal id; equals the record key"},
        "content-type": {"const": c.CONTENT_TYPE},
    },
}


def event_schema(cls: type[c.EventData]) -> dict[str, Any]:
    schema = cls.model_json_schema(mode="serialization")
    schema["$id"] = f"https://zhkh-appeals.example/schemas/{cls.EVENT_TYPE}.json"
    schema["x-event-type"] = cls.EVENT_TYPE
    schema["x-schema-version"] = cls.SCHEMA_VERSION
    schema["x-kafka-headers"] = CE_HEADERS_SCHEMA
    return schema


def asyncapi_document() -> dict[str, Any]:
    broker = KafkaBroker("kafka:9092", description="Kafka cluster of zhkh-appeals")
    for spec in c.CATALOG:
        if spec.events:
            schema: Any = spec.events[0] if len(spec.events) == 1 else Union[spec.events]  # noqa: UP007
        else:
            schema = bytes
        broker.publisher(
            spec.name,
            schema=schema,
            title=spec.name,
            description=(
                f"{spec.description} Producers: {', '.join(spec.producers) or '-'}. "
                f"Consumers: {', '.join(spec.consumers) or '-'}. Key: appeal id."
            ),
        )
    spec = AsyncAPI(
        broker,
        title="zhkh-appeals events",
        version=c.__version__,
        description="Events of zhkh-appeals. Every record is a CloudEvent in Kafka binary mode.",
        schema_version="3.0.0",
    )
    doc = json.loads(spec.to_specification().to_json())
    # Our correlation id and the rest of the envelope travel as CloudEvents headers.
    for message in doc["components"]["messages"].values():
        message["correlationId"] = {"location": "$message.header#/ce_correlationid"}
        message["headers"] = CE_HEADERS_SCHEMA
    return doc


def render() -> dict[str, str]:
    files = {f"{cls.EVENT_TYPE}.json": event_schema(cls) for cls in c.EVENT_CLASSES}
    files["envelope-headers.json"] = CE_HEADERS_SCHEMA
    files["asyncapi.json"] = asyncapi_document()
    return {name: json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n" for name, doc in files.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if committed files are stale")
    args = ap.parse_args(argv)
    wanted = render()
    present = {p.name for p in SCHEMAS_DIR.glob("*.json")}
    if args.check:
        stale = sorted(n for n, t in wanted.items() if not (SCHEMAS_DIR / n).exists() or (SCHEMAS_DIR / n).read_text() != t)
        extra = sorted(present - wanted.keys())
        if stale or extra:
            print(f"contracts/schemas is stale: differs {stale}, not generated {extra}", file=sys.stderr)
            print("run: python -m devtools.gen_contracts", file=sys.stderr)
            return 1
        print(f"contracts/schemas is current ({len(wanted)} files)")
        return 0
    SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    for name in present - wanted.keys():
        (SCHEMAS_DIR / name).unlink()
    for name, text in wanted.items():
        (SCHEMAS_DIR / name).write_text(text)
    print(f"wrote {len(wanted)} files to {SCHEMAS_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
