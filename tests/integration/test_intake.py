"""intake on the real broker and database: classification, duplicates, mass incidents, bad input."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest

from devtools import samples
from tests.support.kafka import TopicReader, headers_of, produce, running
from tests.support.services import publish_raw, service_settings
from zhkh_contracts import (
    REGISTRY,
    Address,
    AppealDuplicateLinked,
    AppealJoinedIncident,
    AppealRegistered,
    Category,
    Channel,
    MassIncidentDetected,
    Topics,
    from_kafka,
    to_kafka,
)

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def intake(infra, prefix, **overrides):  # noqa: ANN001, ANN201
    from intake.main import create_app
    from intake.settings import IntakeSettings

    async with running(create_app(service_settings(IntakeSettings, infra, prefix, **overrides))):
        yield


def events(records):  # noqa: ANN001, ANN201
    return [from_kafka(r.value, r.headers, REGISTRY) for r in records]


def of_type(records, cls):  # noqa: ANN001, ANN201
    return [e for e in events(records) if isinstance(e.data, cls)]


async def test_text_is_classified_when_the_channel_gives_no_category(infra, prefix, mongo_db):
    async with intake(infra, prefix):
        raw = samples.raw_submission(channel=Channel.SOCIAL, category=None, text="В подъезде сильно пахнет газом!")
        await publish_raw(infra, prefix, raw)
        async with TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as lc:
            recs = await lc.wait_for(lambda r: len(r) >= 1)
    (reg,) = of_type(recs, AppealRegistered)
    a = reg.data.appeal
    assert (a.category, a.category_source, a.emergency, a.emergency_rule) == (Category.GAS, "classifier", True, "gas_smell")
    assert 0 < a.category_confidence <= 1


async def test_same_applicant_again_is_registered_and_linked_not_dropped(infra, prefix, mongo_db):
    async with intake(infra, prefix):
        first = samples.raw_submission(source_id="form-1", phone="+7 912 000-11-22", email=None)
        again = samples.raw_submission(source_id="form-2", phone="8 912 000 11 22", email=None)  # same number
        await publish_raw(infra, prefix, first)
        async with TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as lc:
            await lc.wait_for(lambda r: len(of_type(r, AppealRegistered)) == 1)
            await publish_raw(infra, prefix, again)
            recs = await lc.wait_for(lambda r: len(of_type(r, AppealDuplicateLinked)) == 1)
    regs = {e.data.appeal.source_id: e.data.appeal for e in of_type(recs, AppealRegistered)}
    (dup,) = of_type(recs, AppealDuplicateLinked)
    assert regs["form-2"].duplicate_of == regs["form-1"].appeal_id == dup.data.duplicate_of
    assert dup.data.duplicate_of_number == regs["form-1"].registration_number
    assert await mongo_db.intake_appeals.count_documents({}) == 2


async def test_reports_from_three_applicants_form_one_mass_incident(infra, prefix, mongo_db):
    house = Address(text="г. Пермь, ул. Мира, д. 7")
    phones = ["+79120000001", "+79120000002", "+79120000003", "+79120000004"]
    async with intake(infra, prefix):
        async with TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as lc:
            for i, phone in enumerate(phones):
                raw = samples.raw_submission(source_id=f"call-{i}", phone=phone, email=None, category=Category.COLD_WATER)
                await publish_raw(infra, prefix, raw.model_copy(update={"address": house}))
                # one at a time, so the order (and who opens the incident) is deterministic
                await lc.wait_for(lambda r, n=i + 1: len(of_type(r, AppealRegistered)) == n)
            recs = await lc.wait_for(lambda r: len(of_type(r, AppealJoinedIncident)) == 4)
    (incident,) = of_type(recs, MassIncidentDetected)
    regs = [e.data.appeal for e in of_type(recs, AppealRegistered)]
    assert incident.data.house_key == "addr:г пермь ул мира д 7" and incident.data.category == Category.COLD_WATER
    assert list(incident.data.appeal_ids) == [a.appeal_id for a in regs[:3]]
    assert incident.appeal_id == f"incident:{incident.data.incident_id}"  # the record key
    assert {e.data.appeal_id for e in of_type(recs, AppealJoinedIncident)} == {a.appeal_id for a in regs}
    assert regs[2].incident_id == regs[3].incident_id == incident.data.incident_id
    stored = await mongo_db.intake_appeals.distinct("incident_id")
    assert stored == [str(incident.data.incident_id)]


def _good_headers(raw) -> list[tuple[str, bytes]]:  # noqa: ANN001
    _, _, h = to_kafka(samples.raw_envelope(raw))
    return [(k, v.encode()) for k, v in h.items()]


def bad_corpus() -> list[tuple[str, bytes, list[tuple[str, bytes]], str]]:
    """(name, value, headers, expected reason) of real bad input, as publishers get it wrong."""
    ok = samples.raw_submission(source_id="x")
    good_value = ok.model_dump_json().encode()
    # the partition key only in the record key (allowed on raw topics by the CloudEvents binding),
    # so each record can carry its own key while its data says source_id "x"
    h = [(k, v) for k, v in _good_headers(ok) if k not in ("ce_partitionkey", "ce_subject")]
    doc = json.loads(good_value)

    def with_(**kw: object) -> bytes:
        return json.dumps({**doc, **kw}, ensure_ascii=False).encode()

    without_ce_type = [(k, v) for k, v in h if k != "ce_type"]
    other_type = [(k, b"ru.zhkh-appeals.appeal.assigned.v1" if k == "ce_type" else v) for k, v in h]
    return [
        ("not-json", b"\xd0\x9d\xd0\xb5 JSON", h, "bad_json"),
        ("cp1251", "Нет горячей воды".encode("cp1251"), h, "bad_encoding"),
        ("truncated", good_value[:40], h, "bad_json"),
        ("empty", b"", h, "bad_json"),
        ("deep-nesting", b"[" * 100_000 + b"]" * 100_000, h, "bad_json"),
        ("deep-nesting-small", b"[" * 50_000, h, "bad_json"),
        ("array", b"[1,2,3]", h, "invalid_data"),
        ("missing-text", json.dumps({k: v for k, v in doc.items() if k != "text"}).encode(), h, "missing_field"),
        ("unknown-channel", with_(channel="pigeon_post"), h, "unknown_channel"),
        ("oversized-text", with_(text="Очень " * 5000), h, "too_long"),
        ("huge-record", with_(text="я" * 300_000), h, "too_large"),
        ("no-ce-type", good_value, without_ce_type, "missing_header"),
        ("wrong-type", good_value, other_type, "type_not_allowed"),  # a lifecycle type on a raw topic
        ("unknown-type", good_value, [(k, b"ru.somebody.else.v1" if k == "ce_type" else v) for k, v in h], "unknown_type"),
        ("mongo-operator", with_(source_id={"$gt": ""}), h, "invalid_data"),
        ("bad-meta-key", with_(channel_meta={"$where": "1"}), h, "invalid_data"),
        ("bad-phone", with_(applicant={"name": "X", "phone": "звоните мне"}), h, "invalid_phone"),
        ("invisible-text", with_(text="\u200b\u202e\u0000"), h, "empty_text"),
        ("no-address", with_(address={}), h, "missing_address"),
        ("naive-time", with_(received_at="2026-11-23T10:00:00"), h, "invalid_data"),
    ]


async def test_bad_input_corpus_is_rejected_byte_for_byte_and_good_input_still_flows(infra, prefix, mongo_db):
    corpus = bad_corpus()
    topic = Topics(prefix).raw(Channel.SITE_FORM)
    hostile = samples.raw_submission(
        source_id="hostile", text="<script>alert(1)</script>'; DROP TABLE appeals;-- {\"$gt\": \"\"} \u202eтекст"
    )
    async with intake(infra, prefix):
        for name, value, headers, _ in corpus:
            await produce(infra.bootstrap, topic, value, f"site_form:{name}".encode(), headers)
        await publish_raw(infra, prefix, hostile)
        async with TopicReader(infra.bootstrap, Topics(prefix).rejected) as rej:
            await rej.wait_for(lambda r: len(r) >= len(corpus), timeout=60)
            await rej.settle(1.0)
        async with TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as lc:
            (reg,) = of_type(await lc.wait_for(lambda r: len(r) >= 1), AppealRegistered)
        async with TopicReader(infra.bootstrap, Topics(prefix).dlq("intake")) as dlq:
            assert await dlq.settle(0.5) == []  # nothing failed in processing: all refusals are input errors
    by_key = {r.key.decode(): r for r in rej.records}
    assert len(rej.records) == len(corpus)  # each refused exactly once: nothing lost, nothing looping
    for name, value, headers, reason in corpus:
        r = by_key[f"site_form:{name}"]
        h = headers_of(r)
        assert (name, h["x-dlq-reason"].decode()) == (name, reason)
        assert r.value == value, name  # the original bytes
        assert h["x-dlq-message-ru"].decode()  # a message for the citizen
        assert [(k, v) for k, v in r.headers if not k.startswith("x-dlq-")] == headers
    # hostile strings are data: stored as given, minus the invisible bidi override
    assert reg.data.appeal.text == "<script>alert(1)</script>'; DROP TABLE appeals;-- {\"$gt\": \"\"} текст"
    assert await mongo_db.intake_appeals.count_documents({}) == 1


async def test_a_channel_other_than_the_topics_and_gis_only_fields_off_the_gis_topic_are_refused(infra, prefix, mongo_db):
    """Trust boundary on Kafka: a body's channel must be its raw topic's (a hotline body on the site
    form's topic, a ГИС body on the chatbot's), and the ГИС deadline and ids only come on the ГИС topic."""
    topics = Topics(prefix)
    hotline_on_form = samples.raw_submission(channel=Channel.HOTLINE, source_id="mismatch-1")
    gis_guid = "6a3c7f1e-0000-4000-8000-000000000042"
    gis = samples.raw_submission(channel=Channel.GIS, source_id=gis_guid).model_copy(
        update={"channel_meta": {"gis_appeal_guid": gis_guid, "execution_end_date": "2026-12-23"}})
    forged_deadline = samples.raw_submission(source_id="form-deadline").model_copy(
        update={"channel_meta": {"execution_end_date": "2000-01-01"}})
    async with intake(infra, prefix):
        for raw, topic in [(hotline_on_form, topics.raw(Channel.SITE_FORM)), (gis, topics.raw(Channel.CHATBOT)),
                           (forged_deadline, topics.raw(Channel.SITE_FORM)), (gis, topics.raw(Channel.GIS))]:
            key, value, headers = to_kafka(samples.raw_envelope(raw))
            await produce(infra.bootstrap, topic, value, key, [(k, v.encode()) for k, v in headers.items()])
        async with TopicReader(infra.bootstrap, topics.rejected) as rej:
            await rej.wait_for(lambda r: len(r) >= 3)
            refused = await rej.settle(1.0)
        async with TopicReader(infra.bootstrap, topics.lifecycle) as lc:
            (reg,) = of_type(await lc.wait_for(lambda r: len(r) >= 1), AppealRegistered)
    reasons = sorted((r.key.decode(), headers_of(r)["x-dlq-reason"].decode()) for r in refused)
    assert reasons == [(f"gis:{gis_guid}", "channel_mismatch"), ("hotline:mismatch-1", "channel_mismatch"),
                       ("site_form:form-deadline", "gis_only_field")]
    assert all(headers_of(r)["x-dlq-message-ru"].decode() for r in refused)
    assert reg.data.appeal.channel is Channel.GIS and reg.data.appeal.source_refs["execution_end_date"] == "2026-12-23"
    assert [d["source_id"] for d in await mongo_db.intake_appeals.find({}).to_list()] == [gis_guid]


async def test_a_consumer_restart_does_not_register_twice(infra, prefix, mongo_db):
    raw = samples.raw_submission(source_id="restart-1")
    event_id = uuid.uuid4()
    async with intake(infra, prefix):
        await publish_raw(infra, prefix, raw, event_id=event_id)
        async with TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as lc:
            await lc.wait_for(lambda r: len(r) >= 1)
    await publish_raw(infra, prefix, raw, event_id=event_id)  # the same event arrives again while down
    async with intake(infra, prefix):
        async with TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as lc:
            await lc.wait_for(lambda r: len(r) >= 2)
            recs = await lc.settle(1.0)
    ids = {e.id for e in of_type(recs, AppealRegistered)}
    assert len(ids) == 1  # republished from the outbox, same event id
    assert await mongo_db.intake_appeals.count_documents({}) == 1
    assert await mongo_db.processed_events.count_documents({"consumer": "intake"}) == 1


async def test_a_resubmission_is_absorbed_when_the_same_and_refused_when_different(infra, prefix, mongo_db):
    raw = samples.raw_submission(source_id="again-1")
    async with intake(infra, prefix):
        await publish_raw(infra, prefix, raw)
        async with TopicReader(infra.bootstrap, Topics(prefix).lifecycle) as lc:
            await lc.wait_for(lambda r: len(of_type(r, AppealRegistered)) == 1)
            await publish_raw(infra, prefix, raw)  # the same submission under a new event id
            await publish_raw(infra, prefix, raw.model_copy(update={"text": "Другое обращение: не работает лифт."}))
            async with TopicReader(infra.bootstrap, Topics(prefix).rejected) as rej:
                (refused,) = await rej.wait_for(lambda r: len(r) >= 1)
                assert await rej.settle(1.0) == [refused]
            recs = await lc.settle(1.0)
        async with TopicReader(infra.bootstrap, Topics(prefix).dlq("intake")) as dlq:
            assert await dlq.settle(0.5) == []
    assert len(of_type(recs, AppealRegistered)) == 1  # the copy published nothing
    h = headers_of(refused)
    assert (h["x-dlq-reason"], refused.key) == (b"conflicting_duplicate", b"site_form:again-1")
    assert h["x-dlq-message-ru"].decode()
    doc = await mongo_db.intake_appeals.find_one({})
    assert await mongo_db.intake_appeals.count_documents({}) == 1 and "registered_records" not in doc
    assert len(doc["submission_digest"]) == 64


async def test_concurrent_registrations_through_the_database_get_unique_numbers_and_one_appeal_per_source(infra, prefix, mongo_db):
    """Two intakes at once on MongoDB transactions: copies of one submission (two event ids)
    register once, and every registration gets its own number (the counter conflicts, one retries)."""
    import asyncio

    from intake.classifier import Classifier
    from intake.messages import MESSAGES_RU
    from intake.repository import IntakeRepository
    from intake.service import IntakeService
    from intake.uow import MongoIntakeUoW
    from tests.support.engine import decoded, make_engine, rec
    from zhkh_runtime.mongo import MongoTracking

    repo = IntakeRepository(mongo_db)
    await repo.ensure_indexes()
    handlers = IntakeService(Classifier()).handlers()

    def engine():  # noqa: ANN202 - an intake of its own (its own retries), on the same database
        tracking = MongoTracking(mongo_db.client, mongo_db, lambda s: MongoIntakeUoW(repo, s))
        e, pub = make_engine("intake", handlers, tracking, retry_attempts=30, strict_types=True, reject_topic="rejected",
                             messages_ru=MESSAGES_RU)
        e.retry_sleep = asyncio.sleep  # real backoff: the other transaction holds its locks until it ends
        return e, pub

    topic = Topics().raw(Channel.SITE_FORM)
    copy = samples.raw_submission(source_id="copy")
    others = [samples.raw_submission(source_id=f"n-{i}", phone=f"+7912555000{i}", email=None) for i in range(4)]
    (ea, pa), (eb, pb) = engine(), engine()
    await asyncio.gather(
        ea.process([rec(samples.raw_envelope(r), topic) for r in [copy, *others[:2]]]),
        eb.process([rec(samples.raw_envelope(r), topic) for r in [copy, *others[2:]]]),
    )
    assert pa.sent == [] and pb.sent == []  # nothing refused or dead-lettered: the losers retried
    regs = [decoded(r).data for r in pa.records + pb.records if isinstance(decoded(r).data, AppealRegistered)]
    assert sorted(e.appeal.source_id for e in regs) == ["copy", "n-0", "n-1", "n-2", "n-3"]
    numbers = await mongo_db.intake_appeals.distinct("registration_number")
    assert sorted(numbers) == sorted(e.appeal.registration_number for e in regs) and len(numbers) == 5
    assert await mongo_db.intake_appeals.count_documents({}) == 5
