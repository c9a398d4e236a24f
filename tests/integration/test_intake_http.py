"""intake's HTTP ingress over real HTTP, broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from devtools import samples
from tests.support.http import json_call
from tests.support.kafka import TopicReader, headers_of
from tests.support.services import served, service_settings
from zhkh_contracts import Channel, Topics

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def ingress(infra, prefix, **overrides):  # noqa: ANN001, ANN201
    from intake.main import create_app
    from intake.settings import IntakeSettings

    async with served(create_app(service_settings(IntakeSettings, infra, prefix, **overrides))) as base:
        yield base


async def acall(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    return await asyncio.to_thread(json_call, *args, **kwargs)


def body(**kw) -> bytes:  # noqa: ANN003
    return samples.raw_submission(**kw).model_dump_json().encode()


async def test_submit_answers_with_the_registration_number_and_resend_is_safe(infra, prefix, mongo_db):
    async with ingress(infra, prefix) as base:
        b = body(source_id="web-1")
        status, first = await acall("POST", base + "/api/v1/appeals", b)
        assert status == 201, first
        assert first["status"] == "registered" and first["registration_number"].startswith("ZH-")
        status, again = await acall("POST", base + "/api/v1/appeals", b)
        assert (status, again["registration_number"]) == (201, first["registration_number"])
        status, st = await acall("GET", base + first["status_url"])
        assert status == 200 and st["registration_number"] == first["registration_number"]
        status, missing = await acall("GET", base + "/api/v1/appeals/status?channel=site_form&source_id=nope")
        assert status == 404 and missing["status"] == "not_found"
    assert await mongo_db.intake_appeals.count_documents({}) == 1


async def test_submit_answers_202_when_registration_takes_longer(infra, prefix):
    async with ingress(infra, prefix, ingress_wait_s=0) as base:
        status, resp = await acall("POST", base + "/api/v1/appeals", body(source_id="web-slow"))
        assert status == 202 and resp["status"] == "accepted"
        for _ in range(100):
            status, st = await acall("GET", base + resp["status_url"])
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200 and st["registration_number"].startswith("ZH-")


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "bad_json"),
        ("нет".encode("cp1251"), "application/json", 400, "bad_encoding"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
        (b'{"channel": "site_form"}', "application/json", 422, "missing_field"),
        (None, "application/json", 422, "no_consent"),
        (b"x" * 300_000, "application/json", 413, "too_large"),
        (body(channel=Channel.GIS), "application/json", 403, "forged_source"),  # the gis channel is gis_sync's alone
    ],
    ids=["bad-json", "cp1251", "text-plain", "missing-fields", "no-consent", "too-large", "gis-channel"],
)
async def test_bad_requests_get_a_clear_4xx_and_a_copy_in_the_rejected_topic(infra, prefix, payload, content_type, status, code):
    if payload is None:
        raw = samples.raw_submission().model_dump(mode="json")
        raw["consent"]["personal_data"] = False
        payload = json.dumps(raw).encode()
    async with ingress(infra, prefix) as base:
        got, resp = await acall("POST", base + "/api/v1/appeals", payload, content_type)
    assert got == status and resp["error"]["code"] == code
    assert resp["error"]["message"]  # Russian, for the citizen
    if code == "missing_field":
        assert "text" in resp["error"]["fields"]
    async with TopicReader(infra.bootstrap, Topics(prefix).rejected) as rej:
        (copy,) = await rej.wait_for(lambda r: len(r) >= 1)
    assert headers_of(copy)["x-dlq-reason"].decode() == code
    assert headers_of(copy)["x-dlq-service"] == b"intake-http"
    if code != "too_large":
        assert copy.value == payload
    channel = Channel.GIS if code == "forged_source" else samples.raw_submission().channel
    async with TopicReader(infra.bootstrap, Topics(prefix).raw(channel)) as raw_topic:
        assert await raw_topic.settle(0.5) == []  # nothing bad reached the raw topic
