"""Translations between ГИС ЖКХ's AppealsAsync data and ours. Pure functions, no I/O.

* ``raw_from_export``: one exported ГИС appeal -> a RawAppealSubmitted for intake's ГИС channel.
* ``PartyMap``: which of our parties is an answerer inside our ГИС account (Performer) and which
  is another ГИС organisation (RedirectAppeal).
* ``zeep_action``: a queued action -> the AnswerAction / AppealAction structure of importAnswer.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from zhkh_contracts import MAX_TEXT_CHARS, Address, Applicant, ApplicantKind, AttachmentRef, Category, Channel, Consent, RawAppealSubmitted

NAMESPACE = uuid.UUID("0d5a8f0e-6c47-4f4e-9a35-7b0a5e1f9c21")
"""Namespace of every GUID gis_sync derives (TransportGUIDs, event ids): same input, same GUID."""

GIS_TEXT_LIMIT = 10_000  # String10000Type
GIS_COMMENT_LIMIT = 1_000  # String1000Type
# 15.11.0.0 (bundle 16.3.0.0): RedirectAppeal/Comment 100..1000 characters; RollOverAppeal/Comment and
# AnswerIsNotRequired/Cause 20..1000. The texts below are built from the appeal's own data to meet them.
REDIRECT_COMMENT_MIN = 100
ROLLOVER_COMMENT_MIN = 20
CAUSE_MIN = 20


def _clip(text: str, limit: int = GIS_COMMENT_LIMIT) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def _ru_date(value: date) -> str:
    return value.strftime("%d.%m.%Y")


def redirect_comment(*, registration_number: str, gis_number: str | None, party_id: str, reason: str,
                     redirected_on: date) -> str:
    """RedirectAppeal/Comment: why and where the appeal went, from the assignment itself (100..1000)."""
    number = f"{registration_number} (в ГИС ЖКХ № {gis_number})" if gis_number else registration_number
    text = (
        f"Обращение {number} {_ru_date(redirected_on)} направлено по компетенции (ч. 3 ст. 8 Федерального "
        f"закона № 59-ФЗ) в организацию «{party_id}», отвечающую за предмет обращения по правилам "
        f"маршрутизации (правило «{reason}»)."
    )
    text = _clip(text)
    if len(text) < REDIRECT_COMMENT_MIN:  # cannot happen with the fixed parts above (>100 characters)
        raise ValueError("redirect comment shorter than ГИС ЖКХ allows")
    return text


def rollover_comment(*, days: int, new_date: date, reason: str) -> str:
    """RollOverAppeal/Comment: the new date, the length and the party's reason (20..1000)."""
    why = " ".join(reason.split())
    text = f"Срок рассмотрения продлён на {days} дн., до {_ru_date(new_date)}." + (f" Причина: {why}" if why else "")
    return _clip(text)


def not_required_cause(*, registration_number: str, withdrawn_on: date) -> str:
    """AnswerIsNotRequired/Cause when the citizen withdrew the appeal with us (20..1000)."""
    return _clip(f"Заявитель отозвал обращение {registration_number} {_ru_date(withdrawn_on)}; ответ не требуется.")

# Topic names (НСИ 220) by keyword -> our category. ГИС sends the topic's code, GUID and name; the
# codes differ between НСИ versions, so the name decides; anything else goes to the classifier.
TOPIC_KEYWORDS: tuple[tuple[str, Category], ...] = (
    ("отоплен", Category.HEATING),
    ("горяч", Category.HOT_WATER),
    ("холодн", Category.COLD_WATER),
    ("водоотвед", Category.SEWERAGE),
    ("канализац", Category.SEWERAGE),
    ("электр", Category.ELECTRICITY),
    ("газ", Category.GAS),
    ("тко", Category.WASTE),
    ("мусор", Category.WASTE),
    ("отход", Category.WASTE),
    ("лифт", Category.LIFTS),
    ("кровл", Category.COMMON_PROPERTY),
    ("крыш", Category.COMMON_PROPERTY),
    ("общего имущества", Category.COMMON_PROPERTY),
    ("платеж", Category.BILLING),
    ("начислен", Category.BILLING),
    ("перерасч", Category.BILLING),
    ("придомов", Category.LAND),
    ("благоустр", Category.LAND),
    ("управлен", Category.MANAGEMENT),
)


def transport_guid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts)))


def category_of_topic(name: str | None) -> Category | None:
    low = (name or "").lower()
    for keyword, category in TOPIC_KEYWORDS:
        if keyword in low:
            return category
    return None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


GIS_FILE_URI = "urn:gis-zhkh:file:"
"""Our URI of a file in ГИС ЖКХ's file store: ``urn:gis-zhkh:file:<AttachmentGUID>[#<AttachmentHASH>]``."""
MAX_ATTACHMENTS = 50  # RawAppealSubmitted.attachments


def attachment_refs(attachments: Any) -> tuple[AttachmentRef, ...]:
    """ГИС AttachmentType (Name, Description, Attachment/AttachmentGUID, AttachmentHASH?) -> our references.

    ГИС gives no size and no media type (both stay None); its hash (GOST R 34.11-94 / 34.11-2012 of the
    file, as ГИС computed it) goes into the URI's fragment, our model having no field for it; its
    Description has no place in AttachmentRef and is dropped; a Name over 300 characters is cut."""
    out = []
    for a in attachments or ():
        guid = str((a.get("Attachment") or {}).get("AttachmentGUID") or "")
        if not guid:
            continue
        digest = a.get("AttachmentHASH")
        out.append(AttachmentRef(uri=GIS_FILE_URI + guid + (f"#{digest}" if digest else ""),
                                 name=(str(a.get("Name") or "") or None) and str(a["Name"])[:300]))
    return tuple(out[:MAX_ATTACHMENTS])


def gis_attachment(ref: AttachmentRef) -> dict[str, Any] | None:
    """One of our references -> ГИС AttachmentType, if the file is already in ГИС's file store (else None)."""
    if not ref.uri.startswith(GIS_FILE_URI):
        return None
    guid, _, digest = ref.uri[len(GIS_FILE_URI):].partition("#")
    try:
        guid = str(uuid.UUID(guid))
    except ValueError:
        return None
    name = (ref.name or guid)[:1024]
    body: dict[str, Any] = {"Name": name, "Description": name[:500], "Attachment": {"AttachmentGUID": guid}}
    if digest:
        body["AttachmentHASH"] = digest
    return body


def raw_from_export(appeal: Mapping[str, Any], received_at: datetime | None = None) -> RawAppealSubmitted:
    """An exportAppealResultType (as zeep's serialize_object gives it) -> a raw submission.

    Consent: the citizen gave it on the state portal when submitting. Notifications stay on: the
    answer itself goes back through ГИС ЖКХ, status notices go to the e-mail / phone ГИС gave us.
    """
    info = appeal.get("ApplicantInfo") or {}
    person = info.get("Person") or {}
    name = " ".join(str(p) for p in (person.get("Surname"), person.get("FirstName"), person.get("Patronymic")) if p)
    org = info.get("Org") or {}
    topic = appeal.get("AppealTopic") or {}
    topic_name = topic.get("Name") or appeal.get("AnotherTopic")
    guid = str(appeal["AppealGUID"])
    meta: dict[str, str] = {
        "gis_appeal_guid": guid,
        "gis_appeal_number": str(appeal["AppealNumber"]),
        "gis_created": _iso(appeal.get("AppealCreateDate")) or "",
    }
    optional = {
        "gis_topic_code": topic.get("Code"),
        "gis_topic_guid": topic.get("GUID"),
        "gis_topic_name": topic_name,
        "execution_end_date": _iso(appeal.get("ExecutionEndDate")),
        "gis_npa_requirements": appeal.get("NPARequirements"),
        "gis_oktmo": (appeal.get("OKTMO") or {}).get("code"),
        "gis_parent_appeal_guid": appeal.get("ParentAppealGUID"),
        "gis_from_mobile": "true" if appeal.get("FromMobile") else None,
        "gis_applicant_org_guid": org.get("orgRootEntityGUID"),
    }
    meta.update({k: str(v)[:500] for k, v in optional.items() if v})
    fias = appeal.get("FIASHouseGuid")
    return RawAppealSubmitted(
        channel=Channel.GIS,
        source_id=guid,
        received_at=received_at or datetime.now(UTC),
        applicant=Applicant(
            kind=ApplicantKind.ORGANISATION if org else ApplicantKind.PERSON,
            name=name or None,
            phone=(str(info["PhoneNumber"])[:32] if info.get("PhoneNumber") else None),
            email=info.get("AppealEmail") or info.get("Email") or None,
            postal_address=info.get("PostAddress") or None,
        ),
        consent=Consent(personal_data=True, notifications=True),
        address=Address(
            fias_house_guid=uuid.UUID(str(fias)) if fias else None,
            text=info.get("PostAddress") or None,
            apartment=(str(appeal.get("PremiseNumber") or info.get("ApartmentNumber"))[:20]
                       if appeal.get("PremiseNumber") or info.get("ApartmentNumber") else None),
        ),
        text=str(appeal["AppealText"])[:MAX_TEXT_CHARS] or "(пустой текст обращения в ГИС ЖКХ)",
        category=category_of_topic(topic_name),
        collective=bool(appeal.get("Collective")),
        attachments=attachment_refs(appeal.get("Attachment")),
        channel_meta=meta,
    )


@dataclass(frozen=True)
class GisParty:
    answerer_guid: str | None = None
    org_guid: str | None = None


class PartyMap:
    """party_id -> GisParty, from a CSV with columns party_id, answerer_guid, org_guid (comment optional)."""

    def __init__(self, parties: Mapping[str, GisParty]) -> None:
        self.parties = dict(parties)

    @classmethod
    def load(cls, path: Path | None) -> PartyMap:
        if path is None:
            return cls({})
        parties: dict[str, GisParty] = {}
        with open(path, encoding="utf-8", newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                pid = (row.get("party_id") or "").strip()
                answerer = (row.get("answerer_guid") or "").strip() or None
                org = (row.get("org_guid") or "").strip() or None
                if not pid or (answerer is None) == (org is None):
                    raise ValueError(f"{path}:{line}: need party_id and exactly one of answerer_guid, org_guid")
                for g in (answerer, org):
                    if g is not None:
                        uuid.UUID(g)  # raises with the bad value's position in the message
                parties[pid] = GisParty(answerer, org)
        return cls(parties)

    def get(self, party_id: str | None) -> GisParty | None:
        return self.parties.get(party_id or "")


# ---- the importAnswer structures ----------------------------------------------------------------

APPEAL_ACTIONS = ("Performer", "Executed", "RedirectAppeal", "RollOverAppeal", "AnswerIsNotRequired")
ANSWER = "Answer"


def action_payload(kind: str, answerer: str, **kw: Any) -> dict[str, Any]:
    """The stored payload of one action (strings only: it lives in MongoDB until sent)."""
    if kind == "Performer":
        body: dict[str, Any] = {"AnswererGUID": answerer}
        if kw.get("date_of_appointment"):
            body["DateOfAppointment"] = kw["date_of_appointment"]
        return {"Performer": body}
    if kind == "Executed":
        return {"Executed": {"AnswererGUID": answerer}}
    if kind == "RedirectAppeal":
        return {"RedirectAppeal": [{
            "Receiver": {"orgRootEntityGUID": kw["receiver"]},
            "Comment": kw["comment"],
            "AnswererGUID": answerer,
        }]}
    if kind == "RollOverAppeal":
        return {"RollOverAppeal": {
            "ExecutionDate": kw["execution_date"],
            "Comment": kw["comment"],
            "AnswererGUID": answerer,
        }}
    if kind == "AnswerIsNotRequired":
        return {"AnswerIsNotRequired": {"Cause": kw["cause"], "AnswererGUID": answerer}}
    if kind == ANSWER:
        return {"Answer": [{
            "TransportGUID": kw["answer_transport_guid"],
            "AnswererGUID": answerer,
            "LoadAnswer": {"AnswerText": kw["text"][:GIS_TEXT_LIMIT],
                           **({"Attachment": list(kw["attachments"])} if kw.get("attachments") else {})},
            "SendAnswer": True,
        }]}
    raise ValueError(f"unknown ГИС action {kind}")


def _dates(value: Any) -> Any:
    """Stored ISO dates back to ``date`` for zeep (xs:date)."""
    if isinstance(value, dict):
        return {k: (date.fromisoformat(v) if k in ("ExecutionDate", "DateOfAppointment") and isinstance(v, str) else _dates(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_dates(v) for v in value]
    return value


def zeep_action(item: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """('answer' | 'appeal', the AnswerAction / AppealAction structure) of a queue item."""
    head = {"TransportGUID": item["_id"], "AppealGUID": item["appeal_guid"]}
    section = "answer" if item["kind"] == ANSWER else "appeal"
    return section, {**head, **_dates(item["payload"])}
