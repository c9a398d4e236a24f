"""Paper answer letters (notifier/letters.py): the PDF as a reader extracts it (pypdf), and when a
letter is made, through the engine on the in-memory unit of work."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pypdf import PdfReader

from notifier.letters import (
    FONTS,
    POST_DELIVERY_STATE,
    MemoryLetters,
    Organisation,
    ensure_pdf,
    letter_id,
    printable,
    render_letter,
    render_round,
)
from notifier.uow import MemoryNotifierStore
from tests.support.engine import envelope
from tests.unit.test_notifier_handlers import T0, Notifier, assigned
from zhkh_contracts import (
    Address,
    Appeal,
    AppealAnswered,
    AppealRegistered,
    Applicant,
    Category,
    Channel,
    Consent,
)

ORG = Organisation('МКУ «Единый контакт-центр ЖКХ»', "620014, г. Екатеринбург, пр. Ленина, д. 24а", "+7 (343) 000-00-00")
NAME = "Петрова Анна Сергеевна"
POSTAL = "623100, Свердловская обл., г. Первоуральск, ул. Ленина, д. 10, кв. 5"
ANSWER = "Стояк отопления развоздушен 19.01.2026, температура в квартире восстановлена до +22 °C."


def text_of(pdf: bytes) -> tuple[str, PdfReader]:
    reader = PdfReader(io.BytesIO(pdf))
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in reader.pages)), reader


def letter(**kw: Any) -> dict[str, Any]:
    doc = {"_id": str(uuid.uuid4()), "number": "ZH-2026-0000042", "registered_at": datetime(2026, 1, 12, 9, tzinfo=UTC),
           "answered_at": datetime(2026, 1, 20, 21, 30, tzinfo=UTC), "tz": "Europe/Moscow", "party_id": "uk-zarechye",
           "party_name": 'ООО "УК Заречье"', "addressee": {"name": NAME, "postal_address": POSTAL}, "text": ANSWER,
           "state": "queued", "created_at": T0, "appeal_id": str(uuid.uuid4())}
    doc.update(kw)
    return doc


# ---- the PDF -------------------------------------------------------------------------------------


def test_the_letter_names_the_number_the_addressee_the_answer_and_who_answered():
    text, reader = text_of(render_letter(letter(), ORG))
    for part in (ORG.name, ORG.postal_address, ORG.phone, NAME, POSTAL, ANSWER, 'Ответ подготовлен: ООО "УК Заречье"'):
        assert part in text, part
    # dates in the deadline's zone: registered 12.01, answered 21.01 00:30 in Moscow
    assert "На Ваше обращение № ZH-2026-0000042 от 12.01.2026" in text
    assert "Дата ответа: 21.01.2026" in text and "(подпись)" in text
    page = reader.pages[0].mediabox
    assert (round(float(page.width)), round(float(page.height))) == (595, 842)  # A4 in points
    assert reader.metadata.title == "Ответ на обращение № ZH-2026-0000042"


def test_the_fonts_are_bundled_with_their_license_and_embedded():
    assert {p.name for p in FONTS.iterdir()} >= {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LICENSE"}
    assert "Bitstream Vera" in (FONTS / "LICENSE").read_text()
    _, reader = text_of(render_letter(letter(), ORG))
    fonts = {str(f["/BaseFont"]) for f in reader.pages[0]["/Resources"]["/Font"].values()}
    assert any("DejaVuSans" in f for f in fonts), fonts


def test_a_long_answer_runs_over_pages_numbered_and_a_letter_renders_the_same_twice():
    long = "\n".join(f"Пункт {i}. " + "Работы по восстановлению теплоснабжения выполнены в полном объёме. " * 6
                     for i in range(40))
    doc = letter(text=long)
    pdf = render_letter(doc, ORG)
    text, reader = text_of(pdf)
    assert len(reader.pages) >= 3
    assert f"Страница {len(reader.pages)} из {len(reader.pages)}" in text and "Пункт 39." in text
    assert render_letter(doc, ORG) == pdf  # deterministic: the document's dates are the answer's


def test_without_a_name_or_letterhead_settings_the_letter_still_reads():
    text, _ = text_of(render_letter(letter(addressee={"name": None, "postal_address": POSTAL}), Organisation()))
    assert "Заявителю" in text and POSTAL in text and "Тел.:" not in text


def test_text_the_fonts_cannot_draw_is_replaced_and_control_characters_dropped():
    assert printable("а\x07б\u200bв\tг\r\nд") == "абв    г\nд"
    assert printable("\U000E0041x") == "x"  # a tag character: a format control, dropped
    assert printable("\U00013000") == "?"  # Egyptian hieroglyph: not in DejaVu Sans


# ---- when a letter is made -----------------------------------------------------------------------


def paper_appeal(email: str | None = None, phone: str | None = None, postal: str | None = POSTAL,
                 channel: Channel = Channel.PAPER, personal_data: bool = True, name: str | None = NAME) -> Appeal:
    return Appeal(
        appeal_id=uuid.uuid4(), registration_number="ZH-2026-0000042", channel=channel, source_id=f"s-{uuid.uuid4()}",
        received_at=T0, registered_at=T0,
        applicant=Applicant(name=name, email=email, phone=phone, postal_address=postal),
        consent=Consent(personal_data=personal_data), address=Address(text="ул. Ленина, 10"),
        house_key="addr:ул ленина 10", category=Category.HEATING, category_source="channel", emergency=False,
        text="Нет отопления", source_refs={},
    )


def answered(a: Appeal, text: str = ANSWER) -> AppealAnswered:
    return AppealAnswered(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id="uk-zarechye",
                          text=text, answered_at=T0 + timedelta(days=3))


async def test_an_answer_reachable_only_by_post_becomes_one_letter_in_the_print_queue():
    n = Notifier()
    a = paper_appeal()
    reg = envelope(AppealRegistered(appeal=a))
    ans = envelope(answered(a))
    out = await n.run(reg, envelope(assigned(a, party_name='ООО "УК Заречье"'), correlation_id=reg.correlation_id))
    assert await n.run(ans) == []  # no event carries the letter
    (doc,) = n.store.letters.values()
    assert doc["_id"] == letter_id(ans.id) and doc["state"] == "queued" and doc["number"] == a.registration_number
    assert doc["addressee"] == {"name": NAME, "postal_address": POSTAL} and doc["text"] == ANSWER
    assert doc["party_name"] == 'ООО "УК Заречье"' and doc["tz"] == "Europe/Moscow"
    # the answer's delivery record says it goes by post, waiting for print: the delivery loop leaves it
    d = n.store.deliveries[f"{ans.id}:answered"]
    assert (d["target_kind"], d["target"], d["state"]) == ("post", f"letter:{doc['_id']}", POST_DELIVERY_STATE)
    assert POSTAL not in str(d) and NAME not in str(d) and ANSWER not in str(d)
    assert await n.service.deliver(n.store, _never, _never) == 0
    # a redelivered answer makes no second letter
    await n.run(ans)
    assert len(n.store.letters) == 1
    # the letter's PDF, rendered by the loop
    store = MemoryLetters(n.store)
    assert await render_round(store, ORG, T0) == 1 and await render_round(store, ORG, T0) == 0
    text, _ = text_of(n.store.letters[doc["_id"]]["pdf"])
    assert a.registration_number in text and NAME in text and POSTAL in text and ANSWER in text
    assert 'ООО "УК Заречье"' in text
    assert out and all(POSTAL not in str(e) and NAME not in str(e) for e in out)  # the plan carries neither


async def _never(*_: Any) -> None:
    raise AssertionError("a letter is not sent by the delivery loop")


@pytest.mark.parametrize(("appeal", "config", "letter_made", "kind"), [
    # reachable by e-mail: the answer goes by e-mail, no letter
    (dict(email="petrova@example.ru"), {}, False, "email"),
    # a phone and an SMS gateway: by SMS
    (dict(phone="+79120000000"), {}, False, "sms"),
    # a phone but no SMS gateway configured: only the post reaches them
    (dict(phone="+79120000000"), dict(sms_enabled=False), True, "post"),
    # e-mail given but the notifier has no SMTP: the post
    (dict(email="petrova@example.ru"), dict(email_enabled=False), True, "post"),
    # no consent to optional uses: no SMS, so a phone-only citizen gets a letter
    (dict(phone="+79120000000", personal_data=False), {}, True, "post"),
    # a chat-bot appeal with the bot's webhook: the bot answers
    (dict(channel=Channel.CHATBOT), dict(citizen_webhooks={"chatbot": "http://bot/notify"}), False, "webhook"),
    # any channel: a hotline caller who gave only a postal address gets a letter too
    (dict(channel=Channel.HOTLINE), {}, True, "post"),
    # nothing at all, not even a postal address: unreachable, nothing queued (as before)
    (dict(postal=None), {}, False, None),
    (dict(postal="   "), {}, False, None),
])
async def test_a_letter_only_when_nothing_but_the_post_reaches_the_citizen(appeal, config, letter_made, kind):
    n = Notifier(**config)
    a = paper_appeal(**appeal)
    ans = envelope(answered(a))
    await n.run(envelope(AppealRegistered(appeal=a)), ans)
    assert bool(n.store.letters) is letter_made
    d = n.store.deliveries.get(f"{ans.id}:answered")
    assert (d["target_kind"] if d else None) == kind


async def test_the_postal_address_is_kept_only_when_given():
    n = Notifier()
    with_post, without = paper_appeal(email="a@example.ru"), paper_appeal(email="b@example.ru", postal=None)
    await n.run(envelope(AppealRegistered(appeal=with_post)), envelope(AppealRegistered(appeal=without)))
    kept = n.store.facts[str(with_post.appeal_id)]
    assert (kept["postal_address"], kept["name"]) == (POSTAL, NAME)
    assert "postal_address" not in n.store.facts[str(without.appeal_id)]
    assert "name" not in n.store.facts[str(without.appeal_id)]


async def test_the_print_queue_moves_forward_only_and_posting_marks_the_answer_sent():
    n = Notifier()
    a = paper_appeal()
    ans = envelope(answered(a))
    await n.run(envelope(AppealRegistered(appeal=a)), ans)
    store = MemoryLetters(n.store)
    lid = letter_id(ans.id)
    (row,) = await store.listing(None, None, 10)
    assert set(row) <= {"_id", "number", "state", "created_at", "rendered_at", "printed_at", "posted_at"}
    assert (await store.mark(lid, "printed", T0, "op-1"))["state"] == "printed"
    again = await store.mark(lid, "printed", T0 + timedelta(hours=1), "op-2")
    assert again["printed_at"] == T0  # idempotent: the first marking stands
    posted = await store.mark(lid, "posted", T0 + timedelta(hours=2), "op-1")
    assert posted["state"] == "posted"
    assert (await store.mark(lid, "printed", T0 + timedelta(hours=3), "op-1"))["state"] == "posted"  # never back
    await store.finish_delivery(posted["delivery_id"], T0)
    assert n.store.deliveries[f"{ans.id}:answered"]["state"] == "sent"
    assert await store.listing("queued", None, 10) == [] and len(await store.listing("posted", None, 10)) == 1
    # a download renders and keeps the first PDF
    first = await ensure_pdf(store, await store.get(lid), ORG, T0)
    assert await ensure_pdf(store, await store.get(lid), Organisation("Другая"), T0) == first


async def test_a_letter_that_cannot_be_drawn_does_not_stop_the_others(monkeypatch):
    store = MemoryLetters(MemoryNotifierStore())
    bad, good = letter(created_at=T0), letter(created_at=T0 + timedelta(seconds=1))
    del bad["answered_at"]  # broken
    store.store.letters.update({bad["_id"]: bad, good["_id"]: good})
    assert await render_round(store, ORG, T0) == 2
    assert store.store.letters[good["_id"]].get("pdf") and store.store.letters[bad["_id"]]["render_failed"]
    assert await store.unrendered(10) == []


def test_a_normal_install_carries_the_fonts_and_their_license():
    """The Docker image installs the project as a wheel: the fonts must be package data (checked by
    building the wheel once: notifier/fonts/DejaVuSans.ttf, DejaVuSans-Bold.ttf and LICENSE are in it)."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    setup = project["tool"]["setuptools"]
    assert "notifier.fonts" in setup["packages"]
    assert set(setup["package-data"]["notifier.fonts"]) == {"*.ttf", "LICENSE"}
    assert "fpdf2==2.8.9" in project["project"]["dependencies"]
    assert "pypdf==7.1.1" in project["project"]["optional-dependencies"]["test"]
