"""The shared consumer policy against the real broker: explicit commits, retries, DLQ, redelivery."""

from __future__ import annotations

import asyncio
import types

import pytest

from devtools import samples
from tests.integration.conftest import runtime_settings
from tests.support.kafka import TopicReader, committed, eventually, headers_of, produce, running
from zhkh_contracts import Channel, RawAppealSubmitted
from zhkh_runtime.app import ServiceRuntime
from zhkh_runtime.engine import Handlers
from zhkh_runtime.errors import PermanentError, TransientError

pytestmark = pytest.mark.integration


def probe_runtime(infra, prefix, **overrides):  # noqa: ANN001, ANN201
    rt = ServiceRuntime(runtime_settings(infra, prefix, **overrides))
    return rt, rt.topics.raw(Channel.SITE_FORM)


async def publish_sample(infra, rt, **kw):  # noqa: ANN001, ANN201
    raw = samples.raw_submission(**kw)
    topic, key, value, headers = samples.raw_record(raw, topics=rt.topics)
    await produce(infra.bootstrap, topic, value, key, headers)
    return raw, key, value, headers


async def test_round_trip_commits_offset_only_after_handling(infra, prefix):
    rt, topic = probe_runtime(infra, prefix)
    seen: list = []
    h = Handlers()

    @h.on(RawAppealSubmitted)
    async def handle(event, uow):
        seen.append((event, uow.message.key))
        return []

    rt.process((topic,), h, lambda session: types.SimpleNamespace())
    async with running(rt.http_app()):
        raw, key, value, _ = await publish_sample(infra, rt)
        await eventually(lambda: _true(len(seen) == 1))
    assert seen[0][0] == raw
    assert seen[0][1] == key.decode()
    async with TopicReader(infra.bootstrap, topic) as reader:
        (rec,) = await reader.wait_for(lambda r: len(r) == 1)
    assert await committed(infra.bootstrap, rt.settings.group_id, topic, rec.partition) == rec.offset + 1


async def test_permanent_failure_goes_to_dlq_with_original_bytes_and_the_stream_moves_on(infra, prefix):
    rt, topic = probe_runtime(infra, prefix)
    handled: list[str] = []
    h = Handlers()

    @h.on(RawAppealSubmitted)
    async def handle(event, uow):
        if event.text.startswith("bad"):
            raise PermanentError("business_rule", "text starts with bad")
        handled.append(event.source_id)
        return []

    rt.process((topic,), h, lambda session: types.SimpleNamespace())
    async with running(rt.http_app()):
        _, bad_key, bad_value, bad_headers = await publish_sample(infra, rt, text="bad appeal", source_id="s-bad")
        await publish_sample(infra, rt, source_id="s-good")
        await eventually(lambda: _true(handled == ["s-good"]))
        async with TopicReader(infra.bootstrap, rt.topics.dlq("probe")) as dlq:
            (dead,) = await dlq.wait_for(lambda r: len(r) >= 1)
            await dlq.settle(1.0)
            assert len(dlq.records) == 1
    h = headers_of(dead)
    assert dead.value == bad_value and dead.key == bad_key
    assert h["x-dlq-reason"] == b"business_rule"
    assert h["x-dlq-error"] == b"text starts with bad"
    assert h["x-dlq-original-topic"] == topic.encode()
    assert h["x-dlq-attempts"] == b"1"
    assert h["ce_id"] == dict(bad_headers)["ce_id"]  # original headers kept


async def test_transient_failures_are_retried_then_succeed_without_dlq(infra, prefix):
    rt, topic = probe_runtime(infra, prefix)
    calls: list[int] = []
    h = Handlers()

    @h.on(RawAppealSubmitted)
    async def handle(event, uow):
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("database briefly unavailable")
        return []

    rt.process((topic,), h, lambda session: types.SimpleNamespace())
    async with running(rt.http_app()):
        await publish_sample(infra, rt)
        await eventually(lambda: _true(len(calls) == 3))
        async with TopicReader(infra.bootstrap, rt.topics.dlq("probe")) as dlq:
            assert await dlq.settle(1.0) == []


async def test_exhausted_retries_dead_letter_with_attempt_count(infra, prefix):
    rt, topic = probe_runtime(infra, prefix, retry_attempts=4)
    calls: list[int] = []
    h = Handlers()

    @h.on(RawAppealSubmitted)
    async def handle(event, uow):
        calls.append(1)
        raise TransientError("still down")

    rt.process((topic,), h, lambda session: types.SimpleNamespace())
    async with running(rt.http_app()):
        await publish_sample(infra, rt)
        async with TopicReader(infra.bootstrap, rt.topics.dlq("probe")) as dlq:
            (dead,) = await dlq.wait_for(lambda r: len(r) >= 1)
    assert len(calls) == 4
    h = headers_of(dead)
    assert h["x-dlq-reason"] == b"retries_exhausted"
    assert h["x-dlq-attempts"] == b"4"
    assert h["x-dlq-error"] == b"TransientError"  # the exception's class, never its text (it may quote input)


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"\xff\xfe not utf-8", None, b"bad_encoding"),
        (b"{not json", None, b"bad_json"),
        (b'{"channel": "site_form"}', None, b"missing_field"),
        (b"{}", [("ce_type", b"ru.zhkh-appeals.intake.raw_submitted.v1")], b"missing_header"),
        (b"{}", [("ce_id", b"\xc3\x28")], b"bad_header"),
    ],
    ids=["bad-utf8", "bad-json", "invalid-data", "missing-header", "undecodable-header"],
)
async def test_undecodable_records_are_dead_lettered_byte_for_byte(infra, prefix, value, headers, reason):
    rt, topic = probe_runtime(infra, prefix)
    h = Handlers()
    called: list[int] = []

    @h.on(RawAppealSubmitted)
    async def handle(event, uow):
        called.append(1)
        return []

    rt.process((topic,), h, lambda session: types.SimpleNamespace())
    if headers is None:
        _, _, _, good = samples.raw_record(samples.raw_submission(), topics=rt.topics)
        headers = good
    async with running(rt.http_app()):
        await produce(infra.bootstrap, topic, value, b"k-1", headers)
        async with TopicReader(infra.bootstrap, rt.topics.dlq("probe")) as dlq:
            (dead,) = await dlq.wait_for(lambda r: len(r) >= 1)
    assert called == []
    assert dead.value == value
    assert dead.key == b"k-1"
    assert headers_of(dead)["x-dlq-reason"] == reason
    assert [(k, v) for k, v in dead.headers if not k.startswith("x-dlq-")] == list(headers)


async def test_failed_dead_letter_publish_is_not_committed_and_the_record_comes_back(infra, prefix):
    rt, topic = probe_runtime(infra, prefix)
    h = Handlers()
    calls: list[int] = []

    @h.on(RawAppealSubmitted)
    async def handle(event, uow):
        calls.append(1)
        raise PermanentError("business_rule")

    real_send = rt.publisher.send
    dlq_failures: list[int] = []

    async def flaky_send(topic_name, key, value, headers):
        if topic_name.endswith(".dlq") and not dlq_failures:
            dlq_failures.append(1)
            raise ConnectionError("broker went away while dead-lettering")
        await real_send(topic_name, key, value, headers)

    rt.publisher.send = flaky_send  # type: ignore[method-assign]
    rt.process((topic,), h, lambda session: types.SimpleNamespace())
    async with running(rt.http_app()):
        await publish_sample(infra, rt)
        async with TopicReader(infra.bootstrap, rt.topics.dlq("probe")) as dlq:
            await dlq.wait_for(lambda r: len(r) >= 1, timeout=30)
            await dlq.settle(1.0)
            assert len(dlq.records) == 1
    assert dlq_failures == [1]
    assert len(calls) == 2  # handled, DLQ publish failed, not committed, redelivered, dead-lettered


async def test_stop_mid_handler_leaves_offset_uncommitted_and_next_instance_gets_the_record(infra, prefix):
    rt, topic = probe_runtime(infra, prefix, graceful_timeout_s=1.0)
    started = asyncio.Event()
    h = Handlers()

    @h.on(RawAppealSubmitted)
    async def stuck(event, uow):
        started.set()
        await asyncio.sleep(3600)  # a handler that never finishes before the process stops
        return []

    rt.process((topic,), h, lambda session: types.SimpleNamespace())
    async with running(rt.http_app()):
        raw, *_ = await publish_sample(infra, rt)
        await asyncio.wait_for(started.wait(), 30)

    rt2, _ = probe_runtime(infra, prefix)
    seen: list = []
    h2 = Handlers()

    @h2.on(RawAppealSubmitted)
    async def handle(event, uow):
        seen.append(event.source_id)
        return []

    rt2.process((topic,), h2, lambda session: types.SimpleNamespace())
    async with running(rt2.http_app()):
        await eventually(lambda: _true(seen == [raw.source_id]), timeout=60)


async def _true(value: bool) -> bool:
    return value
