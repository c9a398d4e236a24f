"""Plain HTTP calls for tests (stdlib urllib; loopback only). Error statuses are returned, not raised."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
            timeout: float = 30, token: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    h = {"content-type": content_type, **(headers or {})}
    if token:
        h["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - loopback
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def json_call(method: str, url: str, body: bytes | None = None, content_type: str = "application/json",
              token: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, raw = request(method, url, body, content_type, token=token, headers=headers)
    return status, json.loads(raw)


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    return json_call("GET", url, token=token)


def post_json(url: str, body: Any, token: str | None = None, key: str | None = None) -> tuple[int, Any]:
    """POST a JSON body; ``key``: the Idempotency-Key header."""
    return json_call("POST", url, json.dumps(body).encode() if body is not None else None, token=token,
                     headers={"Idempotency-Key": key} if key else None)


def api_call(method: str, url: str, body: Any = None, token: str | None = None, key: str | None = None,
             timeout: float = 30) -> tuple[int, Any]:
    """A call to one of our HTTP APIs: ``body`` sent as JSON, ``token`` as bearer, ``key`` as the
    Idempotency-Key; the answer parsed as JSON (a body that is not JSON: its text)."""
    raw = json.dumps(body).encode() if body is not None else None
    status, data = request(method, url, raw, token=token, headers={"Idempotency-Key": key} if key else None,
                           timeout=timeout)
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data.decode("utf-8", "replace")
