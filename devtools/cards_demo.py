"""The launcher's control-card demo (issue contact-centre, "поадресный контроль"): the demo appeals about hot
water at the demo house opened a per-house control card in the heating season; the outage demo's restoration
reported it; an operator confirms the restoration (a call-back to a resident) with a printed token, which is the
only way a card closes. Outside the heating season no card opens, and the demo says so."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import samples
from .follow import poll


async def control_card_demo(cfg: Any, operator_token: str, timeout: float = 30.0) -> dict[str, Any] | None:
    import httpx

    house = f"fias:{samples.DEMO_HOUSE_GUID}"
    auth = {"authorization": f"Bearer {operator_token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.port('router')}", timeout=10) as http:
        async def the_card() -> dict[str, Any] | None:
            r = await http.get("/api/v1/control-cards", params={"resource": "hot_water", "limit": 100}, headers=auth)
            r.raise_for_status()
            return next((c for c in r.json()["cards"] if c["house_key"] == house and c["state"] != "closed"), None)

        # the outage's restoration reaches the card in the router's next batch
        card = await poll(the_card, lambda c: c is None or c["state"] == "restoration_reported", timeout)
        if card is None:
            print(f"<- no control card for {house}: outside the heating season (ZHKH_HEATING_SEASON_START..END)")
            return None
        tz = ZoneInfo(card["timezone"])
        target = datetime.fromisoformat(card["target_at"]).astimezone(tz)
        print(f"<- control card for {house} hot_water (district {card['district_id']}): {card['appeals']} appeals, "
              f"same-day target {target:%Y-%m-%d %H:%M} {card['timezone']}, state {card['state']}"
              f"{' by the outage' if card['reported_via'] == 'outage' else ''}")
        r = await http.post(f"/api/v1/control-cards/{card['card_id']}/confirm", json={"method": "call_back"},
                            headers={**auth, "Idempotency-Key": f"demo-card-{uuid.uuid4().hex[:8]}"})
        r.raise_for_status()
        out = r.json()
        after = (await http.get(f"/api/v1/control-cards/{card['card_id']}", headers=auth)).json()
        print(f"-> control-card API: POST .../confirm (call_back) -> {r.status_code} {out['status']} "
              f"(card {after['state']}, confirmed by {after['confirmed_by']})")
        return after
