"""Shared pieces of gis_sync's jobs: settings of the sync, the items of the action queue, and the
outcome events (GisActionMirrored / GisActionFailed) with ids derived from the TransportGUID."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from zhkh_contracts import GisActionFailed, GisActionMirrored
from zhkh_runtime.engine import Emit

from . import metrics
from .ports import Doc, GisError

log = structlog.get_logger(__name__)

NO_OBJECTS = "INT002012"  # "Нет объектов для экспорта": an empty export, not a failure
GIS_TZ = ZoneInfo("Europe/Moscow")  # ГИС ЖКХ's dates are Moscow dates
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SyncConfig:
    default_answerer: str | None = None
    batch: int = 100
    max_attempts: int = 8
    backoff_s: float = 2.0
    backoff_max_s: float = 300.0
    stuck_after_s: float = 120.0
    poll_interval_s: float = 1.0
    pull_initial_days: int = 7
    pull_overlap_days: int = 1
    transient_codes: frozenset[str] = field(default_factory=frozenset)


def queue_item(link: Doc, tg: str, kind: str, payload: Doc, cause: Any, now: datetime, repair: bool = False) -> Doc:
    return {
        "_id": tg, "appeal_id": link["_id"], "appeal_guid": link["appeal_guid"], "number": link["number"],
        "kind": kind, "payload": payload, "state": "pending", "attempts": 0, "next_at": now, "created_at": now,
        "message_guid": None, "cause_event_id": str(cause), "repair": repair,
        "correlation_id": link.get("correlation_id"),
    }


def _correlation(value: Any) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


def failed(link: Doc, action: str, tg: str, err: GisError, attempts: int, now: datetime, correlation: Any = None) -> Emit:
    metrics.FAILED.labels(err.code).inc()
    log.warning("gis_action_failed", appeal_id=link["_id"], action=action, code=err.code, transport_guid=tg)
    return Emit(
        GisActionFailed(
            appeal_id=uuid.UUID(link["_id"]), registration_number=link["number"],
            gis_appeal_guid=uuid.UUID(link["appeal_guid"]), action=action, transport_guid=uuid.UUID(tg),
            code=err.code, description=err.description[:2000], attempts=attempts, failed_at=now,
        ),
        event_id=uuid.uuid5(uuid.UUID(tg), "failed"), correlation_id=_correlation(correlation),
    )


def mirrored(item: Doc, message_guid: str, guid: str | None, now: datetime) -> Emit:
    return Emit(
        GisActionMirrored(
            appeal_id=uuid.UUID(item["appeal_id"]), registration_number=item["number"],
            gis_appeal_guid=uuid.UUID(item["appeal_guid"]), action=item["kind"], transport_guid=uuid.UUID(item["_id"]),
            message_guid=uuid.UUID(message_guid), gis_object_guid=uuid.UUID(guid) if guid else None,
            repair=bool(item.get("repair")), mirrored_at=now,
        ),
        event_id=uuid.uuid5(uuid.UUID(item["_id"]), "mirrored"), correlation_id=_correlation(item.get("correlation_id")),
    )
