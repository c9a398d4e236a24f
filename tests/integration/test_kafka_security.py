"""Kafka authentication against a real broker.

* The embedded broker (noida-db 0.2.3) cannot enforce anything: it accepts unauthenticated clients,
  offers SASL PLAIN only and accepts any user name and password with it, refuses SCRAM as an
  unsupported mechanism, and has no authorizer (CreateAcls: SECURITY_DISABLED). These tests pin that
  finding (docs/operations.md, "Transport security"), so a noida-db that learns SCRAM or ACLs shows up
  here, and they show that a client built by ``client_kwargs`` really speaks SCRAM-SHA-512.
* Against a broker that enforces SCRAM (e.g. compose's, host listener 127.0.0.1:29092), given by
  ZHKH_TEST_KAFKA_SASL_BOOTSTRAP, ZHKH_TEST_KAFKA_SASL_USERNAME and ZHKH_TEST_KAFKA_SASL_PASSWORD
  (and ZHKH_TEST_KAFKA_SASL_TOPIC, a topic that user may write): an unauthenticated client and a wrong
  password are refused, the right password works. Skipped without them: none runs here.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.admin import ApiVersionRequest, CreateAclsRequest

from zhkh_runtime.kafka import client_kwargs
from zhkh_runtime.settings import RuntimeSettings

pytestmark = pytest.mark.integration

SASL_HANDSHAKE, SASL_AUTHENTICATE, SECURITY_DISABLED = 17, 36, 54


def embedded_only(infra) -> None:  # noqa: ANN001
    if infra.kafka is None:
        pytest.skip("these tests describe the embedded noida-db; ZHKH_TEST_KAFKA_BOOTSTRAP points elsewhere")


def sasl_settings(bootstrap: str, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> RuntimeSettings:
    return RuntimeSettings(kafka_bootstrap=bootstrap, kafka_security_protocol="SASL_PLAINTEXT",
                           kafka_sasl_mechanism=mechanism, kafka_sasl_username=user, kafka_sasl_password=password)


async def produce_once(kwargs: dict, topic: str) -> int:
    producer = AIOKafkaProducer(**kwargs, request_timeout_ms=5000, acks="all")
    try:
        await asyncio.wait_for(producer.start(), 20)
        md = await asyncio.wait_for(producer.send_and_wait(topic, b"probe"), 20)
        return md.offset
    finally:
        await producer.stop()


async def test_embedded_broker_offers_plain_only_and_refuses_scram(infra, caplog):
    embedded_only(infra)
    client = AIOKafkaClient(bootstrap_servers=infra.bootstrap)
    await client.bootstrap()
    try:
        node = next(iter(client.cluster.brokers())).nodeId
        versions = {k: (lo, hi) for k, lo, hi in (await client.send(node, ApiVersionRequest())).api_versions}
        assert SASL_HANDSHAKE in versions and SASL_AUTHENTICATE in versions  # the SASL APIs are there...
    finally:
        await client.close()
    # ...but a SCRAM-SHA-512 client, as the services build it, cannot log in: no such mechanism
    kwargs = client_kwargs(sasl_settings(infra.bootstrap, "zhkh-router", "any"))
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    caplog.set_level("ERROR", logger="aiokafka")
    with pytest.raises(KafkaConnectionError):
        await produce_once(kwargs, f"t{uuid.uuid4().hex[:8]}.probe")
    assert "does not support SCRAM-SHA-512 sasl mechanism. Enabled mechanisms are: ['PLAIN']" in caplog.text


async def test_embedded_broker_enforces_nothing(infra):
    """No authentication is required and PLAIN takes any password: no use as a trust boundary."""
    embedded_only(infra)
    topic = f"t{uuid.uuid4().hex[:8]}.probe"
    assert await produce_once({"bootstrap_servers": infra.bootstrap}, topic) >= 0  # unauthenticated
    wrong = client_kwargs(sasl_settings(infra.bootstrap, "nobody", f"wrong-{uuid.uuid4()}", mechanism="PLAIN"))
    assert await produce_once(wrong, topic) >= 0  # any user, any password


async def test_embedded_broker_has_no_authorizer(infra):
    embedded_only(infra)
    client = AIOKafkaClient(bootstrap_servers=infra.bootstrap)
    await client.bootstrap()
    try:
        node = next(iter(client.cluster.brokers())).nodeId
        # ALLOW (3) WRITE (4) on the literal (3) topic (2) "x" for User:nobody
        resp = await client.send(node, CreateAclsRequest(2, "x", 3, "User:nobody", "*", 4, 3))
        assert [code for code, _ in resp.creation_responses] == [SECURITY_DISABLED]
    finally:
        await client.close()


# ---- a broker that enforces SCRAM (not available on this machine: no Docker engine, no Kafka) -----

SASL_ENV = ("ZHKH_TEST_KAFKA_SASL_BOOTSTRAP", "ZHKH_TEST_KAFKA_SASL_USERNAME", "ZHKH_TEST_KAFKA_SASL_PASSWORD",
            "ZHKH_TEST_KAFKA_SASL_TOPIC")
needs_sasl_broker = pytest.mark.skipif(not all(os.environ.get(k) for k in SASL_ENV),
                                       reason="no SCRAM broker given (" + ", ".join(SASL_ENV) + ")")


@needs_sasl_broker
async def test_scram_broker_refuses_an_unauthenticated_client():
    bootstrap, topic = os.environ["ZHKH_TEST_KAFKA_SASL_BOOTSTRAP"], os.environ["ZHKH_TEST_KAFKA_SASL_TOPIC"]
    with pytest.raises((KafkaError, asyncio.TimeoutError)):
        await produce_once(client_kwargs(RuntimeSettings(kafka_bootstrap=bootstrap)), topic)


@needs_sasl_broker
async def test_scram_broker_refuses_a_wrong_password_and_takes_the_right_one():
    bootstrap, topic = os.environ["ZHKH_TEST_KAFKA_SASL_BOOTSTRAP"], os.environ["ZHKH_TEST_KAFKA_SASL_TOPIC"]
    user = os.environ["ZHKH_TEST_KAFKA_SASL_USERNAME"]
    with pytest.raises((KafkaError, asyncio.TimeoutError)):
        await produce_once(client_kwargs(sasl_settings(bootstrap, user, f"wrong-{uuid.uuid4()}")), topic)
    good = client_kwargs(sasl_settings(bootstrap, user, os.environ["ZHKH_TEST_KAFKA_SASL_PASSWORD"]))
    assert await produce_once(good, topic) >= 0
