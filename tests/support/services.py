"""Run the real service apps for integration tests: in-process, or as their own process (to kill -9)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn

from devtools import embedded, samples
from tests.support.kafka import produce
from zhkh_contracts import RawAppealSubmitted, Topics


def service_settings(cls: type, infra: Any, prefix: str, **overrides: Any) -> Any:
    values = dict(
        kafka_bootstrap=infra.bootstrap, mongo_uri=infra.mongo_uri, mongo_db=prefix, topic_prefix=prefix,
        group_prefix=prefix, retry_attempts=3, retry_initial_s=0.05, retry_max_s=0.2, graceful_timeout_s=3.0,
    )
    values.update(overrides)
    return cls(**values)


def start_process(service: str, infra: Any, prefix: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``python -m <service>`` on the test broker and database (its own session, so it can be killed
    with its group), static membership so a restart takes over at once, output appended to ``log``."""
    full = dict(os.environ, ZHKH_KAFKA_BOOTSTRAP=infra.bootstrap, ZHKH_MONGO_URI=infra.mongo_uri, ZHKH_MONGO_DB=prefix,
                ZHKH_TOPIC_PREFIX=prefix, ZHKH_GROUP_PREFIX=prefix, ZHKH_GROUP_INSTANCE_ID=f"{service}-1",
                ZHKH_HTTP_PORT=str(embedded.free_port()), ZHKH_LOG_LEVEL="WARNING", **env)
    return subprocess.Popen([sys.executable, "-m", service], env=full, cwd=Path(__file__).resolve().parents[2],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve an AsgiFastStream app over real HTTP on a free port (uvicorn runs its lifespan)."""
    port = embedded.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def publish_raw(infra: Any, prefix: str, raw: RawAppealSubmitted, event_id: Any = None) -> None:
    topic, key, value, headers = samples.raw_record(raw, event_id=event_id, topics=Topics(prefix))
    await produce(infra.bootstrap, topic, value, key, headers)
