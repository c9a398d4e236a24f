"""Paper answer letters: when the citizen can be reached only by post, the answer is a print-ready A4
PDF letter in Russian that operators print and post (issue 16; 59-ФЗ ст. 10 ч. 4: the answer to a
written appeal goes to the postal address given in it).

* :func:`needs_letter` decides: the answer notice has no configured channel (no messenger webhook,
  no usable e-mail or phone) and the appeal has a postal address.
* :func:`letter_docs` makes, in the answer's transaction, the stored letter (``notifier_letters``:
  the addressee, the answer text, the numbers and dates; no PDF yet) and the answer's delivery record
  (``notifier_deliveries``, ``target_kind`` ``post``, state ``print_queued``), both with ids derived
  from the answer event's id, queued once per id: a redelivered answer makes no second letter.
* :func:`render_letter` draws the PDF with fpdf2 and the bundled DejaVu Sans (``fonts/``, with its
  license), so a machine without system fonts renders Cyrillic. Rendering takes about 0.2 s, so it is
  not done in the handler's transaction: the leased ``letters`` loop renders new letters in a worker
  thread and stores the bytes; a download of a letter not rendered yet renders it the same way. The
  first stored PDF is the one every later download returns.

Personal data (name, postal address, answer text, the PDF) lives only in ``notifier_letters`` (and
the appeal's facts, as the e-mail and phone do): never in events, logs, metrics or the DLQ. The print
queue's listing shows the number and the state only.
"""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog
from fpdf import FPDF
from pymongo import ASCENDING

log = structlog.get_logger(__name__)

FONTS = Path(__file__).with_name("fonts")
REGULAR, BOLD = FONTS / "DejaVuSans.ttf", FONTS / "DejaVuSans-Bold.ttf"
LETTER_NS = uuid.UUID("5b0c1c3e-2f7d-4a51-9a0e-6f1d2c7b8e42")
STATES = ("queued", "printed", "posted")
POST_DELIVERY_STATE = "print_queued"
"""The answer's delivery record while its letter waits to be posted (the delivery loop sends only
``pending`` ones); ``sent`` once the letter is marked posted."""

Doc = dict[str, Any]


@dataclass(frozen=True)
class Organisation:
    """The letterhead (``ZHKH_LETTER_ORG_NAME``, ``ZHKH_LETTER_ORG_ADDRESS``, ``ZHKH_LETTER_ORG_PHONE``)."""

    name: str = ""
    postal_address: str = ""
    phone: str = ""


# ---- when a letter is made ---------------------------------------------------------------------


def needs_letter(facts: Mapping[str, Any], reachable: bool) -> bool:
    """A letter when no configured channel reaches the citizen and there is a postal address."""
    return not reachable and bool((facts.get("postal_address") or "").strip())


def letter_id(answer_event_id: uuid.UUID | str) -> str:
    return str(uuid.uuid5(LETTER_NS, f"{answer_event_id}:letter"))


def letter_docs(*, answer_event_id: uuid.UUID | str, appeal_id: str, number: str, facts: Mapping[str, Any],
                text: str, party_id: str, party_name: str | None, answered_at: datetime, tz: str,
                now: datetime, subject: str) -> tuple[Doc, Doc]:
    """The letter and the answer's delivery record (by post), ids derived from the answer event."""
    lid = letter_id(answer_event_id)
    delivery_id = f"{answer_event_id}:answered"
    letter = {"_id": lid, "delivery_id": delivery_id, "appeal_id": appeal_id, "number": number,
              "registered_at": facts["registered_at"], "answered_at": answered_at, "tz": tz,
              "party_id": party_id, "party_name": party_name,
              "addressee": {"name": facts.get("name"), "postal_address": facts["postal_address"]},
              "text": text, "state": "queued", "created_at": now}
    delivery = {"_id": delivery_id, "kind": "answered", "appeal_id": appeal_id, "number": number,
                "target_kind": "post", "target": f"letter:{lid}", "subject": subject,
                "body": "Ответ направляется письмом по почтовому адресу заявителя.",
                "state": POST_DELIVERY_STATE, "attempts": 0, "created_at": now, "not_before": now}
    return letter, delivery


# ---- rendering ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _glyphs() -> frozenset[int]:
    """Code points the bundled fonts can draw (both faces)."""
    from fontTools.ttLib import TTFont

    regular = set(TTFont(REGULAR, lazy=True).getBestCmap())
    return frozenset(regular & set(TTFont(BOLD, lazy=True).getBestCmap()))


def printable(text: str) -> str:
    """``text`` as the fonts can print it: NFC, control characters dropped (line breaks kept), tabs
    as spaces, and a character the fonts lack as "?" (fpdf2 would otherwise log the missing glyphs,
    which are the citizen's text)."""
    glyphs = _glyphs()
    out = []
    for ch in unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")):
        if ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch if ord(ch) in glyphs else "?")
    return "".join(out)


def _date(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).strftime("%d.%m.%Y")


class _LetterPDF(FPDF):
    number = ""

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("DejaVu", "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, f"Ответ на обращение № {self.number}. Страница {self.page_no()} из {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


def render_letter(letter: Mapping[str, Any], org: Organisation) -> bytes:
    """The letter as a print-ready A4 PDF (fields as stored by :func:`letter_docs`). Deterministic for
    the same letter: the document's dates are the answer's."""
    tz = letter.get("tz") or "Europe/Moscow"
    answered_at: datetime = letter["answered_at"]
    addressee = letter.get("addressee") or {}
    pdf = _LetterPDF(orientation="P", unit="mm", format="A4")
    pdf.number = str(letter["number"])
    pdf.set_creation_date(answered_at)
    pdf.set_title(f"Ответ на обращение № {letter['number']}")
    pdf.set_author(printable(org.name) or "zhkh-appeals")
    pdf.set_creator("zhkh-appeals notifier")
    pdf.set_lang("ru")
    pdf.add_font("DejaVu", "", str(REGULAR))
    pdf.add_font("DejaVu", "B", str(BOLD))
    pdf.set_margins(left=25, top=20, right=15)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    # the letterhead (left half) and the addressee (right half), side by side
    top = pdf.get_y()
    half = width / 2 - 5
    pdf.set_font("DejaVu", "B", 11)
    pdf.multi_cell(half, 5.5, printable(org.name) or " ", align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    for line in (org.postal_address, f"Тел.: {org.phone}" if org.phone else ""):
        if line:
            pdf.multi_cell(half, 4.5, printable(line), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.multi_cell(half, 4.5, f"Исх. от {_date(answered_at, tz)}", align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(half, 4.5, f"На Ваше обращение № {letter['number']} от {_date(letter['registered_at'], tz)}",
                   align="L", new_x="LMARGIN", new_y="NEXT")
    left_end = pdf.get_y()
    pdf.set_xy(pdf.l_margin + width / 2 + 5, top)
    pdf.set_font("DejaVu", "B", 11)
    name = printable(addressee.get("name") or "") or "Заявителю"
    pdf.multi_cell(half, 5.5, name, align="L", new_x="LEFT", new_y="NEXT")
    pdf.set_font("DejaVu", "", 11)
    pdf.multi_cell(half, 5.5, printable(addressee.get("postal_address") or ""), align="L", new_x="LEFT", new_y="NEXT")
    pdf.set_y(max(left_end, pdf.get_y()) + 12)

    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(width, 7, f"Ответ на обращение № {letter['number']}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("DejaVu", "", 11)
    pdf.multi_cell(width, 6, "Уважаемый(ая) заявитель!", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for paragraph in printable(str(letter["text"])).split("\n"):
        if paragraph.strip():
            pdf.multi_cell(width, 6, paragraph.strip(), align="J", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
    pdf.ln(4)
    pdf.multi_cell(width, 6, "Если ответ Вас не устраивает, сообщите об этом отправителю письма по телефону или "
                   f"почтой, указав номер обращения {letter['number']}, либо обжалуйте ответ в порядке, установленном "
                   "законодательством.", align="L", new_x="LMARGIN", new_y="NEXT")

    # who answered, the date, the signature line (kept together on one page)
    if pdf.get_y() > pdf.h - 22 - 40:
        pdf.add_page()
    pdf.ln(10)
    party = printable(letter.get("party_name") or letter.get("party_id") or "")
    pdf.multi_cell(width, 6, f"Ответ подготовлен: {party}", align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(width, 6, f"Дата ответа: {_date(answered_at, tz)}", align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(14)
    y = pdf.get_y()
    for x0, x1 in ((0, 0.35), (0.42, 0.67), (0.74, 1.0)):
        pdf.line(pdf.l_margin + width * x0, y, pdf.l_margin + width * x1, y)
    pdf.set_font("DejaVu", "", 7.5)
    for (x0, x1), caption in zip(((0, 0.35), (0.42, 0.67), (0.74, 1.0)), ("(должность)", "(подпись)", "(Ф. И. О.)")):
        pdf.set_xy(pdf.l_margin + width * x0, y + 0.5)
        pdf.cell(width * (x1 - x0), 4, caption, align="C")
    pdf.set_xy(pdf.l_margin, y + 8)
    pdf.cell(width, 4, "М. П.")
    return bytes(pdf.output())


# ---- storage -----------------------------------------------------------------------------------


class Letters(Protocol):
    """The handlers' port: queue a letter once per id (a repeat changes nothing)."""

    async def queue(self, doc: Doc) -> None: ...


class LetterStore(Protocol):
    """The print queue's store (the API and the rendering loop), outside any transaction."""

    async def listing(self, state: str | None, after: tuple[datetime, str] | None, limit: int) -> list[Doc]: ...

    async def get(self, letter_id: str) -> Doc | None: ...

    async def unrendered(self, limit: int) -> list[Doc]:
        """Letters without a PDF, oldest first, except those whose rendering failed in the loop."""

    async def render_failed(self, letter_id: str) -> None: ...

    async def store_pdf(self, letter_id: str, pdf: bytes, at: datetime) -> bool:
        """Keep ``pdf`` unless the letter has one already (the first rendering wins); True if this one was kept."""

    async def mark(self, letter_id: str, state: str, at: datetime, by: str) -> Doc | None:
        """Move the letter forward to ``state`` (printed, posted); never back. The letter after it."""

    async def finish_delivery(self, delivery_id: str, at: datetime) -> None:
        """The answer's delivery record: sent (the letter was posted)."""


LISTED = ("_id", "number", "state", "created_at", "rendered_at", "printed_at", "posted_at")
"""What the print queue's listing reads: no addressee, no text, no PDF."""


class MongoLetterStore:
    def __init__(self, letters: Any, deliveries: Any) -> None:
        self.letters, self.deliveries = letters, deliveries

    async def ensure_indexes(self) -> None:
        await self.letters.create_index([("state", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)])
        await self.letters.create_index([("created_at", ASCENDING), ("_id", ASCENDING)])
        await self.letters.create_index([("rendered_at", ASCENDING), ("created_at", ASCENDING)])

    async def listing(self, state: str | None, after: tuple[datetime, str] | None, limit: int) -> list[Doc]:
        q: Doc = {"state": state} if state else {}
        if after is not None:
            at, lid = after
            q["$or"] = [{"created_at": {"$gt": at}}, {"created_at": at, "_id": {"$gt": lid}}]
        cursor = self.letters.find(q, {k: 1 for k in LISTED}).sort([("created_at", 1), ("_id", 1)]).limit(limit)
        return await cursor.to_list()

    async def get(self, letter_id: str) -> Doc | None:
        return await self.letters.find_one({"_id": letter_id})

    async def unrendered(self, limit: int) -> list[Doc]:
        return await self.letters.find({"rendered_at": None, "render_failed": None}).sort("created_at", 1) \
            .limit(limit).to_list()

    async def render_failed(self, letter_id: str) -> None:
        await self.letters.update_one({"_id": letter_id}, {"$set": {"render_failed": True}})

    async def store_pdf(self, letter_id: str, pdf: bytes, at: datetime) -> bool:
        done = await self.letters.update_one({"_id": letter_id, "rendered_at": None},
                                             {"$set": {"pdf": pdf, "rendered_at": at}})
        return done.matched_count == 1

    async def mark(self, letter_id: str, state: str, at: datetime, by: str) -> Doc | None:
        earlier = list(STATES[:STATES.index(state)])
        await self.letters.update_one({"_id": letter_id, "state": {"$in": earlier}},
                                      {"$set": {"state": state, f"{state}_at": at, f"{state}_by": by}})
        if state == "posted":  # posted without being marked printed: it was printed all the same
            await self.letters.update_one({"_id": letter_id, "printed_at": None},
                                          {"$set": {"printed_at": at, "printed_by": by}})
        return await self.letters.find_one({"_id": letter_id}, {k: 1 for k in (*LISTED, "delivery_id")})

    async def finish_delivery(self, delivery_id: str, at: datetime) -> None:
        await self.deliveries.update_one({"_id": delivery_id, "state": POST_DELIVERY_STATE},
                                         {"$set": {"state": "sent", "finished_at": at, "reason": "posted"}})


class MemoryLetters:
    """Both ports on the notifier's in-memory store (its ``letters`` and ``deliveries`` dicts, looked up
    on each call: the store's rollback replaces them), for the fast tests."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def queue(self, doc: Doc) -> None:
        self.store.letters.setdefault(doc["_id"], dict(doc))

    async def listing(self, state: str | None, after: tuple[datetime, str] | None, limit: int) -> list[Doc]:
        rows = sorted((d for d in self.store.letters.values() if state is None or d["state"] == state),
                      key=lambda d: (d["created_at"], d["_id"]))
        if after is not None:
            rows = [d for d in rows if (d["created_at"], d["_id"]) > after]
        return [{k: d[k] for k in LISTED if k in d} for d in rows[:limit]]

    async def get(self, letter_id: str) -> Doc | None:
        d = self.store.letters.get(letter_id)
        return dict(d) if d else None

    async def unrendered(self, limit: int) -> list[Doc]:
        rows = [d for d in self.store.letters.values() if d.get("rendered_at") is None and not d.get("render_failed")]
        return [dict(d) for d in sorted(rows, key=lambda d: d["created_at"])[:limit]]

    async def render_failed(self, letter_id: str) -> None:
        self.store.letters[letter_id]["render_failed"] = True

    async def store_pdf(self, letter_id: str, pdf: bytes, at: datetime) -> bool:
        d = self.store.letters[letter_id]
        if d.get("rendered_at") is not None:
            return False
        d.update(pdf=pdf, rendered_at=at)
        return True

    async def mark(self, letter_id: str, state: str, at: datetime, by: str) -> Doc | None:
        d = self.store.letters.get(letter_id)
        if d is None:
            return None
        if STATES.index(d["state"]) < STATES.index(state):
            d.update({"state": state, f"{state}_at": at, f"{state}_by": by})
        if state == "posted" and d.get("printed_at") is None:
            d.update(printed_at=at, printed_by=by)
        return {k: d[k] for k in (*LISTED, "delivery_id") if k in d}

    async def finish_delivery(self, delivery_id: str, at: datetime) -> None:
        d = self.store.deliveries.get(delivery_id)
        if d is not None and d["state"] == POST_DELIVERY_STATE:
            d.update(state="sent", finished_at=at, reason="posted")


# ---- rendering off the handlers ----------------------------------------------------------------


async def ensure_pdf(store: LetterStore, letter: Doc, org: Organisation, now: datetime) -> bytes:
    """The letter's stored PDF; rendered (in a worker thread) and stored first if it has none."""
    if letter.get("pdf") is not None:
        return bytes(letter["pdf"])
    pdf = await asyncio.to_thread(render_letter, letter, org)
    if await store.store_pdf(letter["_id"], pdf, now):
        return pdf
    stored = await store.get(letter["_id"])  # another replica or the loop stored one first: that one is the letter
    return bytes(stored["pdf"]) if stored and stored.get("pdf") is not None else pdf


async def render_round(store: LetterStore, org: Organisation, now: datetime, limit: int = 10) -> int:
    """The ``letters`` loop: render the letters that have no PDF yet (at most ``limit``)."""
    todo = await store.unrendered(limit)
    for letter in todo:
        try:
            await ensure_pdf(store, letter, org, now)
        except Exception as exc:  # noqa: BLE001 - one letter that cannot be drawn must not stop the others
            await store.render_failed(letter["_id"])  # left to a download (which answers 500) and a person
            log.error("letter_render_failed", letter_id=letter["_id"], error_type=type(exc).__name__)
            continue
        log.info("letter_rendered", letter_id=letter["_id"], appeal_id=letter["appeal_id"])
    return len(todo)
