"""Settings shared by every service, read from ZHKH_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .auth import AuthFields


class RuntimeSettings(AuthFields, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZHKH_", extra="ignore")

    service_name: str = "zhkh"
    kafka_bootstrap: str = Field(default="127.0.0.1:19092", description="Kafka bootstrap servers")
    mongo_uri: str = Field(
        default="mongodb://127.0.0.1:27117/?retryWrites=false",
        description="MongoDB URI; retryWrites=false only for the embedded SecantusDB",
    )
    mongo_db: str = "zhkh"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    forwarded_allow_ips: str = Field(default="", description="Proxies trusted for X-Forwarded-For (comma "
                                     "separated, as uvicorn's --forwarded-allow-ips); empty: the peer address counts "
                                     "(rate limits per client use it)")
    log_level: str = "INFO"
    log_json: bool = True
    topic_prefix: str = Field(default="zhkh", description="Prefix of every topic name")
    group_prefix: str = Field(default="zhkh", description="Consumer group = <prefix>.<service>")
    group_instance_id: str | None = Field(
        default=None,
        description="Static group membership: a restarted instance takes its partitions back at once "
        "instead of waiting for the broker to expire it. Unique per running instance (e.g. the pod name).",
    )
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    max_poll_interval_ms: int = Field(default=120_000, ge=10_000)
    retry_attempts: int = Field(default=50, ge=1, description="At most this many attempts for a transient failure")
    retry_budget_s: float = Field(
        default=90.0,
        gt=0,
        description="...and for at most this long. Longer than a killed instance's orphaned transaction "
        "holds its locks (60 s in MongoDB and SecantusDB), so a redelivery after a crash waits it out.",
    )
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
    create_topics: bool = Field(default=True, description="Create the catalog's topics at start")
    topic_replication: int = 1
    graceful_timeout_s: float = 15.0
    max_record_bytes: int = Field(default=256 * 1024, description="Larger records are refused unread")
    max_dead_letter_bytes: int = Field(
        default=900_000, description="A dead letter larger than this (original + x-dlq-* headers) keeps only its "
        "first bytes, with x-dlq-truncated, x-dlq-original-size and x-dlq-original-sha256 (below the producer's "
        "and broker's 1 MiB limits, so a refusal always fits)")
    topic_discovery_ms: int = Field(
        default=30_000, ge=500, description="Consumer metadata refresh: a topic matching a subscribed pattern "
        "(intake's <prefix>.intake.raw.*) is found within this long after it appears")
    batch_max_records: int = Field(default=500, ge=1, description="At most this many records per fetch")
    poll_ms: int = Field(default=1, ge=0, description="How long one poll waits for records before the loop idles")
    idle_min_ms: int = Field(default=5, ge=1, description="First pause after an empty poll")
    idle_max_ms: int = Field(
        default=250, ge=1, description="Longest pause while idle (doubling from idle_min_ms): the most an idle "
        "consumer adds to a record's latency; also the long-poll wait asked of a real broker")
    rewind_on_assign: int = Field(
        default=0, ge=0, description="Re-read this many records before the committed offset of each newly assigned "
        "partition: only for a broker that may reuse offsets of acknowledged records it lost (the embedded noida-db "
        "after a kill -9; tests/e2e/test_faults.py sets 20). Real Kafka with acks=all and replication never does: keep 0")
    lease_ttl_s: float = Field(default=15.0, gt=0, description="Background loops (scanner, ГИС push/pull/reconcile) "
                               "run on one replica at a time under a lease that expires this long after its holder stops renewing it")

    @property
    def group_id(self) -> str:
        return f"{self.group_prefix}.{self.service_name}"
