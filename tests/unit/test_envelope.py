from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from devtools import samples
from zhkh_contracts import REGISTRY, Envelope, EnvelopeError, RawAppealSubmitted, from_kafka, to_kafka
from zhkh_contracts.envelope import describe_validation_error


def test_binary_mode_round_trip_keeps_every_attribute():
    env = samples.raw_envelope(samples.raw_submission(source_id="s-1"))
    key, value, headers = to_kafka(env)
    assert key == b"site_form:s-1"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"
    assert headers["ce_partitionkey"] == headers["ce_subject"] == "site_form:s-1"
    back = from_kafka(value, [(k, v.encode()) for k, v in headers.items()], REGISTRY)
    assert back == env
    assert json.loads(value)["source_id"] == "s-1"  # value is the data only, not the envelope


def test_occurred_at_must_be_timezone_aware():
    with pytest.raises(ValidationError):
        Envelope[RawAppealSubmitted](
            type="x", schema_version="1.0", occurred_at=datetime(2026, 1, 1), source="/s",
            correlation_id=uuid.uuid4(), appeal_id="a", data=samples.raw_submission(),
        )


def test_time_offsets_survive_the_wire():
    msk = timezone(timedelta(hours=3))
    env = samples.raw_envelope(samples.raw_submission())
    env = env.model_copy(update={"occurred_at": datetime(2025, 12, 31, 23, 59, tzinfo=msk)})
    _, value, headers = to_kafka(env)
    back = from_kafka(value, [(k, v.encode()) for k, v in headers.items()], REGISTRY)
    assert back.occurred_at == env.occurred_at and back.occurred_at.utcoffset() == timedelta(hours=3)


def _headers(**over: str | None) -> list[tuple[str, bytes]]:
    _, _, h = to_kafka(samples.raw_envelope(samples.raw_submission()))
    h.update({k: v for k, v in over.items() if v is not None})
    return [(k, v.encode()) for k, v in h.items() if over.get(k, "") is not None]


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"{}", _headers(ce_type=None), "missing_header"),
        (b"{}", _headers(ce_type="ru.other.v9"), "unknown_type"),
        (b"\xff", _headers(), "bad_encoding"),
        (b"[1,", _headers(), "bad_json"),
        (b"{}", _headers(), "missing_field"),
        (b"{\"channel\": \"telepathy\"}", _headers(), "missing_field"),
        (None, _headers(), "bad_json"),
    ],
)
def test_decode_errors_have_stable_reasons(value, headers, reason):
    with pytest.raises(EnvelopeError) as err:
        from_kafka(value, headers, REGISTRY)
    assert err.value.reason == reason


def test_validation_errors_never_echo_input_values():
    with pytest.raises(ValidationError) as err:
        RawAppealSubmitted.model_validate({"channel": "telepathy", "source_id": "Иванов +79991234567"})
    text = describe_validation_error(err.value)
    assert "channel: enum" in text
    assert "telepathy" not in text and "Иванов" not in text and "7999" not in text
