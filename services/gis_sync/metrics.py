"""gis_sync's own Prometheus metrics (beside zhkh_runtime's consumer metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REQUESTS = Counter("zhkh_gis_requests_total", "SOAP requests to ГИС ЖКХ by operation and outcome", ["operation", "outcome"])
QUEUED = Counter("zhkh_gis_actions_queued_total", "Lifecycle steps queued for ГИС ЖКХ")
MIRRORED = Counter("zhkh_gis_actions_mirrored_total", "Steps ГИС ЖКХ confirmed", ["action"])
FAILED = Counter("zhkh_gis_actions_failed_total", "Steps given up, by code", ["code"])
PULLED = Counter("zhkh_gis_appeals_pulled_total", "New ГИС appeals handed to intake")
DRIFT_REPAIRED = Counter("zhkh_gis_drift_repaired_total", "Steps re-sent by reconciliation")
QUEUE_DEPTH = Gauge("zhkh_gis_queue_appeals", "Appeals with a step waiting for ГИС ЖКХ")
