"""The launcher's outage demo (issue contact-centre): an operator registers an emergency outage at the demo
house through the router's API with a printed token; a new appeal at that house is linked to it and its
citizen told the expected restore time at once (the appeal is still routed as usual); the outage is then
marked restored and its duration per house read back (the evidence for a recalculation under ПП 354)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from zhkh_contracts import AppealAssigned, AppealLinkedToOutage, AppealRegistered

from . import samples
from .follow import publish_and_follow

TZ = "Asia/Yekaterinburg"  # the sample directory's zone


async def outage_demo(cfg: Any, operator_token: str, timeout: float = 60.0) -> dict[str, str]:
    import httpx

    base = f"http://127.0.0.1:{cfg.port('router')}"
    auth = {"authorization": f"Bearer {operator_token}"}
    now = datetime.now(UTC).replace(microsecond=0)
    body = {"resource": "hot_water", "kind": "emergency", "houses": [str(samples.DEMO_HOUSE_GUID)],
            "party_id": "tgk-teplo", "starts_at": (now - timedelta(minutes=30)).isoformat(),
            "expected_restore_at": (now + timedelta(hours=6)).isoformat()}
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        r = await http.post("/api/v1/outages", json=body, headers={**auth, "Idempotency-Key": f"demo-outage-{run}"})
        r.raise_for_status()
        reg = r.json()
        oid = reg["outage_id"]
        back = datetime.fromisoformat(body["expected_restore_at"]).astimezone(ZoneInfo(TZ))
        print(f"-> outage API: an emergency hot_water outage registered at fias:{samples.DEMO_HOUSE_GUID} -> "
              f"{r.status_code} {reg['status']} (expected back {back:%Y-%m-%d %H:%M} {TZ})")

        seen = await _new_appeal_at_the_house(cfg, timeout)
        print(f"<- a new appeal at that house, {seen['number']}, answered at once with the restore time "
              f"{seen['restore']} (a notice; the appeal is still routed to {seen['party']} and timed as usual)")

        r = await http.post(f"/api/v1/outages/{oid}/restored", json={},
                            headers={**auth, "Idempotency-Key": f"demo-outage-{run}-restored"})
        r.raise_for_status()
        dur = (await http.get("/api/v1/outages/durations", params={"resource": "hot_water"}, headers=auth)).json()
        hours = next((row["duration_hours"] for row in dur["rows"] if row["outage_id"] == oid), None)
        print(f"-> outage API: restored -> {r.status_code} {r.json()['status']} (duration at the house {hours} h, "
              f"GET /api/v1/outages/durations?format=csv for the recalculation)")
    return {"outage": reg["status"], **seen}


async def _new_appeal_at_the_house(cfg: Any, timeout: float) -> dict[str, str]:
    raw = samples.raw_submission(text="Нет горячей воды с утра, когда дадут?")
    seen: dict[str, str] = {}
    async with contextlib.aclosing(publish_and_follow(cfg, raw, timeout)) as events:
        async for env in events:
            if isinstance(env.data, AppealRegistered):
                seen["number"] = env.data.appeal.registration_number
            elif isinstance(env.data, AppealAssigned):
                seen["party"] = env.data.party_id
            elif isinstance(env.data, AppealLinkedToOutage):
                at = env.data.expected_restore_at.astimezone(ZoneInfo(TZ))
                seen.update(number=env.data.registration_number, restore=f"{at:%Y-%m-%d %H:%M} {TZ}")
            if {"restore", "party"} <= set(seen):
                return seen
    raise TimeoutError(f"the appeal at the outage's house was not linked in {timeout}s; got {seen}")
