"""The router on the real broker and database, with intake in front and the sample directory."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from devtools import samples
from tests.support.engine import owned
from tests.support.http import get_json
from tests.support.kafka import TopicReader, produce, running
from tests.support.services import publish_raw, served, service_settings
from zhkh_contracts import (
    REGISTRY,
    Address,
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealStatus,
    AppealStatusChanged,
    AppealTransitionRejected,
    AssignmentCause,
    Category,
    CitizenComplained,
    CitizenRatedAnswer,
    CitizenWithdrew,
    DeadlineExpired,
    MassIncidentDetected,
    OperatorAssigned,
    PartyAccepted,
    PartyAnswered,
    PartyRejectedNotResponsible,
    PartyRequestedExtension,
    Topics,
    from_kafka,
    to_kafka,
)

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "sample_directory"
S = AppealStatus


@contextlib.asynccontextmanager
async def system(infra, prefix, issuer=None, **router_settings):  # noqa: ANN001, ANN201
    """intake in-process, router served over HTTP (its API, with tokens from ``issuer``), the sample
    directory imported."""
    from intake.main import create_app as intake_app
    from intake.settings import IntakeSettings
    from router.cli import import_directory
    from router.main import create_app as router_app
    from router.settings import RouterSettings

    rs = service_settings(RouterSettings, infra, prefix, auth_issuer=issuer.url if issuer else "", **router_settings)
    assert await import_directory(sorted(SAMPLE.glob("*.csv")), rs) == 0
    intake = intake_app(service_settings(IntakeSettings, infra, prefix, auth_issuer=issuer.url if issuer else ""))
    async with running(intake), served(router_app(rs)) as base:
        async with Follower(infra.bootstrap, Topics(prefix).lifecycle) as follower:
            yield base, follower


class Follower(TopicReader):
    def events(self, appeal_id: str | None = None):  # noqa: ANN201
        evs = [from_kafka(r.value, r.headers, REGISTRY) for r in self.records]
        return [e for e in evs if appeal_id is None or e.appeal_id == appeal_id]

    async def until(self, cond, timeout: float = 30.0):  # noqa: ANN001, ANN201
        await self.wait_for(lambda _: cond(self), timeout)
        return self

    async def assigned(self, appeal_id: str, n: int = 1) -> AppealAssigned:
        await self.until(lambda f: len(f.of(AppealAssigned, appeal_id)) >= n)
        return self.of(AppealAssigned, appeal_id)[n - 1]

    def of(self, cls, appeal_id: str | None = None):  # noqa: ANN001, ANN201
        return [e.data for e in self.events(appeal_id) if isinstance(e.data, cls)]

    def statuses(self, appeal_id: str) -> list[tuple[int, S]]:
        return [(e.version, e.to_status) for e in self.of(AppealStatusChanged, appeal_id)]


async def act(infra, prefix, action, source: str | None = None) -> uuid.UUID:  # noqa: ANN001
    """Publish an action as its owner does (the router's HTTP API; DeadlineExpired: the notifier)."""
    env = owned(action, appeal_id=action.key, **({"source": source} if source else {}))
    key, value, headers = to_kafka(env)
    await produce(infra.bootstrap, Topics(prefix).actions, value, key, [(k, v.encode()) for k, v in headers.items()])
    return env.id


async def register(infra, prefix, follower, category=Category.HOT_WATER, address=None, phone="+79120000001") -> str:  # noqa: ANN001
    raw = samples.raw_submission(category=category, phone=phone, email=None)
    if address is not None:
        raw = raw.model_copy(update={"address": address})
    await publish_raw(infra, prefix, raw)
    await follower.until(lambda f: any(a.applicant.phone == phone and a.source_id == raw.source_id
                                        for a in (e.data.appeal for e in f.events() if hasattr(e.data, "appeal"))))
    appeal = next(e.data.appeal for e in follower.events() if hasattr(e.data, "appeal") and e.data.appeal.source_id == raw.source_id)
    return str(appeal.appeal_id)


async def test_full_walk_accept_extend_answer_reopen_complain_escalate_close(infra, prefix, issuer):
    async with system(infra, prefix, issuer) as (base, f):
        aid = await register(infra, prefix, f)
        a = await f.assigned(aid)
        assert (a.party_id, a.reason, a.party_timezone) == ("uk-zarechye", "house_services_to_managing_org", "Asia/Yekaterinburg")
        assert a.supervisor_party_id == "adm-leninsky"
        u = uuid.UUID(aid)
        for action, expect in [
            (PartyAccepted(appeal_id=u, actor="party:uk-zarechye"), S.IN_PROGRESS),
            (PartyRequestedExtension(appeal_id=u, actor="party:uk-zarechye", days=10, reason="запчасти"), None),
            (PartyAnswered(appeal_id=u, actor="party:uk-zarechye", text="Вода будет завтра"), S.ANSWERED),
            (CitizenRatedAnswer(appeal_id=u, actor=f"citizen:{u}", satisfied=False), S.REOPENED),
            (CitizenComplained(appeal_id=u, actor=f"citizen:{u}", text="Воды нет"), S.ASSIGNED),
            (PartyAccepted(appeal_id=u, actor="party:adm-leninsky"), S.IN_PROGRESS),
            (PartyAnswered(appeal_id=u, actor="party:adm-leninsky", text="Подача восстановлена"), S.ANSWERED),
            (CitizenRatedAnswer(appeal_id=u, actor=f"citizen:{u}", satisfied=True), S.CLOSED),
        ]:
            n = len(f.events(aid))
            await act(infra, prefix, action)
            await f.until(lambda f, n=n: len(f.events(aid)) > n)
            if expect is not None:
                await f.until(lambda f, e=expect: f.statuses(aid)[-1][1] is e)
        assert f.statuses(aid) == [(1, S.ASSIGNED), (2, S.IN_PROGRESS), (4, S.ANSWERED), (5, S.REOPENED),
                                   (6, S.ASSIGNED), (7, S.IN_PROGRESS), (8, S.ANSWERED), (9, S.CLOSED)]
        assert [x.days for x in f.of(AppealExtended, aid)] == [10]
        assert [x.text for x in f.of(AppealAnswered, aid)] == ["Вода будет завтра", "Подача восстановлена"]
        esc = f.of(AppealAssigned, aid)[1]
        assert (esc.party_id, esc.cause, esc.reason, esc.level, esc.previous_party_id) == (
            "adm-leninsky", AssignmentCause.ESCALATION, "citizen_complaint", 1, "uk-zarechye")
        assert {x.district_id for x in f.of(AppealAssigned, aid)} == {"d-leninsky"}  # the house's district, kept
        # a late action on a closed appeal is refused with an error event, and nothing changes
        await act(infra, prefix, PartyAccepted(appeal_id=u, actor="party:adm-leninsky"))
        await f.until(lambda f: f.of(AppealTransitionRejected, aid))
        r = f.of(AppealTransitionRejected, aid)[0]
        assert (r.code, r.status, r.action) == ("illegal_transition", S.CLOSED, "accept")
        number = f.of(AppealAssigned, aid)[0].registration_number
        status, view = await asyncio.to_thread(get_json, f"{base}/api/v1/appeals/{number}", issuer.token("op", "operator"))
        assert status == 200
        assert (view["status"], view["party_id"], view["party_name"], view["level"], view["version"]) == (
            "closed", "adm-leninsky", "Администрация Ленинского района", 1, 9)


async def test_not_ours_reroutes_then_second_bounce_and_deadline_escalate(infra, prefix):
    async with system(infra, prefix) as (base, f):
        aid = await register(infra, prefix, f)
        u = uuid.UUID(aid)
        await f.assigned(aid)
        await act(infra, prefix, PartyRejectedNotResponsible(appeal_id=u, actor="party:uk-zarechye", reason="прямые договоры"))
        r1 = await f.assigned(aid, 2)
        assert (r1.party_id, r1.cause, r1.reason) == ("tgk-teplo", AssignmentCause.REROUTE, "house_services_to_supplier")
        await act(infra, prefix, PartyRejectedNotResponsible(appeal_id=u, actor="party:tgk-teplo"))
        r2 = await f.assigned(aid, 3)
        assert (r2.party_id, r2.cause, r2.reason, r2.level) == ("adm-leninsky", AssignmentCause.ESCALATION, "second_bounce", 1)
        await act(infra, prefix, DeadlineExpired(appeal_id=u, actor="service:notifier", deadline="2026-12-01T00:00:00+05:00"))
        r3 = await f.assigned(aid, 4)
        assert (r3.party_id, r3.reason, r3.level) == ("city-zhkh", "deadline_expired", 2)


async def test_unknown_house_goes_to_the_fallback_queue_and_an_operator_routes_it(infra, prefix, issuer):
    async with system(infra, prefix, issuer) as (base, f):
        aid = await register(infra, prefix, f, address=Address(text="г. Пермь, ул. Неизвестная, д. 99"))
        a = await f.assigned(aid)
        assert (a.party_id, a.reason, a.cause) == ("fallback:operators", "unknown_house", AssignmentCause.FALLBACK)
        await act(infra, prefix, OperatorAssigned(appeal_id=uuid.UUID(aid), actor="operator:ivanova", party_id="tgk-teplo"))
        b = await f.assigned(aid, 2)
        assert (b.party_id, b.cause, b.previous_party_id) == ("tgk-teplo", AssignmentCause.OPERATOR, "fallback:operators")
        status, listing = await asyncio.to_thread(get_json, f"{base}/api/v1/appeals?party_id=tgk-teplo&open=true",
                                                  issuer.token("op", "operator"))
        assert status == 200 and [x["appeal_id"] for x in listing["appeals"]] == [aid]


async def test_actions_on_a_mass_incident_move_every_member(infra, prefix, issuer):
    mira = Address(text="г. Пермь, ул. Мира, д. 7")
    async with system(infra, prefix, issuer) as (base, f):
        ids = [await register(infra, prefix, f, Category.COLD_WATER, mira, phone=f"+7912000000{i}") for i in range(3)]
        await f.until(lambda f: f.of(MassIncidentDetected))
        incident = f.of(MassIncidentDetected)[0].incident_id
        for aid in ids:
            assert (await f.assigned(aid)).party_id == "tsj-mira-7"
        await asyncio.sleep(1.0)  # let the router record the memberships (AppealJoinedIncident)
        await act(infra, prefix, PartyAccepted(incident_id=incident, actor="party:tsj-mira-7"))
        await f.until(lambda f: all(f.statuses(a)[-1][1] is S.IN_PROGRESS for a in ids))
        await act(infra, prefix, PartyAnswered(incident_id=incident, actor="party:tsj-mira-7", text="Авария на вводе устранена"))
        await f.until(lambda f: all(f.statuses(a)[-1][1] is S.ANSWERED for a in ids))
        house = "addr:г пермь ул мира д 7"
        query = urllib.parse.urlencode({"house_key": house, "open": "true"})
        status, listing = await asyncio.to_thread(get_json, f"{base}/api/v1/appeals?{query}", issuer.token("i", "inspector"))
        assert status == 200 and sorted(x["appeal_id"] for x in listing["appeals"]) == sorted(ids)
        assert {x["incident_id"] for x in listing["appeals"]} == {str(incident)}


async def test_action_for_an_unknown_appeal_is_refused_not_dropped(infra, prefix):
    async with system(infra, prefix) as (base, f):
        ghost = uuid.uuid4()
        await act(infra, prefix, CitizenWithdrew(appeal_id=ghost, actor=f"citizen:{ghost}"))
        await f.until(lambda f: f.of(AppealTransitionRejected, str(ghost)))
        assert f.of(AppealTransitionRejected, str(ghost))[0].code == "unknown_appeal"


async def test_concurrent_conflicting_transitions_apply_one_at_a_time(infra, prefix, mongo_db):
    """Answer and withdraw race on the same version, through two routers at once: the database
    lets one commit; the other retries on the fresh state and is applied after it or refused."""
    from router.repository import DirectoryCache, RouterRepository
    from router.rules import RoutingRules
    from router.service import RouterService
    from router.uow import MongoRouterUoW
    from tests.support.engine import events, make_engine, rec
    from zhkh_contracts import AppealRegistered
    from zhkh_runtime.mongo import MongoTracking

    client = mongo_db.client
    repo = RouterRepository(mongo_db, client)
    cache = DirectoryCache(repo)
    handlers = RouterService(RoutingRules.load(), "fallback:ops").handlers()

    def engine():  # noqa: ANN202 - a router of its own (its own retries), on the same database
        return make_engine("router", handlers, MongoTracking(client, mongo_db, lambda s: MongoRouterUoW(repo.appeals_in(s), cache, repo.history_in(s))))

    for round_ in range(5):
        raw = samples.raw_submission(source_id=f"race-{round_}")
        from intake.classifier import Classifier
        from intake.service import build_appeal, prepare

        appeal = build_appeal(prepare(raw), uuid.uuid4(), f"ZH-2026-{round_:07d}", samples.raw_envelope(raw).occurred_at, Classifier())
        first, _ = engine()
        await first.process([rec(owned(AppealRegistered(appeal=appeal), appeal_id=str(appeal.appeal_id)))])
        u = appeal.appeal_id
        await first.process([rec(owned(PartyAccepted(appeal_id=u, actor="party:fallback:ops"), appeal_id=str(u)))])
        answer = owned(PartyAnswered(appeal_id=u, actor="party:fallback:ops", text="ok"), appeal_id=str(u))
        withdraw = owned(CitizenWithdrew(appeal_id=u, actor=f"citizen:{u}"), appeal_id=str(u))
        (ea, pa), (ew, pw) = engine(), engine()
        await asyncio.gather(ea.process([rec(answer)]), ew.process([rec(withdraw)]))
        assert not pa.sent and not pw.sent  # nothing dead-lettered: the loser retried
        evs = events(pa) + events(pw)
        changes = sorted((e.version, e.to_status) for e in evs if isinstance(e, AppealStatusChanged))
        refused = [e.code for e in evs if isinstance(e, AppealTransitionRejected)]
        final = await repo.appeals_in(None).load(u)
        # one of the two serial orders, never both applied to version 3
        assert changes in ([(3, S.ANSWERED), (4, S.WITHDRAWN)], [(3, S.WITHDRAWN)]), changes
        assert refused == ([] if len(changes) == 2 else ["illegal_transition"])
        assert (final.status, final.version) == (S.WITHDRAWN, changes[-1][0])


async def test_a_bad_directory_import_writes_nothing(infra, prefix, mongo_db, tmp_path):
    from router.cli import import_directory
    from router.repository import RouterRepository
    from router.settings import RouterSettings

    rs = service_settings(RouterSettings, infra, prefix)
    assert await import_directory(sorted(SAMPLE.glob("*.csv")), rs) == 0
    bad = tmp_path / "houses.csv"
    bad.write_text((SAMPLE / "houses.csv").read_text(encoding="utf-8") + ",ул. Новая 1,d-nowhere,uk-zarechye,,,,,,,,\n", encoding="utf-8")
    assert await import_directory([SAMPLE / "parties.csv", SAMPLE / "districts.csv", bad], rs) == 1
    assert await RouterRepository(mongo_db).directory_counts() == {"parties": 12, "districts": 2, "houses": 4}


async def test_a_complaint_once_the_deadline_passed_without_an_answer_escalates(infra, prefix, mongo_db):
    """Issue 16: the router compares the notifier's newest deadline it keeps with its clock."""
    from datetime import UTC, datetime, timedelta

    from zhkh_contracts import DeadlinePlanned

    async with system(infra, prefix) as (_base, f):
        aid = await register(infra, prefix, f, phone="+79120000161")
        u = uuid.UUID(aid)
        a = await f.assigned(aid)
        await act(infra, prefix, CitizenComplained(appeal_id=u, actor=f"citizen:{u}", text="Нет ответа"))
        await f.until(lambda f: [r.code for r in f.of(AppealTransitionRejected, aid)] == ["illegal_transition"])
        plan = DeadlinePlanned(appeal_id=u, registration_number=a.registration_number, party_id=a.party_id,
                               regime="pp416_written", due_at=datetime.now(UTC) - timedelta(minutes=1),
                               party_timezone="Asia/Yekaterinburg", generation=1, reason="assigned")
        key, value, headers = to_kafka(owned(plan, appeal_id=aid))
        await produce(infra.bootstrap, Topics(prefix).lifecycle, value, key,
                      [(k, v.encode()) for k, v in headers.items()])
        for _ in range(300):  # the router keeps it (its own consumer of the lifecycle topic)
            doc = await mongo_db["router_appeals"].find_one({"_id": aid})
            if doc and doc.get("deadline_generation") == 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the router did not keep the deadline")
        await act(infra, prefix, CitizenComplained(appeal_id=u, actor=f"citizen:{u}", text="Срок прошёл, ответа нет"))
        esc = await f.assigned(aid, 2)
        assert (esc.party_id, esc.cause, esc.reason, esc.previous_party_id) == (
            "adm-leninsky", AssignmentCause.ESCALATION, "citizen_complaint", "uk-zarechye")
        assert esc.party_name
