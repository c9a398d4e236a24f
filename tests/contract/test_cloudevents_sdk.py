"""The official CloudEvents Python SDK (PyPI ``cloudevents``, its Kafka binding) against our records: it
decodes every golden record and what the services publish; what it produces is registered by intake."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

import zhkh_contracts as c
from devtools import samples
from tests.support.kafka import TopicReader, produce, running
from tests.support.services import service_settings
from zhkh_contracts import resources

FORMAT = JSONFormat()


def _message(key: str | None, headers: dict[str, str], value: bytes) -> ce_kafka.KafkaMessage:
    return ce_kafka.KafkaMessage(headers={k: v.encode() for k, v in headers.items()}, key=key, value=value)


@pytest.mark.parametrize("name", sorted(resources.examples()))
def test_the_sdk_decodes_every_golden_record(name: str):
    rec = resources.examples()[name]
    event = ce_kafka.from_binary(_message(rec["key"], rec["headers"], json.dumps(rec["value"]).encode()), FORMAT)
    assert event.get_type() == rec["headers"]["ce_type"]
    assert event.get_id() == rec["headers"]["ce_id"]
    assert event.get_source() == rec["headers"]["ce_source"]
    assert event.get_data() == rec["value"]
    assert event.get_extension("partitionkey") == rec["key"]


def test_the_sdk_decodes_what_to_kafka_makes_with_every_attribute():
    env = c.Envelope.new(samples.raw_submission(), source="/channels/site_form", appeal_id="site_form:x-1")
    key, value, headers = c.to_kafka(env)
    event = ce_kafka.from_binary(_message(key.decode(), headers, value), FORMAT)
    assert event.get_dataschema() == resources.dataschema(env.type)
    assert event.get_time() == env.occurred_at
    assert event.get_extension("correlationid") == str(env.correlation_id)


def _sdk_raw(raw: c.RawAppealSubmitted, *, full: bool, drop: tuple[str, ...] = ()) -> ce_kafka.KafkaMessage:
    """A raw submission as the SDK makes it: ``full`` with every attribute our docs list, else only the
    ones CloudEvents requires (id, source, type, specversion; the SDK adds ``time`` itself), the record key
    as the partition key. ``drop``: headers taken off afterwards (e.g. ce_time, optional in the binding)."""
    attributes: dict[str, object] = {
        "id": str(uuid.uuid4()), "source": "/channels/sdk-adapter", "type": c.RawAppealSubmitted.EVENT_TYPE,
        "specversion": "1.0",
    }
    if full:
        attributes |= {"time": datetime.now(UTC), "datacontenttype": c.CONTENT_TYPE,
                       "dataschema": resources.dataschema(c.RawAppealSubmitted.EVENT_TYPE),
                       "partitionkey": f"{raw.channel.value}:{raw.source_id}"}
    event = CloudEvent(attributes, raw.model_dump(mode="json"))
    msg = ce_kafka.to_binary(event, FORMAT)
    headers = {k: v for k, v in msg.headers.items() if k not in drop}
    return ce_kafka.KafkaMessage(headers=headers, key=f"{raw.channel.value}:{raw.source_id}", value=msg.value)


async def _registered_via_sdk(  # noqa: ANN202
    infra, prefix, msg: ce_kafka.KafkaMessage, raw: c.RawAppealSubmitted,  # noqa: ANN001
):
    from intake.main import create_app
    from intake.settings import IntakeSettings

    topics = c.Topics(prefix)
    async with running(create_app(service_settings(IntakeSettings, infra, prefix))):
        async with TopicReader(infra.bootstrap, topics.lifecycle, topics.rejected) as reader:
            key = msg.key.encode() if isinstance(msg.key, str) else msg.key
            await produce(infra.bootstrap, topics.raw(raw.channel), msg.value, key=key,
                          headers=[(k, bytes(v)) for k, v in msg.headers.items()])
            records = await reader.wait_for(lambda rs: len(rs) >= 1)
    (rec,) = records[:1]
    assert rec.topic == topics.lifecycle, dict(rec.headers).get("x-dlq-reason")
    # consumed with the SDK: our produced record is a CloudEvent it reads completely
    event = ce_kafka.from_binary(
        ce_kafka.KafkaMessage(headers=dict(rec.headers), key=rec.key, value=rec.value), FORMAT)
    assert event.get_type() == c.AppealRegistered.EVENT_TYPE
    assert event.get_dataschema() == resources.dataschema(c.AppealRegistered.EVENT_TYPE)
    data = event.get_data()
    assert data["appeal"]["source_id"] == raw.source_id
    assert data["appeal"]["registration_number"].startswith("ZH-")
    assert event.get_extension("partitionkey") == data["appeal"]["appeal_id"]


@pytest.mark.integration
async def test_an_sdk_produced_appeal_with_every_attribute_is_registered(infra, prefix, mongo_db):  # noqa: ANN001
    raw = samples.raw_submission(channel=c.Channel.SITE_FORM)
    await _registered_via_sdk(infra, prefix, _sdk_raw(raw, full=True), raw)


@pytest.mark.integration
@pytest.mark.parametrize("drop", [(), ("ce_time",)], ids=["as-the-sdk-makes-it", "without-ce_time"])
async def test_an_sdk_produced_appeal_with_only_the_required_attributes_is_registered(
    infra, prefix, mongo_db, drop: tuple[str, ...],  # noqa: ANN001
):
    raw = samples.raw_submission(channel=c.Channel.CHATBOT)
    await _registered_via_sdk(infra, prefix, _sdk_raw(raw, full=False, drop=drop), raw)

