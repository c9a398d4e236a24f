"""EventConsumer's routing of one record, with an in-memory publisher (no broker)."""

from __future__ import annotations

from dataclasses import dataclass, field

from devtools import samples
from zhkh_contracts import AppealAssigned, RawAppealSubmitted, to_kafka
from zhkh_runtime.errors import PermanentError, TransientError
from zhkh_runtime.kafka import EventConsumer
from zhkh_runtime.records import OutboundRecord
from zhkh_runtime.settings import RuntimeSettings


@dataclass
class Rec:
    value: bytes | None
    headers: list[tuple[str, bytes]]
    key: bytes = b"k"
    topic: str = "zhkh.intake.raw.site_form"
    partition: int = 0
    offset: int = 7


@dataclass
class MemoryPublisher:
    sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)

    async def send(self, topic, key, value, headers):
        self.sent.append((topic, key, value, headers))

    async def publish(self, records):
        for r in records:
            self.sent.append((r.topic, r.key, r.value, [(k, v.encode()) for k, v in r.headers.items()]))


async def _no_sleep(_: float) -> None:
    return None


def consumer(**settings) -> tuple[EventConsumer, MemoryPublisher]:
    pub = MemoryPublisher()
    s = RuntimeSettings(service_name="svc", retry_attempts=3, **settings)
    return EventConsumer(broker=None, publisher=pub, settings=s, topics=("t",), retry_sleep=_no_sleep), pub  # type: ignore[arg-type]


def record(**kw) -> Rec:
    _, value, headers = to_kafka(samples.raw_envelope(samples.raw_submission(**kw)))
    return Rec(value, [(k, v.encode()) for k, v in headers.items()])


async def test_dispatches_by_type_and_publishes_what_the_handler_returns():
    c, pub = consumer()
    out = OutboundRecord(topic="out", key=b"a", value=b"{}", headers={"ce_type": "x"})

    @c.on(RawAppealSubmitted)
    async def h(env):
        return [out]

    await c.handle_record(record())
    assert pub.sent == [("out", b"a", b"{}", [("ce_type", b"x")])]


async def test_types_without_handler_are_ignored_not_dead_lettered():
    c, pub = consumer()

    @c.on(AppealAssigned)
    async def h(env):
        raise AssertionError("must not be called")

    await c.handle_record(record())
    assert pub.sent == []


async def test_transient_then_permanent():
    c, pub = consumer()
    calls = []

    @c.on(RawAppealSubmitted)
    async def h(env):
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("blip")
        raise PermanentError("rule", "nope")

    await c.handle_record(record())
    assert len(calls) == 2
    (topic, _, _, headers) = pub.sent[0]
    sent = dict(headers)
    assert topic == "zhkh.svc.dlq" and sent["x-dlq-reason"] == b"rule" and sent["x-dlq-attempts"] == b"2"


async def test_unexpected_exception_is_not_retried_and_is_dead_lettered():
    c, pub = consumer()
    calls = []

    @c.on(RawAppealSubmitted)
    async def h(env):
        calls.append(1)
        raise KeyError("bug")

    await c.handle_record(record())
    assert calls == [1]
    assert dict(pub.sent[0][3])["x-dlq-reason"] == b"handler_error"


async def test_dlq_topic_follows_the_topic_prefix():
    c, pub = consumer(topic_prefix="perm")
    await c.handle_record(Rec(b"{", record().headers))
    assert pub.sent[0][0] == "perm.svc.dlq"
