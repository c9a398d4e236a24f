"""gis_sync against the ГИС ЖКХ emulator (real HTTP SOAP), the real broker and the real database.

Pull new appeals; push every kind of action in order; resend and redelivery change nothing in
ГИС; transient faults are retried; business errors become GisActionFailed and are not retried;
reconciliation repairs drift and brings withdrawals made in ГИС back to the router.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools import samples
from devtools.gis_emulator import EmulatorServer, EmulatorState
from tests.support.engine import owned
from tests.support.kafka import TopicReader, eventually, produce, running
from tests.support.services import service_settings
from zhkh_contracts import (
    REGISTRY,
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    AssignmentCause,
    Channel,
    CitizenWithdrew,
    Envelope,
    GisActionFailed,
    GisActionMirrored,
    PartyKind,
    RawAppealSubmitted,
    Topics,
    from_kafka,
    to_kafka,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PARTY_MAP = ROOT / "devtools" / "sample_gis" / "gis_parties.csv"
SOAP_PATH = "/ext-bus-appeals-service/services/AppealsAsync"
UK = "uk-zarechye"
UK_ANSWERER = "c32e262b-dfb9-5b4c-9d8e-8df0e87b94f2"
TEPLO_ORG = "e28a2919-a17c-5705-8937-efadbc97b6e1"


@contextlib.asynccontextmanager
async def emulator(**kw: Any) -> AsyncIterator[tuple[EmulatorState, str]]:
    state = EmulatorState.from_party_map(PARTY_MAP, processing_delay_s=0.05, polls_to_complete=2, **kw)
    async with EmulatorServer(state) as url:
        yield state, url


def gis_settings(infra: Any, prefix: str, url: str, **kw: Any) -> Any:
    from gis_sync.settings import GisSyncSettings

    values = dict(
        gis_endpoint=url + SOAP_PATH, gis_party_map=PARTY_MAP, gis_timeout_s=2.0, gis_poll_interval_s=0.05,
        gis_stuck_after_s=1.5, push_interval_s=0.1, push_backoff_s=0.1, push_backoff_max_s=0.5,
        pull_interval_s=3600, reconcile_interval_s=3600,
    )
    values.update(kw)
    return service_settings(GisSyncSettings, infra, prefix, **values)


async def control(url: str, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.request(method, url + path, json=body)
        r.raise_for_status()
        return r.json()


async def seed(url: str, n: int = 1, **kw: Any) -> list[dict[str, Any]]:
    return await control(url, "POST", "/emulator/appeals", {"generate": n, **kw})


def decoded(records: list[Any]) -> list[Envelope[Any]]:
    return [from_kafka(r.value, r.headers, REGISTRY) for r in records]


def of_type(reader: TopicReader, cls: type) -> list[Any]:
    return [e for e in decoded(reader.records) if isinstance(e.data, cls)]


class Lifecycle:
    """Builds and publishes one ГИС appeal's lifecycle events the way intake and the router do."""

    def __init__(self, infra: Any, prefix: str, gis_guid: str) -> None:
        from intake.classifier import Classifier
        from intake.service import build_appeal, prepare

        self.infra, self.topics = infra, Topics(prefix)
        raw = samples.raw_submission(channel=Channel.GIS, source_id=gis_guid).model_copy(
            update={"channel_meta": {"gis_appeal_guid": gis_guid, "execution_end_date": "2026-12-21"}}
        )
        self.appeal = build_appeal(prepare(raw), uuid.uuid4(), f"ZH-2026-{uuid.uuid4().int % 10**7:07d}", datetime.now(UTC), Classifier())
        self.id = self.appeal.appeal_id
        self.sent: list[Envelope[Any]] = []

    def _env(self, data: Any) -> Envelope[Any]:
        env = owned(data, appeal_id=str(self.id))
        self.sent.append(env)
        return env

    def registered(self) -> Envelope[Any]:
        return self._env(AppealRegistered(appeal=self.appeal))

    def assigned(self, party: str = UK, kind: PartyKind = PartyKind.MANAGING_ORGANISATION,
                 cause: AssignmentCause = AssignmentCause.RULE) -> Envelope[Any]:
        return self._env(AppealAssigned(appeal_id=self.id, registration_number=self.appeal.registration_number,
                                        party_id=party, party_kind=kind, reason="rule", cause=cause,
                                        assigned_at=datetime.now(UTC)))

    def extended(self, days: int = 10) -> Envelope[Any]:
        return self._env(AppealExtended(appeal_id=self.id, registration_number=self.appeal.registration_number,
                                        party_id=UK, days=days, reason="Нужны запчасти", extended_at=datetime.now(UTC)))

    def answered(self, text: str = "Батареи промыты, температура в норме.") -> Envelope[Any]:
        return self._env(AppealAnswered(appeal_id=self.id, registration_number=self.appeal.registration_number,
                                        party_id=UK, text=text, answered_at=datetime.now(UTC)))

    def status(self, to: AppealStatus, action: str) -> Envelope[Any]:
        return self._env(AppealStatusChanged(appeal_id=self.id, registration_number=self.appeal.registration_number,
                                             from_status=AppealStatus.ANSWERED, to_status=to, action=action, party_id=UK,
                                             version=5, changed_at=datetime.now(UTC)))

    async def publish(self, *envs: Envelope[Any]) -> None:
        for env in envs:
            key, value, headers = to_kafka(env)
            await produce(self.infra.bootstrap, self.topics.lifecycle, value, key, [(k, v.encode()) for k, v in headers.items()])


async def test_pull_hands_every_new_gis_appeal_to_intake_once(infra, prefix):
    from gis_sync.main import create_app

    topics = Topics(prefix)
    async with emulator() as (state, url):
        first = await seed(url, 3)
        old = await seed(url, 1, create_date=(date.today() - timedelta(days=40)).isoformat())  # before the window
        settings = gis_settings(infra, prefix, url, pull_interval_s=0.3)
        async with TopicReader(infra.bootstrap, topics.raw(Channel.GIS)) as r, running(create_app(settings)):
            await r.wait_for(lambda recs: len(recs) >= 3, timeout=30)
            later = await seed(url, 1)
            await r.wait_for(lambda recs: len(recs) >= 4, timeout=30)
            await r.settle(1.5)  # several more pull rounds over the same window
        raws = decoded(r.records)
    assert len(raws) == 4 and len({e.id for e in raws}) == 4  # each once, though every round exports them again
    by_guid = {e.data.source_id: e.data for e in raws}
    assert set(by_guid) == {a["appeal_guid"] for a in first + later}
    assert old[0]["appeal_guid"] not in by_guid
    one: RawAppealSubmitted = by_guid[first[0]["appeal_guid"]]
    assert one.channel is Channel.GIS
    assert one.channel_meta["gis_appeal_number"] == first[0]["appeal_number"]
    assert date.fromisoformat(one.channel_meta["execution_end_date"]) > date.today()
    assert one.applicant.name and one.text


async def test_every_kind_of_action_is_mirrored_in_order_and_once(infra, prefix):
    from gis_sync.main import create_app

    topics = Topics(prefix)
    async with emulator() as (state, url):
        a, b, c = (x["appeal_guid"] for x in await seed(url, 3))
        full, redirected, withdrawn = Lifecycle(infra, prefix, a), Lifecycle(infra, prefix, b), Lifecycle(infra, prefix, c)
        settings = gis_settings(infra, prefix, url)
        async with TopicReader(infra.bootstrap, topics.lifecycle) as r, running(create_app(settings)):
            await full.publish(full.registered(), full.assigned(), full.extended(), full.answered(),
                               full.status(AppealStatus.CLOSED, "rate"))
            await redirected.publish(redirected.registered(), redirected.assigned(),
                                     redirected.assigned("tgk-teplo", PartyKind.RESOURCE_SUPPLIER, AssignmentCause.REROUTE))
            await withdrawn.publish(withdrawn.registered(), withdrawn.assigned(),
                                    withdrawn.status(AppealStatus.WITHDRAWN, "withdraw"))
            await r.wait_for(lambda _: len(of_type(r, GisActionMirrored)) >= 8, timeout=60)
            # redelivery of every lifecycle event: the consumer's guard stores nothing twice
            for lc in (full, redirected, withdrawn):
                await lc.publish(*lc.sent)
            await r.settle(2.0)
            mirrored = of_type(r, GisActionMirrored)
            failed = of_type(r, GisActionFailed)
        record = await control(url, "GET", "/emulator/record")
        a_state = await control(url, "GET", f"/emulator/appeals/{a}")
        b_state = await control(url, "GET", f"/emulator/appeals/{b}")
        c_state = await control(url, "GET", f"/emulator/appeals/{c}")

    assert failed == []
    assert len({e.id for e in mirrored}) == 8
    kinds = {g: [x["kind"] for x in record["applied"] if x["appeal_guid"] == g] for g in (a, b, c)}
    assert kinds[a] == ["Performer", "RollOverAppeal", "LoadAnswer", "SendAnswer", "Executed"]
    assert kinds[b] == ["Performer", "RedirectAppeal"]
    assert kinds[c] == ["Performer", "AnswerIsNotRequired"]
    tgs = [x["transport_guid"] for x in record["applied"]]
    assert len(tgs) == len(set(tgs))  # every TransportGUID applied once
    assert a_state["status"] == "Executed" and a_state["answerer_guid"] == UK_ANSWERER
    assert a_state["execution_end_date"] == "2026-12-31"  # ГИС's date + 10 days
    assert b_state["redirected_to"] == TEPLO_ORG
    assert c_state["not_required"]


async def test_resend_of_a_confirmed_step_is_harmless(infra, prefix, mongo_db):
    """State lost after ГИС applied a step (the item is back to pending): the same TransportGUID goes
    again, ГИС answers with the stored result, nothing is applied twice, the event id is the same."""
    from gis_sync.main import create_app

    topics = Topics(prefix)
    async with emulator() as (state, url):
        (g,) = (x["appeal_guid"] for x in await seed(url, 1))
        lc = Lifecycle(infra, prefix, g)
        async with TopicReader(infra.bootstrap, topics.lifecycle) as r, running(create_app(gis_settings(infra, prefix, url))):
            await lc.publish(lc.registered(), lc.assigned())
            await r.wait_for(lambda _: len(of_type(r, GisActionMirrored)) >= 1, timeout=30)
            await mongo_db["gis_queue"].update_many({}, {"$set": {"state": "pending", "message_guid": None}})
            await r.wait_for(lambda _: len(of_type(r, GisActionMirrored)) >= 2, timeout=30)
            mirrored = of_type(r, GisActionMirrored)
        record = await control(url, "GET", "/emulator/record")
    assert len(mirrored) == 2 and len({e.id for e in mirrored}) == 1  # republished, same id: consumers dedupe
    assert [x["kind"] for x in record["applied"]] == ["Performer"]
    assert record["duplicates"] == {str(mirrored[0].data.transport_guid): 1}


async def test_transient_faults_are_retried_until_gis_confirms(infra, prefix, mongo_db):
    from gis_sync.main import create_app

    topics = Topics(prefix)
    async with emulator() as (state, url):
        (g,) = (x["appeal_guid"] for x in await seed(url, 1))
        lc = Lifecycle(infra, prefix, g)
        async with TopicReader(infra.bootstrap, topics.lifecycle) as r, running(create_app(gis_settings(infra, prefix, url))):
            # the first pull round runs at start; let it finish so the faults below hit the push path
            await eventually(lambda: mongo_db["gis_cursor"].find_one({"_id": "pull", "hwm": {"$exists": True}}))
            await control(url, "POST", "/emulator/faults", {"kind": "http_503", "count": 3, "operation": "importAnswer"})
            await control(url, "POST", "/emulator/faults", {"kind": "stuck", "count": 1})
            await control(url, "POST", "/emulator/faults", {"kind": "timeout", "count": 1, "seconds": 3, "operation": "getState"})
            await lc.publish(lc.registered(), lc.assigned(), lc.answered())
            await r.wait_for(lambda _: len(of_type(r, GisActionMirrored)) >= 2, timeout=60)
            failed = of_type(r, GisActionFailed)
        record = await control(url, "GET", "/emulator/record")
    assert failed == []
    assert [x["kind"] for x in record["applied"]] == ["Performer", "LoadAnswer", "SendAnswer"]
    assert record["requests"]["importAnswer"] >= 5  # 3 refused, 1 stuck, then the two that went through


async def test_business_errors_become_failure_events_and_are_not_retried(infra, prefix):
    from gis_sync.main import create_app

    topics = Topics(prefix)
    async with emulator() as (state, url):
        g, h = (x["appeal_guid"] for x in await seed(url, 2))
        await control(url, "POST", "/emulator/faults",
                      {"kind": "business", "appeal_guid": g, "code": "EMU-900", "description": "Отказ", "count": 1})
        first, second = Lifecycle(infra, prefix, g), Lifecycle(infra, prefix, h)
        async with TopicReader(infra.bootstrap, topics.lifecycle) as r, running(create_app(gis_settings(infra, prefix, url))):
            # g: Performer refused by ГИС -> failed; the answer after it still goes and ГИС refuses it too (no performer)
            await first.publish(first.registered(), first.assigned(), first.answered())
            # h: a party with no ГИС counterpart, then a second extension ГИС does not allow
            await second.publish(second.registered(), second.assigned("nowhere-llc"), second.assigned(),
                                 second.extended(), second.extended())
            await r.wait_for(lambda _: len(of_type(r, GisActionFailed)) >= 4, timeout=60)
            await r.settle(1.5)
            failed = {(e.data.gis_appeal_guid, e.data.action): e.data for e in of_type(r, GisActionFailed)}
        record = await control(url, "GET", "/emulator/record")
        requests_before = record["requests"]["importAnswer"]
        await control(url, "GET", "/emulator/health")
    assert failed[(uuid.UUID(g), "Performer")].code == "EMU-900"
    assert failed[(uuid.UUID(g), "Answer")].code == "EMU-006"
    assert failed[(uuid.UUID(h), "Performer")].code == "unmapped_party"
    assert failed[(uuid.UUID(h), "RollOverAppeal")].code == "EMU-004"
    assert len(failed) == 4
    assert [x["kind"] for x in record["applied"] if x["appeal_guid"] == h] == ["Performer", "RollOverAppeal"]
    assert requests_before <= 8  # refused steps were sent once each, not retried


async def test_reconciliation_repairs_drift_and_returns_withdrawals(infra, prefix):
    from gis_sync.main import create_app

    topics = Topics(prefix)
    async with emulator() as (state, url):
        g, w = (x["appeal_guid"] for x in await seed(url, 2))
        drifted, gone = Lifecycle(infra, prefix, g), Lifecycle(infra, prefix, w)
        settings = gis_settings(infra, prefix, url, reconcile_interval_s=0.5)
        async with TopicReader(infra.bootstrap, topics.lifecycle, topics.actions) as r, running(create_app(settings)):
            await drifted.publish(drifted.registered(), drifted.assigned(), drifted.answered())
            await gone.publish(gone.registered(), gone.assigned())
            await r.wait_for(lambda _: len(of_type(r, GisActionMirrored)) >= 3, timeout=30)
            await control(url, "POST", f"/emulator/appeals/{g}/drift", {"clear_performer": True, "unsend_answers": True})
            await control(url, "POST", f"/emulator/appeals/{w}/withdraw", {})
            await r.wait_for(lambda _: len([e for e in of_type(r, GisActionMirrored) if e.data.repair]) >= 2, timeout=30)
            await r.wait_for(lambda _: of_type(r, CitizenWithdrew), timeout=30)
            await r.settle(1.5)  # more reconcile rounds: nothing more to repair
            repairs = [e.data for e in of_type(r, GisActionMirrored) if e.data.repair]
            withdrawals = of_type(r, CitizenWithdrew)
        g_state = await control(url, "GET", f"/emulator/appeals/{g}")
    assert sorted(x.action for x in repairs) == ["Answer", "Performer"]
    assert g_state["answerer_guid"] == UK_ANSWERER
    assert any(ans.get("sent") for ans in g_state["answers"])
    assert len(withdrawals) == 1 and withdrawals[0].data.actor == "service:gis_sync"
    assert str(withdrawals[0].data.appeal_id) == str(gone.id)
