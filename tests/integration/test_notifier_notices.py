"""Issue 16's notices end to end: intake and the router on the real broker (the sample directory), the
notifier's handlers on the real database fed with the records the router published, its delivery loop
sending by a real SMTP server (the citizen) and a real HTTP receiver (the parties' alert webhook)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from devtools import samples
from tests.integration.test_notifier_delivery import Notifier
from tests.integration.test_router import act, system
from tests.support.clock import Clock
from tests.support.receivers import HttpReceiver, smtp_server
from tests.support.services import publish_raw
from zhkh_contracts import AppealAssigned, AppealRegistered, AssignmentCause, Category, PartyRejectedNotResponsible

pytestmark = pytest.mark.integration


async def test_a_forwarded_appeal_names_the_new_body_to_the_citizen_and_each_party_is_told(infra, prefix, mongo_db):
    controller, sink, port = smtp_server()
    http = HttpReceiver()
    try:
        async with system(infra, prefix) as (_base, f):
            raw = samples.raw_submission(category=Category.HOT_WATER, phone="+79120000016", email="petrova@example.ru")
            await publish_raw(infra, prefix, raw)
            await f.until(lambda f: any(isinstance(e.data, AppealRegistered)
                                        and e.data.appeal.source_id == raw.source_id for e in f.events()))
            reg = next(e for e in f.events() if isinstance(e.data, AppealRegistered)
                       and e.data.appeal.source_id == raw.source_id)
            aid = str(reg.data.appeal.appeal_id)
            first = await f.assigned(aid)
            assert (first.party_id, first.party_name) == ("uk-zarechye", 'ООО "УК Заречье"')
            await act(infra, prefix, PartyRejectedNotResponsible(appeal_id=uuid.UUID(aid), actor="party:uk-zarechye",
                                                                 reason="прямые договоры"))
            moved = await f.assigned(aid, 2)
            assert (moved.party_id, moved.cause, moved.party_name) == (
                "tgk-teplo", AssignmentCause.REROUTE, 'ПАО "Т Плюс" (тепло, ГВС)')
            envs = [e for e in f.events(aid) if isinstance(e.data, (AppealRegistered, AppealAssigned))]

        clock = Clock(datetime.now(UTC))
        svc = Notifier(mongo_db, prefix, clock, smtp_port=port, http=http, party_alerts_webhook=http.url("/parties"))
        for env in envs:  # the records as the router and intake published them
            await svc.handle(env)
        assert await svc.deliver() == 4  # registered + forwarded (citizen), two "assigned" (parties)
        by_subject = {m["Subject"]: m for m in sink.messages}
        number = reg.data.appeal.registration_number
        forwarded = by_subject[f'Обращение {number} направлено в ПАО "Т Плюс" (тепло, ГВС)']
        assert forwarded["To"] == "petrova@example.ru"
        text = forwarded.get_content()
        assert f'Ваше обращение {number} направлено для рассмотрения в ПАО "Т Плюс" (тепло, ГВС).' in text
        parties = {body["party_id"]: body for path, _h, body in http.requests if path == "/parties"}
        assert set(parties) == {"uk-zarechye", "tgk-teplo"}
        assert parties["uk-zarechye"]["subject"] == f"Новое обращение {number}"
        assert parties["tgk-teplo"]["subject"] == f"Вам передано обращение {number}"
        assert all(b["kind"] == "assigned" and "Срок ответа:" in b["text"] and b["due_at"] for b in parties.values())
    finally:
        controller.stop()
        http.close()
