"""The launcher's paper-letter demo (issue contact-centre): a written appeal whose author gave only a postal
address is answered by its party through the router's API; the notifier turns the answer into a print-ready
PDF letter in its print queue, which an operator downloads and marks posted with a printed token."""

from __future__ import annotations

import contextlib
from typing import Any

from zhkh_contracts import AppealAssigned, Category, Channel

from . import samples
from .follow import poll, publish_and_follow


async def letter_demo(cfg: Any, party_token: str, operator_token: str, timeout: float = 60.0) -> dict[str, Any]:
    import httpx

    raw = samples.raw_submission(channel=Channel.PAPER, category=Category.COMMON_PROPERTY, phone=None, email=None,
                                 text="Протекает крыша над третьим подъездом, просим отремонтировать.",
                                 postal_address="614000, г. Пермь, ул. Ленина, д. 10, кв. 15")
    number = party = None
    async with contextlib.aclosing(publish_and_follow(cfg, raw, timeout)) as events:
        async for env in events:
            if isinstance(env.data, AppealAssigned):
                number, party = env.data.registration_number, env.data.party_id
                break
    if number is None:
        raise TimeoutError(f"the paper appeal was not assigned in {timeout}s")
    router = f"http://127.0.0.1:{cfg.port('router')}"
    notifier = f"http://127.0.0.1:{cfg.port('notifier')}"
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{router}/api/v1/party/appeals/{number}/answer",
                            json={"text": "Кровля над третьим подъездом отремонтирована."},
                            headers={"authorization": f"Bearer {party_token}", "Idempotency-Key": f"demo-{number}-answer"})
        r.raise_for_status()
        print(f"-> a paper appeal with only a postal address, {number}, answered by {party} through the API "
              f"-> {r.status_code} {r.json()['status']}")
        staff = {"authorization": f"Bearer {operator_token}"}

        async def queued() -> dict[str, Any] | None:
            r = await http.get(f"{notifier}/api/v1/letters", params={"state": "queued", "limit": 200}, headers=staff)
            r.raise_for_status()
            return next((x for x in r.json()["letters"] if x["registration_number"] == number), None)

        letter = await poll(queued, lambda x: x is not None, timeout)
        if letter is None:
            raise TimeoutError(f"no letter for {number} in the print queue in {timeout}s")
        pdf = await http.get(f"{notifier}/api/v1/letters/{letter['letter_id']}/pdf", headers=staff)
        pdf.raise_for_status()
        pages = pdf.content.count(b"/Type /Page") - pdf.content.count(b"/Type /Pages")
        posted = await http.post(f"{notifier}/api/v1/letters/{letter['letter_id']}/posted", headers=staff)
        posted.raise_for_status()
        print(f"<- a print-ready answer letter in the notifier's print queue: GET /api/v1/letters/…/pdf -> "
              f"{pdf.status_code} {pdf.headers['content-type']} ({pages} page, {len(pdf.content) // 1024} KiB); "
              f"marked {posted.json()['state']} by the operator")
    return {"number": number, "letter": letter["letter_id"], "pages": pages}
