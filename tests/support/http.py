"""Plain HTTP calls for tests (stdlib urllib; loopback only). Error statuses are returned, not raised."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
            timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - loopback
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def json_call(method: str, url: str, body: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any]:
    status, raw = request(method, url, body, content_type)
    return status, json.loads(raw)


def get_json(url: str) -> tuple[int, Any]:
    return json_call("GET", url)
