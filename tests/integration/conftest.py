from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def runtime_settings(infra, prefix: str, service: str = "probe", **overrides):  # noqa: ANN001, ANN201
    from zhkh_runtime.settings import RuntimeSettings

    values = dict(
        service_name=service,
        kafka_bootstrap=infra.bootstrap,
        mongo_uri=infra.mongo_uri,
        mongo_db=prefix,
        topic_prefix=prefix,
        group_prefix=prefix,
        retry_attempts=3,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        graceful_timeout_s=3.0,
    )
    values.update(overrides)
    return RuntimeSettings(**values)
