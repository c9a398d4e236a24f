"""The launcher's scorecard demo (issue contact-centre): an analyst reads the demo party's row of the per-party
scorecards (analytics read model, this month) with a printed token."""

from __future__ import annotations

from typing import Any

from .follow import poll


async def scorecard_demo(cfg: Any, analyst_token: str, party: str = "uk-zarechye", timeout: float = 30.0) -> dict[str, Any]:
    import httpx

    url = f"http://127.0.0.1:{cfg.port('analytics')}/api/v1/analytics/parties"
    async with httpx.AsyncClient(timeout=10) as http:
        async def latest_month() -> tuple[int, dict[str, Any] | None]:
            r = await http.get(url, headers={"authorization": f"Bearer {analyst_token}"})
            r.raise_for_status()
            rows = [x for x in r.json()["parties"] if x["party_id"] == party]
            return r.status_code, rows[-1] if rows else None

        # the read model follows the lifecycle topic: wait for the answers
        status, row = await poll(latest_month, lambda got: got[1] is not None and got[1]["answered"] > 0, timeout)
    if row is None:
        raise TimeoutError(f"no scorecard for {party} in {timeout}s")

    def shown(v: Any) -> str:
        return "-" if v is None else str(v)

    print(f"-> analyst GET /api/v1/analytics/parties -> {status}: {party} {row['month']}: assigned "
          f"{row['assigned']}, answered {row['answered']}, median {shown(row['median_hours_to_answer'])} h to the first "
          f"answer, overdue share {shown(row['overdue_share'])}, satisfaction {shown(row['satisfaction'])}")
    return row
