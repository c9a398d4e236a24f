"""The engine's guarantees under batching, in memory: one unit of work per batch, per-record redo on
failure, a dead letter per bad record, order per appeal, exactly-once effects on redelivery,
derived ids, conflicting duplicates refused, dead letters byte for byte and always fitting."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from typing import Any

import pytest

from tests.support.engine import Rec, decoded, envelope, events, make_engine, rec
from zhkh_contracts import (
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    CitizenWithdrew,
    PartyAccepted,
    PartyAnswered,
    Topics,
)
from zhkh_runtime.engine import Emit, Handlers, MemoryTracking, partition_key
from zhkh_runtime.errors import PermanentError, TransientError


class Counter:
    """A toy unit of work: per-appeal lists of what happened, rolled back with the unit."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}
        self.units = 0
        self.fail_on: set[str] = set()
        self.transient: dict[str, int] = {}

    def snapshot(self) -> Any:
        return copy.deepcopy(self.seen)

    def restore(self, snap: Any) -> None:
        self.seen = snap


class CountingTracking(MemoryTracking):
    def unit(self):  # noqa: ANN201
        self.uow.units += 1
        return super().unit()


def handlers() -> Handlers:
    h = Handlers()

    @h.on(PartyAccepted, PartyAnswered)
    async def act(e: Any, uow: Counter) -> list[Any]:
        key = str(e.appeal_id)
        if getattr(e, "text", None) in uow.fail_on:
            raise PermanentError("refused_here", "field text: bad")
        if getattr(e, "text", None) in uow.transient and uow.transient[e.text] > 0:
            uow.transient[e.text] -= 1
            raise TransientError("blip")
        uow.seen.setdefault(key, []).append(type(e).__name__)
        n = len(uow.seen[key])
        return [AppealStatusChanged(appeal_id=e.appeal_id, registration_number="ZH-2026-0000001", from_status=AppealStatus.ASSIGNED,
                                    to_status=AppealStatus.IN_PROGRESS, action="accept", party_id="p", version=n,
                                    changed_at=uow.message.occurred_at, cause_event_id=uow.message.id)]

    return h


def engine(**kw: Any):  # noqa: ANN201
    uow = Counter()
    tracking = CountingTracking(uow)
    eng, pub = make_engine("svc", handlers(), tracking, **kw)
    return eng, pub, uow, tracking


A, B = uuid.uuid4(), uuid.uuid4()


def accept(appeal: uuid.UUID, **kw: Any) -> Rec:
    return rec(envelope(PartyAccepted(appeal_id=appeal, actor="p"), **kw))


def answer(appeal: uuid.UUID, text: str = "ok", **kw: Any) -> Rec:
    return rec(envelope(PartyAnswered(appeal_id=appeal, actor="p", text=text), **kw))


async def test_a_batch_is_one_unit_of_work_and_publishes_in_order():
    eng, pub, uow, tracking = engine()
    await eng.process([accept(A), accept(B), answer(A), answer(B)])
    assert uow.units == 1
    assert uow.seen == {str(A): ["PartyAccepted", "PartyAnswered"], str(B): ["PartyAccepted", "PartyAnswered"]}
    assert [(str(e.appeal_id), e.version) for e in events(pub)] == [(str(A), 1), (str(B), 1), (str(A), 2), (str(B), 2)]
    assert len(tracking.markers) == 4 and not pub.sent


async def test_a_bad_record_in_a_batch_gets_its_own_refusal_and_the_rest_apply_once_in_order():
    eng, pub, uow, tracking = engine()
    uow.fail_on.add("bad")
    await eng.process([accept(A), answer(B, "bad"), answer(A), accept(B)])
    # the batch failed and was redone record by record: nothing of the failed attempt remains
    assert uow.seen == {str(A): ["PartyAccepted", "PartyAnswered"], str(B): ["PartyAccepted"]}
    assert [(str(e.appeal_id), e.version) for e in events(pub)] == [(str(A), 1), (str(A), 2), (str(B), 1)]
    (topic, _, _, headers) = pub.sent[0]
    h = dict(headers)
    assert topic == "zhkh.svc.dlq" and h["x-dlq-reason"] == b"refused_here" and h["x-dlq-original-offset"]
    assert len(tracking.markers) == 3  # the refused record has no marker


async def test_transient_failures_retry_in_place():
    eng, pub, uow, _ = engine()
    uow.transient["flaky"] = 2
    await eng.process([answer(A, "flaky")])
    assert uow.seen == {str(A): ["PartyAnswered"]} and not pub.sent


async def test_retries_are_bounded_then_dead_lettered():
    eng, pub, uow, _ = engine(retry_attempts=3)
    uow.transient["flaky"] = 99
    await eng.process([answer(A, "flaky")])
    h = dict(pub.sent[0][3])
    assert h["x-dlq-reason"] == b"retries_exhausted" and h["x-dlq-attempts"] == b"3"


async def test_redelivery_changes_nothing_and_republishes_the_same_events():
    eng, pub, uow, _ = engine()
    batch = [accept(A), answer(A)]
    await eng.process(batch)
    first = [r.value for r in pub.records]
    ids = [decoded(r).id for r in pub.records]
    pub.records.clear()
    await eng.process(batch)  # a redelivered batch (e.g. after a crash before the commit)
    assert uow.seen == {str(A): ["PartyAccepted", "PartyAnswered"]}
    assert [r.value for r in pub.records] == first and [decoded(r).id for r in pub.records] == ids


async def test_ids_are_derived_from_the_cause_and_correlation_is_kept():
    eng1, pub1, *_ = engine()
    eng2, pub2, *_ = engine()
    cid = uuid.uuid4()
    r = accept(A, correlation_id=cid)
    await eng1.process([r])
    await eng2.process([r])  # another instance, another store: the same ids
    e1, e2 = decoded(pub1.records[0]), decoded(pub2.records[0])
    assert e1.id == e2.id and e1.correlation_id == cid and e1.source == "/zhkh-appeals/svc"
    assert e1.appeal_id == str(A) and pub1.records[0].topic == Topics().lifecycle


async def test_the_same_id_with_another_body_is_refused_as_conflicting():
    eng, pub, uow, _ = engine()
    eid = uuid.uuid4()
    await eng.process([answer(A, "first", event_id=eid)])
    await eng.process([answer(A, "second", event_id=eid)])
    assert uow.seen == {str(A): ["PartyAnswered"]}
    assert dict(pub.sent[0][3])["x-dlq-reason"] == b"conflicting_duplicate"


async def test_ignored_types_cost_no_unit_of_work():
    eng, pub, uow, tracking = engine()
    await eng.process([rec(envelope(CitizenWithdrew(appeal_id=A, actor="citizen")))])
    assert uow.units == 0 and not tracking.markers and not pub.records and not pub.sent


async def test_strict_consumers_refuse_unknown_types_to_the_reject_topic_with_a_russian_message():
    eng, pub, uow, _ = engine(strict_types=True, reject_topic="rej", messages_ru={"unknown_type": "Неизвестный тип"})
    await eng.process([rec(envelope(CitizenWithdrew(appeal_id=A, actor="citizen")))])
    (topic, _, _, headers) = pub.sent[0]
    h = dict(headers)
    assert topic == "rej" and h["x-dlq-reason"] == b"unknown_type"
    assert h["x-dlq-message-ru"].decode() == "Неизвестный тип"


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"{", None, "bad_json"),
        (b"\xff\xfe", None, "bad_encoding"),
        (None, None, "bad_json"),
        (b"{}", [("ce_id", None)], "missing_header"),
    ],
)
async def test_undecodable_records_are_dead_lettered_byte_for_byte(value, headers, reason):
    eng, pub, *_ = engine()
    good = answer(A)
    r = Rec(value, headers if headers is not None else good.headers, key=None, topic=good.topic)
    await eng.process([r])
    (topic, key, sent_value, sent_headers) = pub.sent[0]
    assert key is None and sent_value == value  # a null value stays null
    assert sent_headers[: len(r.headers)] == list(r.headers)  # null header values stay null
    assert dict(sent_headers)["x-dlq-reason"] == reason.encode()


async def test_a_dead_letter_always_fits_under_the_limit():
    eng, pub, *_ = engine()
    eng.settings.max_dead_letter_bytes, eng.settings.max_record_bytes = 10_000, 20_000
    big = b"x" * 50_000
    await eng.process([Rec(big, answer(A).headers, topic=Topics().actions)])
    (_, _, value, headers) = pub.sent[0]
    h = dict(headers)
    assert h["x-dlq-reason"] == b"too_large" and h["x-dlq-truncated"] == b"true"
    assert h["x-dlq-original-size"] == b"50000" and h["x-dlq-original-sha256"] == hashlib.sha256(big).hexdigest().encode()
    assert len(value) + sum(len(k) + len(v or b"") for k, v in headers) <= 10_000 and big.startswith(value)


def test_partition_keys():
    assert partition_key(PartyAccepted(appeal_id=A, actor="p")) == str(A)
    assert partition_key(PartyAccepted(incident_id=A, actor="p")) == f"incident:{A}"


async def test_emit_overrides_key_topic_and_id():
    h = Handlers()
    eid = uuid.uuid4()

    @h.on(PartyAccepted)
    async def act(e: Any, uow: Any) -> list[Any]:
        return [Emit(CitizenWithdrew(appeal_id=e.appeal_id, actor="x"), key="k1", topic="elsewhere", event_id=eid)]

    eng, pub = make_engine("svc", h, MemoryTracking(Counter()))
    await eng.process([accept(A)])
    r = pub.records[0]
    assert (r.topic, r.key, decoded(r).id) == ("elsewhere", b"k1", eid)


async def test_a_strict_topic_refuses_types_that_do_not_belong_there_and_labels_stay_fixed():
    from zhkh_runtime import metrics

    actions = Topics().actions
    eng, pub, uow, _ = engine(strict_topics=frozenset({actions}))
    odd = rec(envelope(PartyAccepted(appeal_id=A, actor="p")), topic=actions)
    odd.headers = [(k, b"ru.attacker.Ivanov.v1" if k == "ce_type" else v) for k, v in odd.headers]
    lifecycle_type_on_actions = rec(envelope(AppealStatusChanged(
        appeal_id=A, registration_number="ZH-2026-0000001", from_status=AppealStatus.ASSIGNED,
        to_status=AppealStatus.IN_PROGRESS, action="accept", party_id="p", version=1, changed_at=envelope(
            PartyAccepted(appeal_id=A, actor="p")).occurred_at)), topic=actions)
    made_up = rec(envelope(PartyAccepted(appeal_id=B, actor="p")), topic="zhkh.made.up.Иванов")
    fine = rec(envelope(PartyAccepted(appeal_id=B, actor="p")))
    await eng.process([odd, lifecycle_type_on_actions, made_up, fine])
    reasons = [(t, dict(h)["x-dlq-reason"]) for t, _, _, h in pub.sent]
    # a type nobody knows; a known type the catalog does not list for the topic; a topic outside the catalog
    assert reasons == [("zhkh.svc.dlq", b"unknown_type"), ("zhkh.svc.dlq", b"type_not_allowed"),
                       ("zhkh.svc.dlq", b"type_not_allowed")]
    assert uow.seen == {str(B): ["PartyAccepted"]}
    text = "".join(f"{m.name}{m.labels}" for fam in metrics.CONSUMED.collect() for m in fam.samples)
    text += "".join(f"{m.name}{m.labels}" for fam in metrics.DEAD_LETTERED.collect() for m in fam.samples)
    assert "Ivanov" not in text and "Иванов" not in text and "attacker" not in text


def _dead_letters(pub: Any) -> list[tuple[str, bytes]]:
    return [(t, dict(h)["x-dlq-reason"]) for t, _, _, h in pub.sent]


async def test_a_type_not_listed_for_its_topic_is_dead_lettered_on_every_topic_strict_or_not():
    from zhkh_contracts import AppealRegistered
    from zhkh_runtime import metrics

    from tests.support.engine import owned

    eng, pub, uow, _ = engine()  # no strict topics: the catalog check is on anyway
    forged = rec(owned(PartyAccepted(appeal_id=A, actor="p"), appeal_id=str(A)))
    forged.headers = [(k, AppealRegistered.EVENT_TYPE.encode() if k == "ce_type" else v) for k, v in forged.headers]
    before = metrics.DEAD_LETTERED.labels("svc", Topics().actions, "type_not_allowed")._value.get()
    await eng.process([forged, accept(B)])
    assert _dead_letters(pub) == [("zhkh.svc.dlq", b"type_not_allowed")]
    assert uow.seen == {str(B): ["PartyAccepted"]}
    assert metrics.DEAD_LETTERED.labels("svc", Topics().actions, "type_not_allowed")._value.get() == before + 1
    (_, _, value, headers) = pub.sent[0]
    assert value == forged.value and headers[: len(forged.headers)] == list(forged.headers)  # the original bytes


@pytest.mark.parametrize("source", ["/zhkh-appeals/notifier", "/zhkh-appeals/router/", "/parties/uk-1", "/test"])
async def test_an_event_from_a_source_that_does_not_own_its_type_is_dead_lettered_forged_source(source: str):
    from zhkh_runtime import metrics

    eng, pub, uow, _ = engine()
    before = metrics.DEAD_LETTERED.labels("svc", Topics().actions, "forged_source")._value.get()
    await eng.process([accept(A, source=source), accept(B)])  # PartyAccepted is the router's (its HTTP API)
    assert _dead_letters(pub) == [("zhkh.svc.dlq", b"forged_source")]
    assert uow.seen == {str(B): ["PartyAccepted"]}
    assert metrics.DEAD_LETTERED.labels("svc", Topics().actions, "forged_source")._value.get() == before + 1


async def test_a_type_with_two_owners_is_accepted_from_either_and_the_gis_raw_topic_only_from_gis_sync():
    from zhkh_contracts import Channel, RawAppealSubmitted

    from devtools import samples

    h = Handlers()
    seen: list[str] = []

    @h.on(CitizenWithdrew, RawAppealSubmitted)
    async def note(e: Any, uow: Any) -> list[Any]:
        seen.append(uow.message.source)
        return []

    eng, pub = make_engine("svc", h, MemoryTracking(Counter()), inbound=True)
    w = CitizenWithdrew(appeal_id=A, actor="citizen:x")
    await eng.process([rec(envelope(w, source="/zhkh-appeals/router")), rec(envelope(w, source="/zhkh-appeals/gis_sync",
                                                                                     event_id=uuid.uuid4()))])
    gis = samples.raw_submission(Channel.GIS)
    site = samples.raw_submission(Channel.SITE_FORM)
    await eng.process([rec(envelope(gis, source="/channels/gis"))])
    await eng.process([rec(envelope(gis, source="/zhkh-appeals/gis_sync", event_id=uuid.uuid4()))])
    await eng.process([rec(envelope(site, source="/channels/site_form"))])  # channel adapters: anyone
    made_up_raw = rec(envelope(site, source="/anyone"), topic="zhkh.intake.raw.fax")
    await eng.process([made_up_raw])  # read by pattern: RawAppealSubmitted from anyone, like an adapter's topic
    assert seen == ["/zhkh-appeals/router", "/zhkh-appeals/gis_sync", "/zhkh-appeals/gis_sync", "/channels/site_form",
                    "/anyone"]
    assert _dead_letters(pub) == [("zhkh.svc.dlq", b"forged_source")]


async def test_a_record_key_that_differs_from_the_partition_key_is_refused():
    eng, pub, uow, _ = engine()
    r = accept(A)
    r.key = str(B).encode()
    await eng.process([r])
    assert dict(pub.sent[0][3])["x-dlq-reason"] == b"key_mismatch" and uow.seen == {}


def test_a_copy_without_its_secret_fields_has_the_same_digest_and_another_body_does_not():
    """The producer's outbox keeps an AppealRegistered without the access code; its republished copy
    is the same event for every consumer (engine.digest_of), a changed text is not."""
    from zhkh_runtime.engine import digest_of

    body = {"appeal": {"text": "Нет воды", "registration_number": "N"}, "access_code": "ABCDE-12345",
            "access_code_hash": "scrypt$1024$8$1$x$y"}
    t = AppealRegistered.EVENT_TYPE
    full = json.dumps(body, ensure_ascii=False).encode()
    kept = json.dumps({k: v for k, v in body.items() if k != "access_code"}, separators=(",", ":")).encode()
    changed = json.dumps({**body, "appeal": {**body["appeal"], "text": "Нет света"}}).encode()
    assert digest_of(full, t) == digest_of(kept, t) != digest_of(changed, t)
    assert digest_of(full) != digest_of(kept)  # types without secret fields: the bytes as they are


def test_the_outbox_keeps_a_record_without_its_secret_fields_and_others_as_they_are():
    from zhkh_runtime.engine import Engine
    from zhkh_runtime.records import OutboundRecord

    reg = OutboundRecord("t", b"k", json.dumps({"appeal": {"text": "x"}, "access_code": "ABCDE-12345",
                                                "access_code_hash": "h"}).encode(), {"ce_type": AppealRegistered.EVENT_TYPE})
    other = OutboundRecord("t", b"k", b'{"access_code": "not a secret here"}', {"ce_type": PartyAccepted.EVENT_TYPE})
    kept_reg, kept_other = Engine._stored([reg, other])
    assert json.loads(kept_reg.value) == {"appeal": {"text": "x"}, "access_code_hash": "h"}
    assert (kept_reg.topic, kept_reg.key, kept_reg.headers) == (reg.topic, reg.key, reg.headers)
    assert kept_other is other
