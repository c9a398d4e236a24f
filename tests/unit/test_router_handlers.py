"""The router's behaviour through the engine on its in-memory unit of work (no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devtools import samples
from intake.classifier import Classifier
from intake.service import build_appeal, prepare
from router.directory import parse
from router.rules import RoutingRules
from router.service import RouterService
from router.uow import MemoryRouterUoW
from tests.support.engine import envelope, events, make_engine, rec
from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealJoinedIncident,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    AppealTransitionRejected,
    AssignmentCause,
    CitizenComplained,
    CitizenRatedAnswer,
    CitizenWithdrew,
    DeadlineExpired,
    DeadlinePlanned,
    OperatorAssigned,
    PartyAccepted,
    PartyAnswered,
    PartyRejectedNotResponsible,
    PartyRequestedExtension,
)
from zhkh_runtime.engine import MemoryTracking

SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "sample_directory"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
S = AppealStatus
CLASSIFIER = Classifier()
DIRECTORY = parse(sorted(SAMPLE.glob("*.csv")))


class Router:
    def __init__(self) -> None:
        self.uow = MemoryRouterUoW(DIRECTORY)
        self.tracking = MemoryTracking(self.uow)
        service = RouterService(RoutingRules.load(), "fallback:ops", clock=lambda: NOW)
        self.engine, self.pub = make_engine("router", service.handlers(), self.tracking)

    async def feed(self, *data: Any) -> list[Any]:
        before = len(self.pub.records)
        await self.engine.process([rec(envelope(d)) for d in data])
        return events(self.pub)[before:]

    async def register(self, category: Any = None, number: str = "ZH-2026-0000001", **kw: Any) -> uuid.UUID:
        raw = samples.raw_submission(**({"category": category} if category else {}))
        appeal = build_appeal(prepare(raw), uuid.uuid4(), number, NOW, CLASSIFIER, **kw)
        await self.feed(AppealRegistered(appeal=appeal))
        return appeal.appeal_id

    def status(self, appeal_id: uuid.UUID) -> AppealStatus:
        return self.uow.appeals.states[str(appeal_id)].status


async def test_registration_routes_by_the_directory_with_supervisor_and_timezone():
    r = Router()
    aid = await r.register()
    assigned, changed = events(r.pub)
    assert isinstance(assigned, AppealAssigned) and isinstance(changed, AppealStatusChanged)
    assert (assigned.party_id, assigned.reason, assigned.cause) == ("uk-zarechye", "house_services_to_managing_org", AssignmentCause.RULE)
    assert (assigned.party_timezone, assigned.supervisor_party_id, assigned.district_id) == ("Asia/Yekaterinburg", "adm-leninsky", "d-leninsky")
    assert r.status(aid) is S.ASSIGNED


async def test_a_replayed_registration_with_another_event_id_routes_nothing():
    r = Router()
    raw = samples.raw_submission()
    appeal = build_appeal(prepare(raw), uuid.uuid4(), "ZH-2026-0000001", NOW, CLASSIFIER)
    await r.feed(AppealRegistered(appeal=appeal))
    assert await r.feed(AppealRegistered(appeal=appeal)) == []


async def test_full_walk_through_the_state_machine():
    r = Router()
    aid = await r.register()
    for action, status in [
        (PartyAccepted(appeal_id=aid, actor="party:uk-zarechye"), S.IN_PROGRESS),
        (PartyAnswered(appeal_id=aid, actor="party:uk-zarechye", text="Вода будет завтра"), S.ANSWERED),
        (CitizenRatedAnswer(appeal_id=aid, actor=f"citizen:{aid}", satisfied=False), S.REOPENED),
        (CitizenComplained(appeal_id=aid, actor=f"citizen:{aid}", text="Воды нет"), S.ASSIGNED),
        (PartyAnswered(appeal_id=aid, actor="party:adm-leninsky", text="Подача восстановлена"), S.ANSWERED),
        (CitizenRatedAnswer(appeal_id=aid, actor=f"citizen:{aid}", satisfied=True), S.CLOSED),
    ]:
        out = await r.feed(action)
        assert not any(isinstance(e, AppealTransitionRejected) for e in out), out
        assert r.status(aid) is status
    assert [e.text for e in events(r.pub) if isinstance(e, AppealAnswered)] == ["Вода будет завтра", "Подача восстановлена"]


async def test_refusals_are_events_with_codes_and_change_nothing():
    r = Router()
    aid = await r.register()
    out = await r.feed(PartyAccepted(appeal_id=aid, actor="party:someone-else"))
    assert [(e.code, e.action) for e in out] == [("forbidden", "accept")]
    out = await r.feed(PartyAccepted(appeal_id=uuid.uuid4(), actor="party:uk-zarechye"))
    assert [e.code for e in out] == ["unknown_appeal"]
    assert r.status(aid) is S.ASSIGNED and r.uow.appeals.states[str(aid)].version == 1


async def test_not_ours_reroutes_then_the_second_bounce_escalates():
    r = Router()
    aid = await r.register()
    out = await r.feed(PartyRejectedNotResponsible(appeal_id=aid, actor="party:uk-zarechye", reason="не наш дом"))
    first = next(e for e in out if isinstance(e, AppealAssigned))
    assert first.cause in (AssignmentCause.REROUTE, AssignmentCause.FALLBACK)
    out = await r.feed(PartyRejectedNotResponsible(appeal_id=aid, actor=f"party:{first.party_id}", reason="и не наш"))
    second = next(e for e in out if isinstance(e, AppealAssigned))
    assert second.cause is AssignmentCause.ESCALATION


async def test_deadline_expiry_escalates_and_operator_routes_by_hand():
    r = Router()
    aid = await r.register()
    out = await r.feed(DeadlineExpired(appeal_id=aid, actor="service:notifier", deadline=NOW))
    assert next(e for e in out if isinstance(e, AppealAssigned)).party_id == "adm-leninsky"
    out = await r.feed(OperatorAssigned(appeal_id=aid, actor="operator:ivanova", party_id="vodokanal"))
    a = next(e for e in out if isinstance(e, AppealAssigned))
    assert (a.party_id, a.cause) == ("vodokanal", AssignmentCause.OPERATOR)
    out = await r.feed(OperatorAssigned(appeal_id=aid, actor="party:vodokanal", party_id="gzhi"))
    assert [e.code for e in out] == ["forbidden"]


async def test_an_action_on_an_incident_moves_every_member():
    r = Router()
    incident = uuid.uuid4()
    a = await r.register(number="ZH-2026-0000001")
    b = await r.register(number="ZH-2026-0000002")
    for m, n in ((a, "ZH-2026-0000001"), (b, "ZH-2026-0000002")):
        await r.feed(AppealJoinedIncident(appeal_id=m, registration_number=n, incident_id=incident))
    out = await r.feed(PartyAccepted(incident_id=incident, actor="party:uk-zarechye"))
    assert sorted(str(e.appeal_id) for e in out if isinstance(e, AppealStatusChanged)) == sorted([str(a), str(b)])
    assert r.status(a) is r.status(b) is S.IN_PROGRESS


async def test_a_new_member_follows_where_its_incident_went():
    r = Router()
    incident = uuid.uuid4()
    a = await r.register(number="ZH-2026-0000001")
    await r.feed(AppealJoinedIncident(appeal_id=a, registration_number="ZH-2026-0000001", incident_id=incident))
    # the incident's party said "not ours": its members went on together
    out = await r.feed(PartyRejectedNotResponsible(incident_id=incident, actor="party:uk-zarechye", reason="прямые договоры"))
    moved_to = next(e for e in out if isinstance(e, AppealAssigned)).party_id
    assert moved_to != "uk-zarechye"
    # a later report of the same incident is routed by the rules to uk-zarechye, then follows the incident
    b = await r.register(number="ZH-2026-0000002")
    assert r.uow.appeals.states[str(b)].party_id == "uk-zarechye"
    out = await r.feed(AppealJoinedIncident(appeal_id=b, registration_number="ZH-2026-0000002", incident_id=incident))
    (follow,) = [e for e in out if isinstance(e, AppealAssigned)]
    assert (follow.party_id, follow.cause, follow.previous_party_id) == (moved_to, AssignmentCause.INCIDENT, "uk-zarechye")
    assert r.uow.appeals.states[str(b)].incident_id == incident and r.status(b) is S.ASSIGNED
    # a member joining where the incident already is: nothing to move
    c = await r.register(number="ZH-2026-0000003")
    await r.feed(OperatorAssigned(appeal_id=c, actor="operator:o", party_id=moved_to))
    out = await r.feed(AppealJoinedIncident(appeal_id=c, registration_number="ZH-2026-0000003", incident_id=incident))
    assert not [e for e in out if isinstance(e, AppealAssigned)] and r.uow.appeals.states[str(c)].incident_id == incident


async def test_deadline_plans_keep_the_newest_generation():
    r = Router()
    aid = await r.register()
    due = NOW + timedelta(days=10)

    def plan(gen: int, days: int) -> DeadlinePlanned:
        return DeadlinePlanned(appeal_id=aid, registration_number="ZH-2026-0000001", party_id="uk-zarechye",
                               regime="pp416_written", due_at=due + timedelta(days=days), party_timezone="Asia/Yekaterinburg",
                               generation=gen, reason="assigned")

    assert await r.feed(plan(2, 5), plan(1, 0)) == []  # one batch, an older plan after a newer one
    assert r.uow.appeals.deadlines[str(aid)]["due_at"] == due + timedelta(days=5)


async def test_a_complaint_is_allowed_once_the_stored_deadline_passed_without_an_answer():
    r = Router()
    aid = await r.register()
    cit = f"citizen:{aid}"

    def plan(gen: int, due: datetime) -> DeadlinePlanned:
        return DeadlinePlanned(appeal_id=aid, registration_number="ZH-2026-0000001", party_id="uk-zarechye",
                               regime="pp416_written", due_at=due, party_timezone="Asia/Yekaterinburg",
                               generation=gen, reason="assigned")

    # no deadline known yet, then one still running: refused as before
    assert [e.code for e in await r.feed(CitizenComplained(appeal_id=aid, actor=cit))] == ["illegal_transition"]
    await r.feed(plan(1, NOW + timedelta(days=10)))
    assert [e.code for e in await r.feed(CitizenComplained(appeal_id=aid, actor=cit))] == ["illegal_transition"]
    await r.feed(PartyAccepted(appeal_id=aid, actor="party:uk-zarechye"))
    # the router's clock is past the newest plan's due time, no answer: escalated
    await r.feed(plan(2, NOW - timedelta(minutes=1)))
    out = await r.feed(CitizenComplained(appeal_id=f"{aid}", actor=f"citizen:{uuid.uuid4()}"))
    assert [e.code for e in out] == ["forbidden"]  # only this appeal's citizen
    out = await r.feed(CitizenComplained(appeal_id=aid, actor=cit))
    a = next(e for e in out if isinstance(e, AppealAssigned))
    assert (a.cause, a.reason, a.party_id) == (AssignmentCause.ESCALATION, "citizen_complaint", "adm-leninsky")
    assert r.status(aid) is S.ASSIGNED


async def test_a_batch_with_a_conflict_is_redone_and_each_action_applies_once():
    r = Router()
    aid = await r.register()
    accept = PartyAccepted(appeal_id=aid, actor="party:uk-zarechye")
    out = await r.feed(accept, PartyAnswered(appeal_id=aid, actor="party:uk-zarechye", text="Готово"), accept)
    rejected = [e.code for e in out if isinstance(e, AppealTransitionRejected)]
    assert rejected == ["illegal_transition"] and r.status(aid) is S.ANSWERED


# ---- authorisation and the audit trail ---------------------------------------------------------------


def forbidden_count(action: str) -> float:
    from router.service import FORBIDDEN_TOTAL

    return FORBIDDEN_TOTAL.labels(action)._value.get()


async def test_per_action_the_allowed_actor_applies_it_and_any_other_is_refused_forbidden_counted_and_recorded():
    r = Router()
    aid = await r.register()
    cit, other = f"citizen:{aid}", f"citizen:{uuid.uuid4()}"
    steps = [  # (action, a refused actor, the allowed actor, status after)
        (lambda a: PartyAccepted(appeal_id=aid, actor=a), "party:vodokanal", "party:uk-zarechye", S.IN_PROGRESS),
        (lambda a: PartyRequestedExtension(appeal_id=aid, actor=a, days=5, reason="запчасти"), "operator:ivanova",
         "party:uk-zarechye", S.IN_PROGRESS),
        (lambda a: PartyAnswered(appeal_id=aid, actor=a, text="Готово"), "party:adm-leninsky", "party:uk-zarechye", S.ANSWERED),
        (lambda a: CitizenRatedAnswer(appeal_id=aid, actor=a, satisfied=False), other, cit, S.REOPENED),
        (lambda a: CitizenComplained(appeal_id=aid, actor=a), "party:uk-zarechye", cit, S.ASSIGNED),
        (lambda a: DeadlineExpired(appeal_id=aid, actor=a, deadline=NOW), "notifier", "service:notifier", S.ASSIGNED),
        (lambda a: OperatorAssigned(appeal_id=aid, actor=a, party_id="vodokanal"), "inspector:gzhi-1", "admin:root", S.ASSIGNED),
        (lambda a: PartyRejectedNotResponsible(appeal_id=aid, actor=a), "party:uk-zarechye", "party:vodokanal", S.ASSIGNED),
        (lambda a: CitizenWithdrew(appeal_id=aid, actor=a), "service:notifier", "service:gis_sync", S.WITHDRAWN),
    ]
    for make, refused_actor, actor, status in steps:
        name = make(actor).EVENT_TYPE.split(".")[-2]
        before, version = forbidden_count(name), r.uow.appeals.states[str(aid)].version
        out = await r.feed(make(refused_actor))
        assert [(type(e), e.code, e.action) for e in out] == [(AppealTransitionRejected, "forbidden", name)]
        assert r.uow.appeals.states[str(aid)].version == version and forbidden_count(name) == before + 1
        out = await r.feed(make(actor))
        assert not any(isinstance(e, AppealTransitionRejected) for e in out), (name, out)
        assert r.status(aid) is status
        assert all(e.actor == actor for e in out if isinstance(e, AppealStatusChanged))

    history = await r.uow.history.history(aid)
    assert [(h.action, h.outcome, h.code) for h in history[:3]] == [
        ("assign", "applied", None), ("accept", "refused", "forbidden"), ("accept", "applied", None)]
    assert history[0].actor == "service:router" and history[0].via == "/zhkh-appeals/intake"
    assert [h.actor for h in history if h.outcome == "applied"][1:] == [s[2] for s in steps]
    assert [h.actor for h in history if h.outcome == "refused"] == [s[1] for s in steps]
    assert history[-1].status == "withdrawn" and history[-1].version == r.uow.appeals.states[str(aid)].version
    assert [h.version for h in history] == sorted(h.version for h in history)


async def test_history_entries_carry_no_personal_data_and_a_redelivered_action_adds_none():
    r = Router()
    aid = await r.register()
    accept = envelope(PartyAccepted(appeal_id=aid, actor="party:uk-zarechye", actor_subject="kc:7f1e"))
    await r.engine.process([rec(accept)])
    await r.engine.process([rec(accept)])  # redelivered
    answer = PartyAnswered(appeal_id=aid, actor="party:uk-zarechye", text="Секретный текст ответа Иванову")
    await r.feed(answer)
    history = await r.uow.history.history(aid)
    assert [h.action for h in history] == ["assign", "accept", "answer"]
    assert history[1].actor_subject == "kc:7f1e" and history[1].cause_event_id == accept.id
    text = repr([h.as_dict() for h in history])
    assert "Иванов" not in text and "Секретный" not in text and "ленина" not in text.lower()
    assert (await r.uow.history.history(aid, limit=2))[-1].action == "accept"  # oldest first


async def test_an_action_for_an_unknown_appeal_leaves_no_history():
    r = Router()
    stranger = uuid.uuid4()
    await r.feed(PartyAccepted(appeal_id=stranger, actor="party:uk-zarechye"))
    assert await r.uow.history.history(stranger) == []
