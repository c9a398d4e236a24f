from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def runtime_settings(infra, prefix: str, service: str = "probe", **overrides):  # noqa: ANN001, ANN201
    from tests.support.services import service_settings
    from zhkh_runtime.settings import RuntimeSettings

    return service_settings(RuntimeSettings, infra, prefix, service_name=service, **overrides)
