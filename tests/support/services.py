"""Run the real service apps in-process for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
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
