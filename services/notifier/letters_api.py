"""The print queue of paper answer letters (letters.py), on the notifier's HTTP port (default 8003).
Every route needs a bearer token with role ``operator`` or ``admin``; other roles get 403, no token 401.

    GET  /api/v1/letters?state=queued|printed|posted&limit=50&after=<cursor>
        the letters, oldest first: id, registration number, state and its times; no addressee, no text
    GET  /api/v1/letters/{letter_id}/pdf
        the letter as a print-ready A4 PDF (rendered first if the ``letters`` loop has not yet)
    POST /api/v1/letters/{letter_id}/printed
    POST /api/v1/letters/{letter_id}/posted
        move the letter forward (queued → printed → posted; posted also sets printed). Naturally
        idempotent: marking again, or marking printed a letter already posted, changes nothing and
        answers the letter as it is. Posting marks the answer's delivery record sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhkh_runtime.auth import Principal
from zhkh_runtime.http import Auth, Problem, decode_time_cursor, encode_time_cursor, problem_responses
from zhkh_runtime.mongo import aware

from .letters import LetterStore, Organisation, ensure_pdf

log = structlog.get_logger(__name__)
STAFF = ("operator", "admin")
State = Literal["queued", "printed", "posted"]


class LetterSummary(BaseModel):
    """A letter in the print queue: no personal data beyond the registration number."""

    letter_id: str
    registration_number: str
    state: State
    created_at: datetime
    rendered_at: datetime | None = Field(default=None, description="When its PDF was made (null: not yet)")
    printed_at: datetime | None = None
    posted_at: datetime | None = None


class LetterList(BaseModel):
    letters: list[LetterSummary]
    next: str | None = Field(default=None, description="Cursor for the next page (pass as ``after``); null: the last")


def _summary(d: dict[str, Any]) -> LetterSummary:
    return LetterSummary(letter_id=d["_id"], registration_number=d["number"], state=d["state"],
                         created_at=aware(d["created_at"]), rendered_at=aware(d.get("rendered_at")),
                         printed_at=aware(d.get("printed_at")), posted_at=aware(d.get("posted_at")))


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    return None if cursor is None else decode_time_cursor(cursor, "after")


LetterId = Annotated[uuid.UUID, Path(description="The letter's id (from the listing)")]


def routes(store: LetterStore, org: Organisation, auth: Auth,
           clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> APIRouter:
    r = APIRouter(prefix="/api/v1/letters", tags=["letters"])
    staff = Depends(auth.require(*STAFF))
    errors = problem_responses(400, 401, 403, 422, 503)

    async def _get(letter_id: uuid.UUID) -> dict[str, Any]:
        d = await store.get(str(letter_id))
        if d is None:
            raise Problem(404, "not_found", "Такого письма нет.")
        return d

    @r.get("", operation_id="letters_list", response_model=LetterList, responses=errors,
           summary="Paper answer letters to print and post (no personal data in the listing)")
    async def letters_list(_: Principal = staff, state: State | None = Query(default=None),
                           limit: int = Query(default=50, ge=1, le=200),
                           after: str | None = Query(default=None, max_length=200)) -> LetterList:
        found = await store.listing(state, _after(after), limit + 1)  # one more: is there a next page?
        rows = [_summary(d) for d in found[:limit]]
        more = len(found) > limit
        return LetterList(letters=rows, next=encode_time_cursor(rows[-1].created_at, rows[-1].letter_id) if more else None)

    @r.get("/{letter_id}/pdf", operation_id="letter_pdf", response_class=Response,
           responses={200: {"description": "The letter, A4 PDF", "content": {"application/pdf": {
               "schema": {"type": "string", "format": "binary"}}}}, **errors, **problem_responses(404)},
           summary="Download one letter as a print-ready PDF")
    async def letter_pdf(letter_id: LetterId, who: Principal = staff) -> Response:
        d = await _get(letter_id)
        pdf = await ensure_pdf(store, d, org, clock())
        log.info("letter_downloaded", letter_id=d["_id"], by=who.subject)
        return Response(pdf, media_type="application/pdf", headers={
            "content-disposition": f'attachment; filename="{d["number"]}.pdf"', "cache-control": "no-store",
            "x-content-type-options": "nosniff"})

    async def _mark(letter_id: uuid.UUID, state: str, who: Principal) -> LetterSummary:
        d = await store.mark(str(letter_id), state, clock(), who.subject)
        if d is None:
            raise Problem(404, "not_found", "Такого письма нет.")
        if d["state"] == "posted":
            await store.finish_delivery(d["delivery_id"], d.get("posted_at") or clock())
        log.info("letter_marked", letter_id=d["_id"], state=d["state"], by=who.subject)
        return _summary(d)

    @r.post("/{letter_id}/printed", operation_id="letter_printed", response_model=LetterSummary,
            responses={**errors, **problem_responses(404)}, summary="Mark a letter printed (idempotent)")
    async def letter_printed(letter_id: LetterId, who: Principal = staff) -> LetterSummary:
        return await _mark(letter_id, "printed", who)

    @r.post("/{letter_id}/posted", operation_id="letter_posted", response_model=LetterSummary,
            responses={**errors, **problem_responses(404)},
            summary="Mark a letter posted (idempotent); the answer's delivery is then sent")
    async def letter_posted(letter_id: LetterId, who: Principal = staff) -> LetterSummary:
        return await _mark(letter_id, "posted", who)

    return r
