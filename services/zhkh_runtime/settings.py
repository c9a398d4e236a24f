"""Settings shared by every service, read from ZHKH_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .auth import AuthFields

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class RuntimeSettings(AuthFields, BaseSettings):
    # hide_input_in_errors: a refused value (a password, a URI with credentials) never shows in the error
    model_config = SettingsConfigDict(env_prefix="ZHKH_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "zhkh"
    kafka_bootstrap: str = Field(default="127.0.0.1:19092", description="Kafka bootstrap servers")
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT (only the embedded broker and a fenced dev network), SSL, "
        "SASL_PLAINTEXT or SASL_SSL; every Kafka client of the service uses it (zhkh_runtime.kafka.client_kwargs)")
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(default="SCRAM-SHA-512", description="With SASL_*: the mechanism")
    kafka_sasl_username: str | None = Field(default=None, description="With SASL_*: this service's Kafka principal")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="With SASL_*: its password (never logged)")
    kafka_ssl_cafile: str | None = Field(default=None, description="With SSL/SASL_SSL: CA bundle (PEM) that signed "
                                         "the brokers' certificates; unset: the system's CAs")
    kafka_ssl_certfile: str | None = Field(default=None, description="With SSL/SASL_SSL: client certificate (PEM), "
                                           "for brokers that require mutual TLS")
    kafka_ssl_keyfile: str | None = Field(default=None, description="...and its private key (PEM)")
    mongo_uri: SecretStr = Field(
        default=SecretStr("mongodb://127.0.0.1:27117/?retryWrites=false"),
        description="MongoDB URI, credentials included (mongodb://user:password@host/?authSource=...; never logged); "
        "retryWrites=false only for the embedded SecantusDB",
    )
    mongo_tls_ca_file: str | None = Field(default=None, description="CA bundle (PEM) for TLS to MongoDB; setting it "
                                          "turns TLS on (as does tls=true in the URI)")
    mongo_tls_cert_key_file: str | None = Field(default=None, description="Client certificate and key in one PEM "
                                                "file, for MongoDB's x.509 or mutual TLS; turns TLS on")
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

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> RuntimeSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(f"ZHKH_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                             "ZHKH_KAFKA_SASL_USERNAME and ZHKH_KAFKA_SASL_PASSWORD")
        uses_tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        if not uses_tls and (self.kafka_ssl_cafile or self.kafka_ssl_certfile or self.kafka_ssl_keyfile):
            raise ValueError("ZHKH_KAFKA_SSL_* are set but ZHKH_KAFKA_SECURITY_PROTOCOL is "
                             f"{self.kafka_security_protocol}: use SSL or SASL_SSL")
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("ZHKH_KAFKA_SSL_KEYFILE needs ZHKH_KAFKA_SSL_CERTFILE")
        return self

    @property
    def group_id(self) -> str:
        return f"{self.group_prefix}.{self.service_name}"
