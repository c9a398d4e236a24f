"""intake's handler through the runtime's engine on an in-memory unit of work (no servers):
registration, duplicates, mass incidents, refusals, resubmissions and redelivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from devtools import samples
from intake.classifier import Classifier
from intake.messages import MESSAGES_RU
from intake.service import IntakeService, submission_digest
from intake.uow import MemoryIncidents, MemoryIntakeUoW
from tests.support.clock import Clock
from tests.support.engine import Rec, decoded, make_engine, rec
from zhkh_contracts import (
    Address,
    AppealDuplicateLinked,
    AppealJoinedIncident,
    AppealRegistered,
    Category,
    Channel,
    Envelope,
    EventData,
    MassIncidentDetected,
    RawAppealSubmitted,
    Topics,
)
from zhkh_runtime import access_codes
from zhkh_runtime.engine import Engine, MemoryPublisher, MemoryTracking
from zhkh_runtime.errors import TransientError

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
TOPICS = Topics()
RAW = TOPICS.raw(Channel.SITE_FORM)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


@dataclass
class Intake:
    engine: object
    pub: MemoryPublisher
    uow: MemoryIntakeUoW
    tracking: MemoryTracking
    clock: Clock

    async def process(self, *items: Envelope | Rec) -> list[EventData]:
        """One partition batch; returns the events published for it."""
        before = len(self.pub.records)
        await self.engine.process([i if isinstance(i, Rec) else rec(i, RAW) for i in items])
        return [decoded(r).data for r in self.pub.records[before:]]

    def refusals(self) -> list[tuple[str, dict[str, bytes], bytes | None]]:
        return [(topic, dict(h), value) for topic, _, value, h in self.pub.sent]

    def numbers(self) -> list[str]:
        return sorted(s.appeal.registration_number for s in self.uow.appeals.by_id.values())


@pytest.fixture
def intake(classifier: Classifier) -> Intake:
    clock = Clock(T0)
    uow = MemoryIntakeUoW()
    tracking = MemoryTracking(uow)
    service = IntakeService(classifier, clock=clock)
    engine, pub = make_engine(
        "intake", service.handlers(), tracking, strict_types=True, reject_topic=TOPICS.rejected, messages_ru=MESSAGES_RU
    )
    return Intake(engine, pub, uow, tracking, clock)


def env(raw: RawAppealSubmitted, **kw: object) -> Envelope[RawAppealSubmitted]:
    return samples.raw_envelope(raw, **kw)


async def test_a_submission_is_registered_with_a_number_normalised_contacts_and_the_causes_correlation(intake):
    raw = samples.raw_submission(source_id="web-1")
    cause = env(raw)
    (reg,) = await intake.process(cause)
    a = reg.appeal
    assert isinstance(reg, AppealRegistered)
    assert (a.registration_number, a.registered_at, a.source_id) == ("ZH-2026-0000001", T0, "web-1")
    assert (a.applicant.phone, a.applicant.email) == ("+79123456789", "ivanova.demo@example.ru")
    assert (a.house_key, a.category, a.category_source) == (f"fias:{samples.DEMO_HOUSE_GUID}", Category.HOT_WATER, "channel")
    (out,) = intake.pub.records
    e = decoded(out)
    assert (out.topic, e.appeal_id, e.correlation_id, e.source) == (
        TOPICS.lifecycle, str(a.appeal_id), cause.correlation_id, "/zhkh-appeals/intake"
    )
    stored = intake.uow.appeals.by_id[a.appeal_id]
    assert (stored.appeal, stored.digest) == (a, submission_digest(raw))
    assert intake.pub.sent == []


async def test_numbers_come_from_a_counter_per_year(intake):
    await intake.process(env(samples.raw_submission(source_id="a")))
    await intake.process(env(samples.raw_submission(source_id="b")))
    # 31 December 21:05 UTC is already 1 January 00:05 in Moscow: the new year's numbers begin
    intake.clock.now = datetime(2026, 12, 31, 21, 5, tzinfo=UTC)
    (reg,) = await intake.process(env(samples.raw_submission(source_id="c")))
    assert intake.numbers() == ["ZH-2026-0000001", "ZH-2026-0000002", "ZH-2027-0000001"]
    assert reg.appeal.registration_number == "ZH-2027-0000001"


async def test_the_same_applicant_again_is_registered_and_linked_as_a_likely_duplicate(intake):
    (first,) = await intake.process(env(samples.raw_submission(source_id="form-1", phone="+7 912 000-11-22", email=None)))
    intake.clock.now = T0 + timedelta(hours=1)
    reg, dup = await intake.process(env(samples.raw_submission(source_id="form-2", phone="8 912 000 11 22", email=None)))
    assert reg.appeal.duplicate_of == first.appeal.appeal_id
    assert isinstance(dup, AppealDuplicateLinked)
    assert (dup.appeal_id, dup.duplicate_of, dup.duplicate_of_number) == (
        reg.appeal.appeal_id, first.appeal.appeal_id, first.appeal.registration_number
    )
    intake.clock.now = T0 + timedelta(hours=74)  # beyond the 72 h duplicate window of the second
    (late,) = await intake.process(env(samples.raw_submission(source_id="form-3", phone="89120001122", email=None)))
    assert late.appeal.duplicate_of is None


async def test_three_applicants_open_a_mass_incident_and_a_fourth_joins_it(intake):
    house = Address(text="г. Пермь, ул. Мира, д. 7")
    outs = []
    for i in range(4):
        intake.clock.now = T0 + timedelta(minutes=i)
        raw = samples.raw_submission(source_id=f"call-{i}", phone=f"+7912000000{i}", email=None, category=Category.COLD_WATER)
        outs.append(await intake.process(env(raw.model_copy(update={"address": house}))))
    assert [len(o) for o in outs[:2]] == [1, 1]  # two applicants: no incident yet
    regs = [o[0].appeal for o in outs]
    third = outs[2]
    incident = third[1]
    assert isinstance(incident, MassIncidentDetected)
    assert (incident.house_key, incident.category, incident.threshold) == ("addr:г пермь ул мира д 7", Category.COLD_WATER, 3)
    assert list(incident.appeal_ids) == [a.appeal_id for a in regs[:3]]
    assert [(type(e), e.appeal_id) for e in third[2:]] == [(AppealJoinedIncident, a.appeal_id) for a in regs[:3]]
    keys = [decoded(r).appeal_id for r in intake.pub.records if isinstance(decoded(r).data, MassIncidentDetected)]
    assert keys == [f"incident:{incident.incident_id}"]
    assert [type(e) for e in outs[3]] == [AppealRegistered, AppealJoinedIncident]
    assert outs[3][1].incident_id == regs[3].incident_id == regs[2].incident_id == incident.incident_id
    stored = {s.appeal.source_id: s.appeal.incident_id for s in intake.uow.appeals.by_id.values()}
    assert stored == {f"call-{i}": incident.incident_id for i in range(4)}  # the earlier two were marked too


def _record(raw: RawAppealSubmitted, **changes: object) -> Rec:
    """A raw record whose data or key or headers are changed as a publisher might get them wrong."""
    e = env(raw)
    key = changes.pop("key", None)
    if key is not None:
        e = Envelope.new(raw, source="/channels/site_form", appeal_id=key)
    r = rec(e, RAW)
    if "value" in changes:
        r.value = changes.pop("value")
    if "ce_type" in changes:
        r.headers = [(k, changes["ce_type"] if k == "ce_type" else v) for k, v in r.headers]
    return r


BAD = [
    ("invalid_phone", lambda r: _record(r.model_copy(update={"applicant": r.applicant.model_copy(update={"phone": "звоните мне"})}))),
    ("invalid_email", lambda r: _record(r.model_copy(update={"applicant": r.applicant.model_copy(update={"email": "not-an-email"})}))),
    ("empty_text", lambda r: _record(r.model_copy(update={"text": "\u200b\u202e\u0000"}))),
    ("missing_address", lambda r: _record(r.model_copy(update={"address": Address()}))),
    ("key_mismatch", lambda r: _record(r, key="site_form:someone-else")),
    ("type_not_allowed", lambda r: _record(r, ce_type=b"ru.zhkh-appeals.appeal.assigned.v1")),  # not a raw topic's type
    ("unknown_type", lambda r: _record(r, ce_type=b"ru.somebody.else.v1")),
    # the gis raw topic is gis_sync's: a submission there from anyone else (a forged ГИС appeal) is refused
    ("forged_source", lambda r: _gis(r, "/channels/gis")),
    ("forged_source", lambda r: _gis(r, "/zhkh-appeals/intake/http")),
    ("bad_json", lambda r: _record(r, value=b"{not json")),
    ("missing_field", lambda r: _record(r, value=b'{"channel": "site_form"}')),
    # every input: limits that Unicode NFC pushes a field past, dates that confuse deadlines,
    # numbers MongoDB cannot store, a record key or topic that disagrees with the event
    ("too_long", lambda r: _record(r.model_copy(update={"text": "\ufb2c" * 7000}))),  # NFC: 3 code points each
    ("too_long", lambda r: _record(r.model_copy(update={"applicant": r.applicant.model_copy(update={"name": "\ufb2c" * 101})}))),
    ("invalid_data", lambda r: _record(r.model_copy(update={"received_at": datetime(9999, 12, 31, tzinfo=UTC)}))),
    ("invalid_data", lambda r: _record(r, value=r.model_dump_json().replace('"attachments":[]', '"attachments":[{"uri":"s3://a","size_bytes":1e30}]').encode())),
    ("invalid_data", lambda r: _record(r, value=r.model_dump_json().replace('"attachments":[]', '"attachments":[{"uri":"s3://a","size_bytes":99999999999999999999}]').encode())),
    ("invalid_data", lambda r: _record(r, value=r.model_dump_json().replace('"applicant":{', '"applicant":{"$gt":"",').encode())),
    ("key_mismatch", lambda r: _with(_record(r), key=b"site_form:other")),
    ("channel_mismatch", lambda r: _with(_record(r), topic=TOPICS.raw(Channel.HOTLINE))),
    ("unknown_channel", lambda r: _with(_record(r), topic="zhkh.intake.raw.fax")),
    # trust boundary: the ГИС deadline and ids come only from the ГИС channel's topic
    ("gis_only_field", lambda r: _record(r.model_copy(update={"channel_meta": {"execution_end_date": "2000-01-01"}}))),
    ("gis_only_field", lambda r: _record(r.model_copy(update={"channel_meta": {"bot_session": "b", "gis_appeal_guid": "x"}}))),
    ("channel_mismatch", lambda r: _with(_record(r.model_copy(update={"channel": Channel.GIS})), key=f"gis:{r.source_id}".encode())),
    ("bad_header", lambda r: _with(_record(r), headers_add=[("ce_id", b"6a3c7f1e-0000-4000-8000-000000000000")])),
]


def _gis(raw: RawAppealSubmitted, source: str) -> Rec:
    g = raw.model_copy(update={"channel": Channel.GIS})
    return rec(Envelope.new(g, source=source, appeal_id=f"gis:{g.source_id}"), TOPICS.raw(Channel.GIS))


def _with(r: Rec, key: bytes | None = None, topic: str | None = None, headers_add: list | None = None) -> Rec:
    if key is not None:
        r.key = key
    if topic is not None:
        r.topic = topic
    if headers_add:
        r.headers = [*r.headers, *headers_add]
    return r


@pytest.mark.parametrize(("reason", "make"), BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
async def test_bad_input_is_refused_with_its_reason_and_registers_nothing(intake, reason, make):
    bad = make(samples.raw_submission(source_id="bad"))
    assert await intake.process(bad) == []
    ((topic, headers, value),) = intake.refusals()
    assert (topic, headers["x-dlq-reason"].decode()) == (TOPICS.rejected, reason)
    assert headers["x-dlq-message-ru"].decode() == MESSAGES_RU[reason]
    assert value == bad.value  # the original bytes
    assert (intake.uow.appeals.by_id, intake.uow.counters.seq) == ({}, {})  # no number used up


async def test_a_resubmission_with_the_same_content_registers_nothing(intake):
    raw = samples.raw_submission(source_id="call-42")
    (first,) = await intake.process(env(raw))
    # the channel sends it again: a new event id, and a new received_at (e.g. gis_sync's pull time)
    again = raw.model_copy(update={"received_at": raw.received_at + timedelta(hours=1)})
    assert await intake.process(env(again)) == []
    assert intake.pub.sent == []  # not a refusal
    assert intake.numbers() == [first.appeal.registration_number]
    assert intake.uow.counters.seq == {2026: 1}


async def test_a_resubmission_with_other_content_is_refused_as_a_conflicting_duplicate(intake):
    raw = samples.raw_submission(source_id="call-43")
    await intake.process(env(raw))
    assert await intake.process(env(raw.model_copy(update={"text": "Совсем другое обращение про лифт."}))) == []
    ((topic, headers, _),) = intake.refusals()
    assert (topic, headers["x-dlq-reason"]) == (TOPICS.rejected, b"conflicting_duplicate")
    assert headers["x-dlq-message-ru"].decode() == MESSAGES_RU["conflicting_duplicate"]
    assert intake.numbers() == ["ZH-2026-0000001"]


async def test_a_redelivered_event_changes_nothing_and_republishes_the_same_records(intake):
    house = Address(text="г. Пермь, ул. Мира, д. 9")
    for i in range(2):
        await intake.process(env(samples.raw_submission(source_id=f"p-{i}", phone=f"+7912111000{i}", email=None).model_copy(update={"address": house})))
    third = env(samples.raw_submission(source_id="p-2", phone="+79121110002", email=None).model_copy(update={"address": house}))
    first = await intake.process(third)
    assert [type(e) for e in first] == [AppealRegistered, MassIncidentDetected, *[AppealJoinedIncident] * 3]
    published = intake.pub.records[-len(first):]
    state = (intake.numbers(), dict(intake.uow.counters.seq), dict(intake.uow.incidents.states), len(intake.tracking.markers))
    await intake.process(third)  # the same record again (a redelivery after a crash before the commit)
    # byte for byte what the outbox kept: same ids, keys, headers and values, the registration without
    # the citizen's access code (a secret field: the outbox keeps only its hash)
    assert intake.pub.records[-len(first):] == Engine._stored(published)
    assert b'"access_code"' in published[0].value and b'"access_code"' not in intake.pub.records[-len(first)].value
    assert published[1:] == intake.pub.records[-len(first) + 1:]  # the others exactly as first published
    after = (intake.numbers(), dict(intake.uow.counters.seq), dict(intake.uow.incidents.states), len(intake.tracking.markers))
    assert after == state and intake.pub.sent == []


async def test_the_same_event_twice_in_one_batch_registers_once(intake):
    e = env(samples.raw_submission(source_id="twice"))
    evs = await intake.process(e, e)
    assert [type(x) for x in evs] == [AppealRegistered, AppealRegistered]
    # the second is the first's marker republished: the same event, without the access code (a secret
    # field the outbox does not keep)
    assert evs[0].access_code and evs[1].access_code is None
    assert evs[0].model_copy(update={"access_code": None}) == evs[1]
    assert Engine._stored([intake.pub.records[0]]) == [intake.pub.records[1]]
    assert intake.numbers() == ["ZH-2026-0000001"] and intake.pub.sent == []


async def test_two_copies_of_a_submission_in_one_batch_register_once(intake):
    raw = samples.raw_submission(source_id="copies")
    evs = await intake.process(env(raw), env(raw))  # two event ids, one submission
    assert [type(x) for x in evs] == [AppealRegistered]
    assert intake.numbers() == ["ZH-2026-0000001"] and intake.pub.sent == []


async def test_a_refused_record_in_a_batch_costs_the_others_no_number(intake):
    good1, good2 = (env(samples.raw_submission(source_id=s)) for s in ("g1", "g2"))
    bad = BAD[0][1](samples.raw_submission(source_id="b"))  # a bad phone
    evs = await intake.process(good1, bad, good2)
    regs = [e for e in evs if isinstance(e, AppealRegistered)]  # the second is linked to the first (same phone)
    assert [e.appeal.source_id for e in regs] == ["g1", "g2"]
    assert [e.appeal.registration_number for e in regs] == ["ZH-2026-0000001", "ZH-2026-0000002"]
    assert [h["x-dlq-reason"] for _, h, _ in intake.refusals()] == [b"invalid_phone"]
    assert intake.numbers() == ["ZH-2026-0000001", "ZH-2026-0000002"]


async def test_a_transient_failure_is_retried_without_using_a_number_twice(intake, monkeypatch):
    failures = [TransientError("write conflict on the incident state")]
    real_save = MemoryIncidents.save

    async def flaky(self, state):  # noqa: ANN001, ANN202
        if failures:
            raise failures.pop()
        await real_save(self, state)

    monkeypatch.setattr(MemoryIncidents, "save", flaky)
    (reg,) = await intake.process(env(samples.raw_submission(source_id="retry")))
    assert failures == [] and intake.pub.sent == []
    assert reg.appeal.registration_number == "ZH-2026-0000001" and intake.uow.counters.seq == {2026: 1}


def test_the_submission_digest_ignores_only_the_received_time():
    raw = samples.raw_submission(source_id="d")
    later = raw.model_copy(update={"received_at": raw.received_at.astimezone(UTC) + timedelta(days=1)})
    assert submission_digest(later) == submission_digest(raw)
    assert submission_digest(raw.model_copy(update={"text": raw.text + "!"})) != submission_digest(raw)
    assert submission_digest(raw.model_copy(update={"channel_meta": {"operator_id": "7"}})) != submission_digest(raw)



async def test_registration_makes_an_access_code_published_once_and_stored_only_as_its_hash(intake):
    (reg,) = await intake.process(env(samples.raw_submission(source_id="code-1")))
    code = reg.access_code
    assert code is not None and len(code) == 11 and code[5] == "-"
    stored = intake.uow.appeals.by_id[reg.appeal.appeal_id]
    assert stored.access_code_hash and code not in stored.access_code_hash
    assert access_codes.verify(code, stored.access_code_hash)
    assert code not in repr(stored.appeal)  # only in the event, never in the appeal itself


async def test_the_channels_access_code_is_the_one_registered_and_does_not_change_the_digest(intake):
    raw = samples.raw_submission(source_id="code-2")
    shown = access_codes.generate()
    (reg,) = await intake.process(env(raw.model_copy(update={"access_code": shown})))
    assert reg.access_code == shown
    assert access_codes.verify(shown, intake.uow.appeals.by_id[reg.appeal.appeal_id].access_code_hash)
    # a resend with another code (the HTTP ingress makes one per copy) is the same submission
    assert submission_digest(raw) == submission_digest(raw.model_copy(update={"access_code": access_codes.generate()}))
    assert await intake.process(env(raw.model_copy(update={"access_code": access_codes.generate()}))) == []
    assert intake.pub.sent == [] and intake.numbers() == [reg.appeal.registration_number]


async def test_gis_only_channel_meta_is_accepted_on_the_gis_topic(intake):
    raw = samples.raw_submission(channel=Channel.GIS, source_id="6a3c7f1e-0000-4000-8000-000000000001").model_copy(
        update={"channel_meta": {"gis_appeal_guid": "6a3c7f1e-0000-4000-8000-000000000001",
                                 "execution_end_date": "2026-12-23"}})
    (reg,) = await intake.process(rec(env(raw), TOPICS.raw(Channel.GIS)))
    assert reg.appeal.source_refs["execution_end_date"] == "2026-12-23"
