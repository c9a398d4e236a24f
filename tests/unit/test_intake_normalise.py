from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from devtools import samples
from intake.classifier import Classifier
from intake.service import (
    build_appeal,
    clean_text,
    house_key,
    normalise_email,
    normalise_phone,
    prepare,
    registration_number,
)
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


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier()


def appeal_of(raw, classifier):  # noqa: ANN001, ANN201
    return build_appeal(prepare(raw), uuid.uuid4(), "ZH-2026-0000001", datetime(2026, 11, 23, 12, tzinfo=UTC), classifier)


def test_channel_category_wins_over_the_classifier(classifier):
    a = appeal_of(samples.raw_submission(category=Category.BILLING, text="Пахнет газом в подъезде"), classifier)
    assert (a.category, a.category_source, a.category_confidence) == (Category.BILLING, "channel", 1.0)
    assert a.emergency and a.emergency_rule == "gas_smell"  # emergency always comes from the text too


def test_classifier_fills_category_and_unknown_text_defaults_to_other(classifier):
    a = appeal_of(samples.raw_submission(category=None, text="Пятый день нет горячей воды"), classifier)
    assert (a.category, a.category_source) == (Category.HOT_WATER, "classifier") and 0 < a.category_confidence <= 1
    b = appeal_of(samples.raw_submission(category=None, text="Здравствуйте, спасибо за вашу работу"), classifier)
    assert (b.category, b.category_source, b.category_confidence) == (Category.OTHER, "default", 0.0)


def test_channel_emergency_mark_wins(classifier):
    raw = samples.raw_submission(text="Просьба приехать").model_copy(update={"emergency": True})
    a = appeal_of(raw, classifier)
    assert a.emergency and a.emergency_rule == "channel"


def test_clarifying_answers_count_for_classification(classifier):
    from zhkh_contracts import Clarification

    raw = samples.raw_submission(category=None, text="Проблема в квартире").model_copy(
        update={"clarifications": (Clarification(question="Что случилось?", answer="искрит розетка"),)}
    )
    assert appeal_of(raw, classifier).emergency_rule == "sparking_wiring"


def test_channel_meta_becomes_source_refs(classifier):
    raw = samples.raw_submission().model_copy(update={"channel_meta": {"operator_id": "op-7"}})
    assert appeal_of(raw, classifier).source_refs == {"operator_id": "op-7"}


def test_an_appeal_without_consent_is_registered_all_the_same():
    """152-ФЗ ст. 6 ч. 1: a body that must consider appeals processes the data to fulfil that duty."""
    raw = samples.raw_submission().model_copy(update={"consent": Consent(personal_data=False)})
    prepare(raw)  # no PermanentError


@pytest.mark.parametrize(
    ("given", "clean"),
    [
        ("Нет\x00 воды\u202e", "Нет воды"),
        ("a\r\nb\rc", "a\nb\nc"),
        ("x\n\n\n\n\ny", "x\n\ny"),
        ("\ufeff\u200b  текст \t", "текст"),
        ("е\u0308лка", "ёлка"),  # NFC
        ("\u200b\u2066 \x07", None),
    ],
)
def test_clean_text_removes_invisible_and_control_characters(given, clean):
    assert clean_text(given) == clean


def test_text_that_is_only_invisible_characters_is_refused():
    raw = samples.raw_submission(text="\u200b\u200b\u2067")
    with pytest.raises(PermanentError) as err:
        prepare(raw)
    assert err.value.reason == "empty_text"


def test_hostile_strings_are_kept_as_plain_text():
    hostile = "<script>alert(1)</script> '; DROP TABLE appeals; -- {\"$gt\": \"\"}"
    p = prepare(samples.raw_submission(text=hostile))
    assert p.text == hostile  # stored and sent as data, never interpreted
