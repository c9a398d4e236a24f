"""What gis_sync's logic needs from the outside, as plain data and small Protocols (no zeep, no
pymongo): the ГИС ЖКХ AppealsAsync API (``GisApi``, implemented by soap.GisClient over zeep), its
results, the storage of links and the action queue (``Links``, ``GisStore``, implemented in
repository.py), and a way to publish events (``Publish``, wired to the runtime's emitter)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from zhkh_runtime.engine import Emit, Message
from zhkh_runtime.errors import PermanentError

RECEIVED, IN_PROGRESS, PROCESSED = 1, 2, 3

Doc = dict[str, Any]
Publish = Callable[[list[Emit]], Awaitable[None]]


class GisFault(PermanentError):
    """A SOAP fault: ГИС ЖКХ refused the request as such (schema, authorisation, unknown operation)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"gis_fault:{code}", detail)
        self.code = code


@dataclass(frozen=True)
class GisError:
    code: str
    description: str = ""


@dataclass(frozen=True)
class ImportResult:
    transport_guid: str
    guid: str | None
    errors: tuple[GisError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class StateResult:
    state: int
    message_guid: str
    error: GisError | None = None
    import_results: tuple[ImportResult, ...] = ()
    appeals: tuple[dict[str, Any], ...] = field(default=())

    @property
    def done(self) -> bool:
        return self.state == PROCESSED


class GisApi(Protocol):
    async def submit_export(self, *, appeal_guids: Sequence[str] = (), start: date | None = None,
                            end: date | None = None) -> str: ...

    async def submit_import(self, *, answer_actions: Sequence[Any] = (), appeal_actions: Sequence[Any] = ()) -> str: ...

    async def get_state(self, message_guid: str) -> StateResult: ...


class Links(Protocol):
    """Links of ГИС appeals on one transaction (the consumer's unit of work)."""

    async def link(self, appeal_id: str) -> Doc | None: ...

    async def create_link(self, doc: Doc) -> bool: ...

    async def update_link(self, appeal_id: str, changes: Doc) -> None: ...

    async def enqueue(self, link: Doc, items: list[Doc]) -> None: ...


class GisUoW(Protocol):
    message: Message
    links: Links


class GisStore(Links, Protocol):
    """What the loops use (outside the consumer's transactions)."""

    def transaction(self) -> AbstractAsyncContextManager[Links]: ...

    async def open_links(self, limit: int) -> list[Doc]: ...

    async def active_items(self, limit: int) -> list[Doc]: ...

    async def has_active(self, appeal_ids: Iterable[str]) -> set[str]: ...

    async def set_items(self, ids: Iterable[str], changes: Doc, expect_state: str | None = None) -> None: ...

    async def set_item(self, item_id: str, changes: Doc) -> None: ...

    async def pulled(self, guid: str) -> Doc | None: ...

    async def mark_pulled(self, guid: str, doc: Doc) -> None: ...

    async def cursor_doc(self, name: str) -> Doc: ...

    async def save_cursor(self, name: str, changes: Doc, now: datetime) -> None: ...
