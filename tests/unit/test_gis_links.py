"""gis_sync's consumer (links.py): our lifecycle -> the ГИС action queue, through the engine on an
in-memory unit of work (no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from devtools import samples
from gis_sync.links import LinkHandlers
from gis_sync.mapping import PartyMap
from gis_sync.outcomes import SyncConfig
from gis_sync.repository import MemoryGisUoW
from intake.classifier import Classifier
from intake.service import build_appeal, prepare
from tests.support.engine import envelope, events, make_engine, rec
from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    AssignmentCause,
    Channel,
    GisActionFailed,
    PartyKind,
)
from zhkh_runtime.engine import MemoryTracking

ROOT = Path(__file__).resolve().parents[2]
PARTIES = PartyMap.load(ROOT / "devtools" / "sample_gis" / "gis_parties.csv")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLASSIFIER = Classifier()


class Gis:
    def __init__(self, default_answerer: str | None = None) -> None:
        self.uow = MemoryGisUoW()
        handlers = LinkHandlers(PARTIES, SyncConfig(default_answerer=default_answerer), clock=lambda: NOW).handlers()
        self.engine, self.pub = make_engine("gis_sync", handlers, MemoryTracking(self.uow))

    async def feed(self, *data):  # noqa: ANN002, ANN201
        before = len(self.pub.records)
        await self.engine.process([rec(envelope(d)) for d in data])
        return events(self.pub)[before:]

    @property
    def queue(self) -> list[dict]:
        return self.uow.links.queue


def gis_appeal(channel: Channel = Channel.GIS):  # noqa: ANN201
    guid = str(uuid.uuid4())
    raw = samples.raw_submission(channel=channel, source_id=guid)
    raw = raw.model_copy(update={"channel_meta": {"gis_appeal_guid": guid, "gis_appeal_number": "59-2026-0000001",
                                                  "execution_end_date": "2026-03-20"}})
    return build_appeal(prepare(raw), uuid.uuid4(), "ZH-2026-0000001", NOW, CLASSIFIER)


def assigned(a, party: str, kind: PartyKind = PartyKind.MANAGING_ORGANISATION) -> AppealAssigned:  # noqa: ANN001
    return AppealAssigned(appeal_id=a.appeal_id, registration_number=a.registration_number, party_id=party,
                          party_kind=kind, reason="rule", assigned_at=NOW, cause=AssignmentCause.RULE, level=0)


def status(a, to: AppealStatus, version: int = 9) -> AppealStatusChanged:  # noqa: ANN001
    return AppealStatusChanged(appeal_id=a.appeal_id, registration_number=a.registration_number,
                               from_status=AppealStatus.ANSWERED, to_status=to, action="x", party_id="p",
                               version=version, changed_at=NOW)


async def test_only_appeals_from_gis_are_linked_and_mirrored():
    g = Gis()
    site = gis_appeal(Channel.SITE_FORM)
    await g.feed(AppealRegistered(appeal=site), assigned(site, "uk-zarechye"))
    assert g.uow.links.links == {} and g.queue == []


async def test_lifecycle_becomes_ordered_queue_items_with_derived_transport_guids():
    g = Gis()
    a = gis_appeal()
    ext = AppealExtended(appeal_id=a.appeal_id, registration_number="N", party_id="uk-zarechye", days=10,
                         reason="нужны запчасти для ремонта", extended_at=NOW)
    ans = AppealAnswered(appeal_id=a.appeal_id, registration_number="N", party_id="uk-zarechye", text="Вода есть",
                         answered_at=NOW)
    batch = [rec(envelope(d)) for d in (AppealRegistered(appeal=a), assigned(a, "uk-zarechye"), ext, ans,
                                         status(a, AppealStatus.IN_PROGRESS), status(a, AppealStatus.CLOSED))]
    await g.engine.process(batch)
    assert g.pub.records == []
    assert [(q["kind"], q["seq"]) for q in g.queue] == [("Performer", 0), ("RollOverAppeal", 1), ("Answer", 2), ("Executed", 3)]
    link = g.uow.links.links[str(a.appeal_id)]
    assert link["performer"] == PARTIES.get("uk-zarechye").answerer_guid
    assert link["execution_end_date"] == "2026-03-30"  # ГИС's date + 10 days
    guids = [q["_id"] for q in g.queue]
    await g.engine.process(batch)  # the same records delivered again: nothing queued twice
    assert [q["_id"] for q in g.queue] == guids


async def test_a_party_in_another_gis_organisation_is_a_redirect_and_later_steps_stay_ours():
    g = Gis(default_answerer=PARTIES.get("city-zhkh").answerer_guid)  # a redirect is made by a performer of ours
    a = gis_appeal()
    await g.feed(AppealRegistered(appeal=a), assigned(a, "vodokanal", PartyKind.RESOURCE_SUPPLIER))
    (item,) = g.queue
    assert item["kind"] == "RedirectAppeal"
    comment = item["payload"]["RedirectAppeal"][0]["Comment"]
    assert 100 <= len(comment) <= 1000  # 15.11.0.0's bounds, from our data
    await g.feed(status(a, AppealStatus.CLOSED))
    assert len(g.queue) == 1  # redirected: the appeal is the other organisation's in ГИС


async def test_an_unmapped_party_fails_visibly_and_no_performer_uses_the_default_answerer():
    g = Gis()
    a = gis_appeal()
    out = await g.feed(AppealRegistered(appeal=a), assigned(a, "nobody-knows"))
    assert [(e.code, e.action) for e in out if isinstance(e, GisActionFailed)] == [("unmapped_party", "Performer")]
    h = Gis(default_answerer=PARTIES.get("city-zhkh").answerer_guid)
    b = gis_appeal()
    await h.feed(AppealRegistered(appeal=b), status(b, AppealStatus.WITHDRAWN))
    (item,) = h.queue
    assert item["kind"] == "AnswerIsNotRequired" and len(item["payload"]["AnswerIsNotRequired"]["Cause"]) >= 20


async def test_statuses_other_than_closed_or_withdrawn_cost_nothing():
    g = Gis()
    a = gis_appeal()
    await g.feed(AppealRegistered(appeal=a))
    markers = len(g.engine.tracking.markers)
    await g.feed(status(a, AppealStatus.IN_PROGRESS), status(a, AppealStatus.REOPENED))
    assert len(g.engine.tracking.markers) == markers and g.queue == []
