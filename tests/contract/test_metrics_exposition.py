"""What /metrics exposes, as Prometheus scrapes it: no ``*_created`` series, no constant labels."""

from __future__ import annotations

import importlib

import pytest
from prometheus_client import REGISTRY, generate_latest

from zhkh_runtime import metrics


@pytest.mark.parametrize("service", ["intake", "router", "notifier", "gis_sync", "analytics"])
def test_no_created_series_in_any_services_exposition(service: str):
    importlib.import_module(f"{service}.main")
    metrics.CONSUMED.labels("probe", "t", "x", "handled").inc()
    metrics.HANDLER_SECONDS.labels("probe").observe(0.01)
    text = generate_latest(REGISTRY).decode()
    assert "zhkh_events_consumed_total{" in text and "zhkh_handler_seconds_bucket{" in text
    assert not [line for line in text.splitlines() if "_created" in line.split("{")[0]]


def test_handler_seconds_is_per_service_only():
    assert metrics.HANDLER_SECONDS._labelnames == ("service",)
