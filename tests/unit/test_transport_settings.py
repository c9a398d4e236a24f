"""Kafka and MongoDB transport security settings: one function builds every Kafka client's
arguments, FastStream's broker gets the same, secrets never show in a repr, a log or an error."""

from __future__ import annotations

import ssl

import pytest
from faststream.kafka.security import parse_security
from pydantic import ValidationError

from zhkh_runtime.kafka import broker_security, client_kwargs, make_broker
from zhkh_runtime.mongo import mongo_kwargs, redact_uri
from zhkh_runtime.settings import RuntimeSettings

SECRET = "s3cret-pw"


def settings(**kw: object) -> RuntimeSettings:
    return RuntimeSettings(kafka_bootstrap="k1:9093,k2:9093", **kw)


def test_plaintext_is_the_default():
    s = RuntimeSettings()
    assert client_kwargs(s) == {"bootstrap_servers": s.kafka_bootstrap, "security_protocol": "PLAINTEXT"}
    assert broker_security(s) is None


def test_sasl_ssl_scram_512():
    s = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="zhkh-router", kafka_sasl_password=SECRET)
    kw = client_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL"
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"  # the default mechanism
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("zhkh-router", SECRET)
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    # FastStream's broker is given the same settings as a security object
    parsed = parse_security(broker_security(s))
    assert {k: parsed[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "zhkh-router", "sasl_plain_password": SECRET}
    assert isinstance(parsed["ssl_context"], ssl.SSLContext)
    make_broker(s)  # accepted by KafkaBroker


def test_sasl_plaintext_has_no_ssl_context_and_other_mechanisms():
    s = settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
                 kafka_sasl_username="u", kafka_sasl_password=SECRET)
    kw = client_kwargs(s)
    assert "ssl_context" not in kw and kw["sasl_mechanism"] == "SCRAM-SHA-256"
    assert parse_security(broker_security(s))["security_protocol"] == "SASL_PLAINTEXT"
    assert parse_security(broker_security(s))["sasl_mechanism"] == "SCRAM-SHA-256"


def test_ssl_only_with_a_ca_file(tmp_path):
    import subprocess

    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    out = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                          "-days", "1", "-subj", "/CN=test-ca"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("openssl not available")
    s = settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(cert))
    kw = client_kwargs(s)
    assert kw["security_protocol"] == "SSL" and "sasl_mechanism" not in kw
    assert kw["ssl_context"].get_ca_certs()[0]["subject"] == ((("commonName", "test-ca"),),)
    assert parse_security(broker_security(s))["security_protocol"] == "SSL"
    with pytest.raises(FileNotFoundError):
        client_kwargs(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "missing.pem")))


@pytest.mark.parametrize("bad", [
    {"kafka_security_protocol": "SASL_SSL"},  # no credentials
    {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"},  # no password
    {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": SECRET},  # no username
    {"kafka_security_protocol": "PLAINTEXT", "kafka_ssl_cafile": "/ca.pem"},  # TLS files without TLS
    {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/k.pem"},  # a key without its certificate
    {"kafka_security_protocol": "TLS"},
    {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI", "kafka_sasl_username": "u",
     "kafka_sasl_password": SECRET},
])
def test_incomplete_or_unknown_settings_are_refused_without_showing_the_secret(bad):
    with pytest.raises(ValidationError) as err:
        settings(**bad)
    assert SECRET not in str(err.value)


def test_secrets_never_show(monkeypatch):
    monkeypatch.setenv("ZHKH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ZHKH_KAFKA_SASL_USERNAME", "zhkh-intake")
    monkeypatch.setenv("ZHKH_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("ZHKH_MONGO_URI", f"mongodb://zhkh:{SECRET}@mongo:27017/?replicaSet=rs0")
    s = RuntimeSettings()
    assert s.kafka_sasl_password is not None and s.kafka_sasl_password.get_secret_value() == SECRET
    for shown in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert SECRET not in shown
    assert redact_uri(s.mongo_uri.get_secret_value()) == "mongodb://zhkh:***@mongo:27017/?replicaSet=rs0"


def test_runtime_logs_no_secret(monkeypatch):
    """The start-up line names the protocol and the principal, never the password or the Mongo URI."""
    import asyncio

    from structlog.testing import capture_logs

    from zhkh_runtime.app import ServiceRuntime

    s = RuntimeSettings(service_name="probe", create_topics=False, kafka_security_protocol="SASL_PLAINTEXT",
                        kafka_sasl_username="zhkh-probe", kafka_sasl_password=SECRET,
                        mongo_uri=f"mongodb://zhkh:{SECRET}@127.0.0.1:1/?serverSelectionTimeoutMS=100")
    rt = ServiceRuntime(s)

    async def no_publisher() -> None:
        return None

    monkeypatch.setattr(rt.publisher, "start", no_publisher)
    with capture_logs() as logs:
        asyncio.run(rt._start())
    starting = next(e for e in logs if e["event"] == "starting")
    assert starting["kafka_user"] == "zhkh-probe" and starting["kafka_security"] == "SASL_PLAINTEXT"
    assert SECRET not in repr(logs)


def test_mongo_tls_options():
    assert mongo_kwargs(RuntimeSettings()) == {}
    kw = mongo_kwargs(RuntimeSettings(mongo_tls_ca_file="/etc/zhkh/mongo-ca.pem", mongo_tls_cert_key_file="/etc/zhkh/client.pem"))
    assert kw == {"tls": True, "tlsCAFile": "/etc/zhkh/mongo-ca.pem", "tlsCertificateKeyFile": "/etc/zhkh/client.pem"}


def test_mongo_client_gets_the_uri_and_tls(monkeypatch):
    from zhkh_runtime import mongo

    seen: dict = {}

    class FakeClient:
        def __init__(self, uri: str, **kw: object) -> None:
            seen.update(uri=uri, **kw)

    monkeypatch.setattr(mongo, "AsyncMongoClient", FakeClient)
    mongo.make_mongo(RuntimeSettings(mongo_uri=f"mongodb://zhkh:{SECRET}@db/?authSource=zhkh", mongo_tls_ca_file="/ca.pem"))
    assert seen["uri"] == f"mongodb://zhkh:{SECRET}@db/?authSource=zhkh"
    assert seen["tls"] is True and seen["tlsCAFile"] == "/ca.pem"


def test_every_kafka_client_of_the_services_and_tools_takes_the_security_settings():
    """No aiokafka client is built from a bare bootstrap address in the services, the launcher's
    clients or the DLQ replay tool: all go through client_kwargs (the embedded-broker helpers in
    devtools/embedded.py, the tests and the benchmarks talk to the embedded broker only)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = [*sorted((root / "services").rglob("*.py")), root / "devtools" / "launcher.py", root / "deploy" / "dlq_replay.py"]
    offenders = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"AIOKafka(?:Producer|Consumer|AdminClient)\(([^)]*)", text):
            if "bootstrap_servers=" in m[1]:
                offenders.append(f"{path.relative_to(root)}: {m[0][:80]}")
    assert not offenders, offenders
