"""The audit trail: an append-only history per appeal, written in the same unit of work as the state.

One entry per action applied or refused on an existing appeal, and per change the router makes by
itself (the first assignment of a registered appeal). Entries say who (``actor``, ``actor_subject``,
``via``: the CloudEvents source the action came through), what (``action``, ``cause_event_id``), when
(``at``) and the outcome (``status`` and ``version`` after it, or the refusal ``code``). No texts, names,
contacts or addresses: the history can be shown to every role allowed to see the appeal.

The entry's id is derived from the appeal and the cause event, so a redelivered action cannot add a
second entry; it outlives the topics' retention (MongoDB collection ``appeal_history``).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

APPLIED = "applied"
REFUSED = "refused"


@dataclass(frozen=True)
class HistoryEntry:
    appeal_id: uuid.UUID
    at: datetime
    action: str
    outcome: str  # applied | refused
    actor: str | None
    actor_subject: str | None
    via: str
    cause_event_id: uuid.UUID
    status: str | None  # after the action (refused: the unchanged status)
    version: int  # after the action (refused: the unchanged version)
    from_status: str | None = None
    party_id: str | None = None  # the party the appeal is with after the action (a directory id, not a person)
    code: str | None = None  # refused: why

    @property
    def id(self) -> str:
        return f"{self.appeal_id}:{self.cause_event_id}"

    @property
    def order(self) -> tuple[int, int, datetime]:
        """Oldest first: versions only grow, an action applied at a version precedes those refused at it."""
        return (self.version, 0 if self.outcome == APPLIED else 1, self.at)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (for the HTTP API)."""
        d = asdict(self)
        d["appeal_id"], d["cause_event_id"], d["at"] = str(self.appeal_id), str(self.cause_event_id), self.at.isoformat()
        return d
