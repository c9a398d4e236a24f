"""The launcher's scorecard demo (issue contact-centre): an analyst reads the demo party's row of the per-party
scorecards (analytics read model, this month) with a printed token."""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def scorecard_demo(cfg: Any, analyst_token: str, party: str = "uk-zarechye", timeout: float = 30.0) -> dict[str, Any]:
    import httpx

    url = f"http://127.0.0.1:{cfg.port('analytics')}/api/v1/analytics/parties"
    row: dict[str, Any] | None = None
    async with httpx.AsyncClient(timeout=10) as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the read model follows the lifecycle topic: wait for the answers
            r = await http.get(url, headers={"authorization": f"Bearer {analyst_token}"})
            r.raise_for_status()
            rows = [x for x in r.json()["parties"] if x["party_id"] == party]
            row = rows[-1] if rows else None  # the latest month
            if row is not None and row["answered"] > 0:
                break
            await asyncio.sleep(0.3)
    if row is None:
        raise TimeoutError(f"no scorecard for {party} in {timeout}s")
    def shown(v: Any) -> str:
        return "-" if v is None else str(v)

    print(f"-> analyst GET /api/v1/analytics/parties -> {r.status_code}: {party} {row['month']}: assigned "
          f"{row['assigned']}, answered {row['answered']}, median {shown(row['median_hours_to_answer'])} h to the first "
          f"answer, overdue share {shown(row['overdue_share'])}, satisfaction {shown(row['satisfaction'])}")
    return row
