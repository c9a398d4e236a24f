from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from devtools import samples
from intake.service import build_appeal, house_key, normalise_email, normalise_phone, registration_number
from zhkh_contracts import Address, Category, Consent
from zhkh_runtime.errors import PermanentError


@pytest.mark.parametrize(
    ("given", "e164"),
    [
        ("8 (912) 345-67-89", "+79123456789"),
        ("+7 912 345 67 89", "+79123456789"),
        ("9123456789", "+79123456789"),
        ("+375 29 123-45-67", "+375291234567"),
        ("  ", None),
        (None, None),
    ],
)
def test_phone_to_e164(given, e164):
    assert normalise_phone(given) == e164


@pytest.mark.parametrize("bad", ["позвоните", "12", "+7 (912) 345-67-89-00-11-22"])
def test_impossible_phone_is_a_permanent_error(bad):
    with pytest.raises(PermanentError) as err:
        normalise_phone(bad)
    assert err.value.reason == "invalid_phone"
    assert bad not in str(err.value)


def test_email_lowercased_and_checked():
    assert normalise_email("  Ivanova@Example.RU ") == "ivanova@example.ru"
    with pytest.raises(PermanentError):
        normalise_email("ivanova.example.ru")


def test_house_key_prefers_fias_guid_then_normalised_text():
    guid = uuid.uuid4()
    assert house_key(Address(fias_house_guid=guid, text="whatever")) == f"fias:{guid}"
    assert house_key(Address(text="  г. Пермь,  ул. Ленина, д.10 ")) == "addr:г пермь ул ленина д 10"
    assert house_key(Address(text="ул. Солнечная, д. 5")) == house_key(Address(text="УЛ. СОЛНЕЧНАЯ д.  5"))
    assert house_key(Address(text="ул. Ёлочная 3")) == house_key(Address(text="ул. Елочная 3"))
    with pytest.raises(PermanentError):
        house_key(Address())


def test_registration_number_format():
    assert registration_number(2026, 42) == "ZH-2026-0000042"


def test_build_appeal_uses_channel_category_or_default():
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    with_cat = build_appeal(samples.raw_submission(category=Category.HEATING), uuid.uuid4(), "ZH-2026-0000001", now, "RU")
    assert (with_cat.category, with_cat.category_source) == (Category.HEATING, "channel")
    without = build_appeal(samples.raw_submission(category=None), uuid.uuid4(), "ZH-2026-0000002", now, "RU")
    assert (without.category, without.category_source) == (Category.OTHER, "default")


def test_no_consent_is_refused():
    raw = samples.raw_submission().model_copy(update={"consent": Consent(personal_data=False)})
    with pytest.raises(PermanentError) as err:
        build_appeal(raw, uuid.uuid4(), "ZH-2026-0000003", datetime.now(UTC), "RU")
    assert err.value.reason == "no_consent"
