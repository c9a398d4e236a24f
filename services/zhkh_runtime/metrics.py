"""Prometheus metrics every service exposes on /metrics.

Counters and histograms export no ``*_created`` series (a timestamp per label set that nobody here
queries and that doubles the series count); importing this module turns them off process-wide, and
every service imports it (through the runtime) before its own metrics are made.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()

CONSUMED = Counter(
    "zhkh_events_consumed_total", "Records handled by outcome", ["service", "topic", "type", "outcome"]
)
PUBLISHED = Counter("zhkh_events_published_total", "Records published", ["service", "topic", "type"])
DEAD_LETTERED = Counter("zhkh_dead_letters_total", "Records sent to a DLQ", ["service", "topic", "reason"])
RETRIES = Counter("zhkh_handler_retries_total", "Transient failures retried", ["service", "type"])
HANDLER_SECONDS = Histogram(
    "zhkh_handler_seconds",
    "Time to process one fetched partition batch, publishing included",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CONSUMER_LAG = Gauge(
    "zhkh_consumer_lag",
    "Records behind the partition's high-water mark after the last handled record (the consumer's own view)",
    ["service", "topic", "partition"],
)
