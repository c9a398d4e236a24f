"""Our lifecycle -> ГИС actions: the consumer's handlers (lifecycle topic, group <prefix>.gis_sync).

Every lifecycle event of a ГИС appeal becomes zero or more queue items (``_id`` = a TransportGUID
derived from the event id, so a redelivered event maps to the same items), appended to the
appeal's queue in the engine's transaction; the dispatcher (push.py) sends them in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import structlog

from zhkh_contracts import (
    AppealAnswered,
    AppealAssigned,
    AppealExtended,
    AppealRegistered,
    AppealStatus,
    AppealStatusChanged,
    Channel,
)
from zhkh_contracts.events import PartyKind
from zhkh_runtime.engine import Emit, Handlers

from . import metrics
from .mapping import (
    ANSWER,
    PartyMap,
    action_payload,
    gis_attachment,
    not_required_cause,
    redirect_comment,
    rollover_comment,
    transport_guid,
)
from .outcomes import GIS_TZ, Clock, SyncConfig, failed, queue_item, utc_now
from .ports import Doc, GisError, GisUoW

log = structlog.get_logger(__name__)

Step = tuple[str, Doc] | GisError
MIRRORED_STATUSES = (AppealStatus.CLOSED, AppealStatus.WITHDRAWN)


class LinkHandlers:
    def __init__(self, parties: PartyMap, config: SyncConfig, clock: Clock = utc_now) -> None:
        self.parties, self.cfg, self.clock = parties, config, clock

    def handlers(self) -> Handlers:
        h = Handlers()
        h.on(AppealRegistered, when=lambda e: e.appeal.channel is Channel.GIS)(self.on_registered)
        h.on(AppealAssigned)(self.on_assigned)
        h.on(AppealAnswered)(self.on_answered)
        h.on(AppealExtended)(self.on_extended)
        h.on(AppealStatusChanged, when=lambda e: e.to_status in MIRRORED_STATUSES)(self.on_status)
        return h

    async def on_registered(self, e: AppealRegistered, uow: GisUoW) -> list[Any]:
        a = e.appeal
        try:
            guid = str(uuid.UUID(a.source_refs.get("gis_appeal_guid") or a.source_id))
        except ValueError:
            log.warning("gis_appeal_without_guid", appeal_id=str(a.appeal_id))  # not from ГИС's export: nothing to mirror
            return []
        await uow.links.create_link(
            {"_id": str(a.appeal_id), "appeal_guid": guid, "number": a.registration_number,
             "gis_number": a.source_refs.get("gis_appeal_number"), "next_seq": 0,
             "execution_end_date": a.source_refs.get("execution_end_date"), "performer": None,
             "redirected_to": None, "confirmed": {}, "closed": False, "correlation_id": str(uow.message.correlation_id)})
        return []

    async def on_assigned(self, ev: AppealAssigned, uow: GisUoW) -> list[Any]:
        def plan(link: Doc) -> list[Step]:
            if ev.party_kind is PartyKind.FALLBACK_QUEUE:
                return []  # operators route it by hand: nothing to tell ГИС yet
            party = self.parties.get(ev.party_id)
            if party is None:
                return [GisError("unmapped_party", f"party {ev.party_id} has no ГИС answerer or organisation")]
            if party.answerer_guid:
                if party.answerer_guid == link.get("performer"):
                    return []
                link["performer"] = party.answerer_guid
                return [("Performer", {"answerer": party.answerer_guid})]
            link["redirected_to"] = party.org_guid
            comment = redirect_comment(
                registration_number=ev.registration_number, gis_number=link.get("gis_number"), party_id=ev.party_id,
                reason=ev.reason, redirected_on=ev.assigned_at.astimezone(GIS_TZ).date(),
            )
            return [("RedirectAppeal", {"receiver": party.org_guid, "comment": comment})]

        return await self._plan(uow, str(ev.appeal_id), plan, "Performer")

    async def on_answered(self, ev: AppealAnswered, uow: GisUoW) -> list[Any]:
        def plan(link: Doc) -> list[Step]:
            party = self.parties.get(ev.party_id)
            answerer = party.answerer_guid if party and party.answerer_guid else None
            link["answer_text"] = ev.text
            attachments = [gis_attachment(a) for a in ev.attachments]
            steps: list[Step] = [
                (ANSWER, {"answerer": answerer, "text": ev.text, "attachments": [a for a in attachments if a]})
            ]
            missing = sum(1 for a in attachments if a is None)
            if missing:  # files not in ГИС's file store: uploading them is not implemented (docs/gis_sync.md)
                steps.append(GisError("attachment_not_in_gis", f"{missing} attachment(s) are not in ГИС ЖКХ's file store"
                                      " and were not sent with the answer"))
            return steps

        return await self._plan(uow, str(ev.appeal_id), plan, ANSWER)

    async def on_extended(self, ev: AppealExtended, uow: GisUoW) -> list[Any]:
        def plan(link: Doc) -> list[Step]:
            current = link.get("execution_end_date")
            base = date.fromisoformat(current) if current else ev.extended_at.astimezone(GIS_TZ).date()
            new = (base + timedelta(days=ev.days)).isoformat()
            link["execution_end_date"] = new
            comment = rollover_comment(days=ev.days, new_date=date.fromisoformat(new), reason=ev.reason)
            return [("RollOverAppeal", {"execution_date": new, "comment": comment})]

        return await self._plan(uow, str(ev.appeal_id), plan, "RollOverAppeal")

    async def on_status(self, ev: AppealStatusChanged, uow: GisUoW) -> list[Any]:
        def plan(link: Doc) -> list[Step]:
            if ev.to_status is AppealStatus.CLOSED:
                return [("Executed", {})]
            if link.get("withdrawn_in_gis"):
                return []  # withdrawn in ГИС itself: nothing to tell it
            cause = not_required_cause(
                registration_number=ev.registration_number, withdrawn_on=ev.changed_at.astimezone(GIS_TZ).date()
            )
            return [("AnswerIsNotRequired", {"cause": cause})]

        return await self._plan(uow, str(ev.appeal_id), plan, "status")

    async def _plan(self, uow: GisUoW, appeal_id: str, plan: Callable[[Doc], list[Step]], label: str) -> list[Emit]:
        link = await uow.links.link(appeal_id)
        if link is None:
            return []  # not an appeal from ГИС ЖКХ
        before = dict(link)
        if link.get("redirected_to") and label != "Performer":
            log.info("gis_skip_redirected", appeal_id=appeal_id, action=label)
            return []
        cause, now = uow.message.id, self.clock()
        items: list[Doc] = []
        out: list[Emit] = []
        for n, step in enumerate(plan(link)):
            tg = transport_guid(cause, n)
            if isinstance(step, GisError):
                out.append(failed(link, label, tg, step, 0, now))
                continue
            kind, kw = step
            answerer = kw.pop("answerer", None) or before.get("performer") or link.get("performer") or self.cfg.default_answerer
            if not answerer:
                out.append(failed(link, kind, tg, GisError("no_answerer", "no ГИС performer is known for this appeal"), 0, now))
                continue
            if kind == ANSWER:
                kw["answer_transport_guid"] = transport_guid(cause, n, "answer")
            items.append(queue_item(link, tg, kind, action_payload(kind, answerer, **kw), cause, now))
        await uow.links.enqueue(link, items)
        changes = {k: link.get(k) for k in ("performer", "redirected_to", "execution_end_date", "answer_text")
                   if link.get(k) != before.get(k)}
        await uow.links.update_link(appeal_id, changes)
        if items:
            metrics.QUEUED.inc(len(items))
        return out
