"""Shared fixtures.

``infra`` is the real Kafka-protocol broker and MongoDB-protocol server for the integration and
e2e suites: the embedded noida-db and SecantusDB, started once per session on free ports in a
temporary directory, or external ones when ZHKH_TEST_KAFKA_BOOTSTRAP and ZHKH_TEST_MONGO_URI are
set (e.g. the docker-compose Kafka and MongoDB). Each test isolates itself with its own topic
prefix, consumer groups and database name.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import embedded


@dataclass
class Infra:
    bootstrap: str
    mongo_uri: str
    kafka: embedded.ServerProcess | None = None
    mongo: embedded.ServerProcess | None = None


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    ext_kafka, ext_mongo = os.environ.get("ZHKH_TEST_KAFKA_BOOTSTRAP"), os.environ.get("ZHKH_TEST_MONGO_URI")
    if ext_kafka and ext_mongo:
        yield Infra(ext_kafka, ext_mongo)
        return
    base: Path = tmp_path_factory.mktemp("infra")
    kport, mport = embedded.free_port(), embedded.free_port()
    kafka = embedded.kafka_server(base / "kafka", kport, base / "logs")
    mongo = embedded.mongo_server(base / "mongo", mport, base / "logs")
    (base / "kafka").mkdir()
    (base / "mongo").mkdir()
    kafka.start()
    mongo.start()
    try:
        infra = Infra(f"127.0.0.1:{kport}", embedded.mongo_uri(mport), kafka, mongo)
        asyncio.run(_wait(infra))
        yield infra
    finally:
        mongo.stop()
        kafka.stop()


async def _wait(infra: Infra) -> None:
    await asyncio.gather(
        embedded.wait_kafka(infra.bootstrap, server=infra.kafka), embedded.wait_mongo(infra.mongo_uri, server=infra.mongo)
    )


@dataclass
class Issuer:
    """The dev OIDC issuer as a real server (its JWKS over HTTP); ``mint`` signs with its key."""

    url: str
    dev: object  # devtools.dev_issuer.DevIssuer

    def token(self, subject: str, *roles: str, **kw: object) -> str:
        return self.dev.mint(subject, list(roles), **kw)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    from devtools.dev_issuer import DevIssuer

    base: Path = tmp_path_factory.mktemp("issuer")
    port = embedded.free_port()
    url = f"http://127.0.0.1:{port}"
    key = base / "key.json"
    dev = DevIssuer.with_key_file(url, key)
    srv = embedded.ServerProcess(name="dev_issuer", port=port, log_path=base / "issuer.log", argv=[
        sys.executable, "-m", "devtools.dev_issuer", "--port", str(port), "--key-file", str(key)])
    srv.start()
    try:
        asyncio.run(embedded.wait_port(port, server=srv))
        yield Issuer(url, dev)
    finally:
        srv.stop()


@pytest.fixture
def prefix() -> str:
    """A topic/group/database prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def mongo_db(infra: Infra, prefix: str) -> AsyncIterator[object]:
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    yield client[prefix]
    await client.drop_database(prefix)
    await client.close()
