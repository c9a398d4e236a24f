"""The emulated ГИС ЖКХ AppealsAsync: appeals, asynchronous messages, faults and the record.

Pure logic: no HTTP and no XML. ``server.py`` parses SOAP requests into the request dataclasses
below, calls ``submit`` / ``get_state`` and serialises what they return. Everything runs on one
asyncio event loop and no method awaits, so every call is atomic.

Personal data (names, phones, e-mails, texts) is fictional and never logged; logs carry GUIDs,
operations and counts only.
"""

from __future__ import annotations

import copy
import csv
import itertools
import logging
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("devtools.gis_emulator")

DEFAULT_ORG_PPA_GUID = "0f6f1d2a-5c1e-4b8e-9f00-000000000059"
DEMO_HOUSE_GUID = "5e2a3b4c-1d2e-4f50-8a9b-0c1d2e3f4a5b"
OKTMO_CODE = "57701000"
OKTMO_NAME = "Пермский городской округ"
REGION_CODE = "59"

OPERATIONS = ("exportAppeal", "importAnswer", "getState")
ASYNC_OPERATIONS = ("exportAppeal", "importAnswer")
STATUSES = ("Send", "InWork", "Executed", "Withdrawn")
RECEIVED, IN_PROGRESS, PROCESSED = 1, 2, 3

# Codes and Russian descriptions. INT002012 is the real ГИС ЖКХ code; EMU-* are the emulator's own.
NOTHING_TO_EXPORT = "INT002012"
ERRORS: dict[str, str] = {
    NOTHING_TO_EXPORT: "Нет объектов для экспорта",
    "EMU-001": "Обращение не найдено",
    "EMU-002": "Нет отправленного ответа",
    "EMU-003": "Обращение закрыто или передано в другую организацию",
    "EMU-004": "Срок уже продлевался",
    "EMU-005": "Организация-адресат не найдена",
    "EMU-006": "Исполнитель не назначен",
    "EMU-007": "Исполнитель не найден",
    "EMU-008": "Новый срок исполнения должен быть позже текущего",
    "EMU-009": "Ответ уже отправлен: изменить или удалить его нельзя",
    "EMU-010": "Не указан текст ответа",
    "EMU-011": "Не указано ни одного действия",
    "EMU-NOMSG": "Сообщение с таким MessageGUID не найдено",
    "EMU-BUSINESS": "Ошибка обработки обращения (внедрена эмулятором)",
    "EMU-MSG": "Ошибка обработки сообщения (внедрена эмулятором)",
}
ANSWER_NOT_FOUND = "Ответ не найден"


@dataclass(frozen=True)
class GisError:
    code: str
    description: str

    @classmethod
    def of(cls, code: str, description: str | None = None) -> GisError:
        return cls(code, description if description is not None else ERRORS.get(code, ""))


# ---------------------------------------------------------------------------------------------
# Reference data (fictional)

_GUID_NS = uuid.UUID("7b1c9a52-4f0e-4c8e-9d55-2a6f0c3e5b59")


@dataclass(frozen=True)
class Topic:
    """An НСИ 220-style appeal topic. Codes and GUIDs are fictional, not the real НСИ 220 values."""

    code: str
    guid: str
    name: str


def _topic(code: str, name: str) -> Topic:
    return Topic(code, str(uuid.uuid5(_GUID_NS, f"nsi-220/{code}")), name)


TOPICS: dict[str, Topic] = {t.code: t for t in (
    _topic("1.1", "Отопление"),
    _topic("1.2", "Горячее водоснабжение"),
    _topic("1.3", "Холодное водоснабжение"),
    _topic("2.1", "Протечка кровли"),
    _topic("2.2", "Содержание и уборка общего имущества"),
    _topic("2.3", "Работа лифта"),
    _topic("3.1", "Вывоз твёрдых коммунальных отходов"),
    _topic("4.1", "Электроснабжение"),
    _topic("5.1", "Начисление платы за жилищно-коммунальные услуги"),
)}

COMPLAINTS: tuple[tuple[str, str], ...] = (
    ("1.1", "В квартире холодные батареи уже неделю, в комнатах не выше 16 градусов. Прошу восстановить отопление."),
    ("1.1", "Стояк отопления в подъезде холодный, радиаторы на лестнице не греют. Прошу провести проверку."),
    ("1.2", "Третий день нет горячей воды, в аварийной службе не берут трубку. Прошу принять меры."),
    ("1.2", "Горячая вода идёт чуть тёплая, не выше 35 градусов. Прошу устранить неисправность и сделать перерасчёт."),
    ("1.3", "На пятом этаже очень слабый напор холодной воды, по вечерам воды нет совсем."),
    ("2.1", "После дождя с крыши течёт в квартиру на последнем этаже, намок потолок. Прошу отремонтировать кровлю."),
    ("2.2", "В подъезде не убирают больше двух недель, на лестнице не работает освещение."),
    ("2.3", "Лифт не работает с понедельника, в доме много пожилых жильцов. Прошу срочно отремонтировать."),
    ("3.1", "Контейнерная площадка переполнена, мусор не вывозят уже пять дней."),
    ("4.1", "В квартирах пропадает электричество и скачет напряжение, сгорел холодильник."),
    ("5.1", "В квитанции за отопление сумма вдвое больше прошлого месяца. Прошу проверить начисление."),
)

# (male surname, female surname)
_SURNAMES = (("Иванов", "Иванова"), ("Смирнов", "Смирнова"), ("Кузнецов", "Кузнецова"), ("Попов", "Попова"),
             ("Соколов", "Соколова"), ("Лебедев", "Лебедева"), ("Новиков", "Новикова"), ("Морозов", "Морозова"))
_MALE_NAMES = ("Алексей", "Сергей", "Дмитрий", "Андрей", "Михаил", "Игорь")
_FEMALE_NAMES = ("Мария", "Елена", "Ольга", "Наталья", "Анна", "Татьяна")
# (male patronymic, female patronymic)
_PATRONYMICS = (("Петрович", "Петровна"), ("Иванович", "Ивановна"), ("Сергеевич", "Сергеевна"),
                ("Николаевич", "Николаевна"), ("Александрович", "Александровна"))
# Fictional postal addresses of the sample directory's houses (devtools/sample_directory/houses.csv).
HOUSE_ADDRESSES = {
    DEMO_HOUSE_GUID: "г. Пермь, ул. Ленина, д. 10",
    "9a6f1c2e-7b3d-4e8a-9c0b-1d2e3f4a5b6c": "г. Пермь, ул. Уральская, д. 3",
    "c3d4e5f6-0a1b-4c2d-8e3f-405162738495": "г. Пермь, ул. Садовая, д. 21",
}


# ---------------------------------------------------------------------------------------------
# Appeals


@dataclass
class Applicant:
    surname: str
    first_name: str
    patronymic: str | None = None
    post_address: str | None = None
    apartment_number: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class FileRef:
    """A file in ГИС ЖКХ's file store, as base:AttachmentType names it (the bytes are not emulated)."""

    guid: str
    name: str
    description: str
    hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"attachment_guid": self.guid, "name": self.name, "description": self.description, "hash": self.hash}


@dataclass
class Answer:
    guid: str
    number: str
    answerer_guid: str
    text: str
    sent: bool = False
    send_date: date | None = None
    create_date: date | None = None  # when it was loaded (StartCreateDate/EndCreateDate of exportAppeal)
    attachments: list[FileRef] = field(default_factory=list)


@dataclass
class HistoryEntry:
    """One AppealHistory element. kind: Performer (ChangeDate only), Answer, Redirected, RolledOver, IsNotRequired,
    Assesment (the citizen's assessment of the answer). ``data["attachments"]`` holds FileRefs."""

    change_date: date
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Appeal:
    guid: str
    number: str
    create_date: date
    applicant: Applicant
    text: str
    topic: Topic | None = None
    another_topic: str | None = None
    fias_house_guid: str | None = DEMO_HOUSE_GUID
    oktmo_code: str = OKTMO_CODE
    oktmo_name: str | None = OKTMO_NAME
    status: str = "Send"
    answerer_guid: str | None = None
    date_of_appointment: date | None = None
    answers: list[Answer] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    rolled_over: bool = False
    execution_end_date: date | None = None
    redirected_to: list[str] = field(default_factory=list)
    not_required: bool = False
    not_required_cause: str | None = None
    withdrawn: bool = False
    withdrawn_comment: str | None = None
    from_mobile: bool = False
    collective: bool = False
    npa_requirements: str | None = None
    attachments: list[FileRef] = field(default_factory=list)
    neighbours: list[Applicant] = field(default_factory=list)  # NeighbourInfo: co-applicants of a collective appeal
    answer_seq: int = 0  # answers ever created: AnswerNumber = <AppealNumber>/<seq>

    @property
    def closed(self) -> bool:
        return self.status in ("Withdrawn", "Executed") or self.not_required or bool(self.redirected_to)

    def answer(self, guid: str) -> Answer | None:
        return next((a for a in self.answers if a.guid == guid), None)

    def to_json(self) -> dict[str, Any]:
        a = self.applicant
        return {
            "appeal_guid": self.guid,
            "appeal_number": self.number,
            "create_date": self.create_date.isoformat(),
            "status": self.status,
            "answerer_guid": self.answerer_guid,
            "date_of_appointment": _iso(self.date_of_appointment),
            "topic": None if self.topic is None else
            {"code": self.topic.code, "guid": self.topic.guid, "name": self.topic.name},
            "another_topic": self.another_topic,
            "fias_house_guid": self.fias_house_guid,
            "oktmo": {"code": self.oktmo_code, "name": self.oktmo_name},
            "text": self.text,
            "applicant": _applicant_json(a),
            "answers": [
                {"answer_guid": x.guid, "answer_number": x.number, "answerer_guid": x.answerer_guid, "text": x.text,
                 "sent": x.sent, "send_date": _iso(x.send_date), "create_date": _iso(x.create_date),
                 "attachments": [f.to_json() for f in x.attachments]}
                for x in self.answers
            ],
            "rolled_over": self.rolled_over,
            "execution_end_date": _iso(self.execution_end_date),
            "redirected_to": self.redirected_to[-1] if self.redirected_to else None,
            "redirected_receivers": list(self.redirected_to),
            "not_required": self.not_required,
            "not_required_cause": self.not_required_cause,
            "withdrawn": self.withdrawn,
            "withdrawn_comment": self.withdrawn_comment,
            "from_mobile": self.from_mobile,
            "collective": self.collective,
            "npa_requirements": self.npa_requirements,
            "attachments": [f.to_json() for f in self.attachments],
            "neighbours": [_applicant_json(n) for n in self.neighbours],
            "history": [{"change_date": h.change_date.isoformat(), "kind": h.kind, **_jsonable(h.data)}
                        for h in self.history],
        }


# ---------------------------------------------------------------------------------------------
# Parsed requests (built by server.py from the SOAP body)


@dataclass(frozen=True)
class ExportRequest:
    appeal_guids: tuple[str, ...] = ()
    appeal_numbers: tuple[str, ...] = ()
    start_date: date | None = None
    end_date: date | None = None
    fias_house_guids: tuple[str, ...] = ()
    # AppealStatus values: Send, InWork, Executed, Withdrawn; "NotSent" matches nothing (ГИС never exports
    # appeals that are not sent, as the published schema says)
    statuses: tuple[str, ...] = ()
    theme_code: str | None = None  # AppealTheme (НСИ 220): Code, and GUID when given
    theme_guid: str | None = None
    answer_guids: tuple[str, ...] = ()
    answer_created_from: date | None = None  # StartCreateDate .. EndCreateDate of an answer
    answer_created_to: date | None = None
    answer_sent_from: date | None = None  # StartPostDate .. EndPostDate of a sent answer
    answer_sent_to: date | None = None

    @property
    def by_answer_dates(self) -> bool:
        return any(d is not None for d in (self.answer_created_from, self.answer_created_to,
                                           self.answer_sent_from, self.answer_sent_to))


@dataclass(frozen=True)
class AnswerItem:
    transport_guid: str
    answerer_guid: str
    answer_guid: str | None = None
    text: str | None = None  # LoadAnswer/AnswerText
    send: bool = False
    delete: bool = False
    attachments: tuple[FileRef, ...] = ()  # LoadAnswer/Attachment


@dataclass(frozen=True)
class AnswerAction:
    transport_guid: str
    answers: tuple[AnswerItem, ...]
    appeal_guid: str | None = None
    appeal_number: str | None = None


@dataclass(frozen=True)
class Performer:
    answerer_guid: str
    date_of_appointment: date | None = None


@dataclass(frozen=True)
class RedirectAppeal:
    receiver: str
    answerer_guid: str
    comment: str | None = None
    attachments: tuple[FileRef, ...] = ()


@dataclass(frozen=True)
class RollOverAppeal:
    execution_date: date
    comment: str
    answerer_guid: str
    attachments: tuple[FileRef, ...] = ()


@dataclass(frozen=True)
class AnswerIsNotRequired:
    cause: str
    answerer_guid: str


@dataclass(frozen=True)
class AppealAction:
    transport_guid: str
    appeal_guid: str | None = None
    appeal_number: str | None = None
    performer: Performer | None = None
    executed: str | None = None  # Executed/AnswererGUID
    redirects: tuple[RedirectAppeal, ...] = ()
    rollover: RollOverAppeal | None = None
    not_required: AnswerIsNotRequired | None = None


@dataclass(frozen=True)
class ImportRequest:
    answer_actions: tuple[AnswerAction, ...] = ()
    appeal_actions: tuple[AppealAction, ...] = ()


# ---------------------------------------------------------------------------------------------
# Messages and results


@dataclass(frozen=True)
class ImportResult:
    """One base:CommonResultType: GUID/UniqueNumber/UpdateDate on success, else the error."""

    transport_guid: str
    guid: str | None = None
    unique_number: str | None = None
    update_date: datetime | None = None
    error: GisError | None = None


@dataclass(frozen=True)
class MessageResult:
    error: GisError | None = None
    import_results: tuple[ImportResult, ...] = ()
    exported: tuple[Appeal, ...] = ()  # snapshots taken at completion


@dataclass(frozen=True)
class Ack:
    message_guid: str
    requester_message_guid: str
    created: bool  # False for a resend of a RequestHeader MessageGUID already received


@dataclass(frozen=True)
class StateReply:
    request_state: int
    message_guid: str
    result: MessageResult | None = None


@dataclass
class Message:
    guid: str
    operation: str
    request: ExportRequest | ImportRequest
    requester_guid: str
    created_at: datetime
    created_monotonic: float
    polls: int = 0
    stuck: bool = False
    result: MessageResult | None = None


# ---------------------------------------------------------------------------------------------
# Faults

FAULT_KINDS = ("http_503", "timeout", "stuck", "business", "message_error")


@dataclass
class Fault:
    kind: str
    count: int = 1
    operation: str | None = None
    seconds: float = 0.0
    after_accept: bool = False
    appeal_guid: str | None = None
    code: str | None = None
    description: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        if not isinstance(data, Mapping):
            raise ValueError("a fault is a JSON object")
        allowed = {"kind", "count", "operation", "seconds", "after_accept", "appeal_guid", "code", "description"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        count = data.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("count must be a positive integer")
        operation = data.get("operation")
        if operation is not None and (kind not in ("http_503", "timeout") or operation not in OPERATIONS):
            raise ValueError(f"operation applies to http_503/timeout and must be one of {OPERATIONS}")
        fault = cls(kind=kind, count=count, operation=operation)
        if kind == "timeout":
            seconds = data.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
                raise ValueError("timeout needs seconds > 0")
            fault.seconds = float(seconds)
            fault.after_accept = bool(data.get("after_accept", False))
        if kind == "business":
            fault.appeal_guid = _guid(data.get("appeal_guid"), "appeal_guid")
        if kind in ("business", "message_error"):
            default = "EMU-BUSINESS" if kind == "business" else "EMU-MSG"
            fault.code = str(data.get("code") or default)
            fault.description = str(data.get("description") or ERRORS.get(fault.code, ERRORS[default]))
        return fault

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "count": self.count}
        if self.kind in ("http_503", "timeout"):
            out["operation"] = self.operation
        if self.kind == "timeout":
            out.update(seconds=self.seconds, after_accept=self.after_accept)
        if self.kind == "business":
            out["appeal_guid"] = self.appeal_guid
        if self.kind in ("business", "message_error"):
            out.update(code=self.code, description=self.description)
        return out


# ---------------------------------------------------------------------------------------------
# The state


class EmulatorState:
    """Appeals of one organisation (``org_ppa_guid``) in ГИС ЖКХ, as AppealsAsync sees them.

    answerers: GUIDs of the organisation's performers (Performer / AnswererGUID must be one of them).
    orgs: orgRootEntityGUIDs of other ГИС organisations (RedirectAppeal receivers).
    A message completes on the getState poll that makes ``polls >= polls_to_complete`` once
    ``processing_delay_s`` has passed since it was accepted; it is processed then, exactly once.
    """

    def __init__(
        self,
        *,
        org_ppa_guid: str = DEFAULT_ORG_PPA_GUID,
        answerers: Iterable[str] = (),
        orgs: Iterable[str] = (),
        processing_delay_s: float = 0.05,
        polls_to_complete: int = 2,
        seed: int = 0,
        random_seed: int | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if processing_delay_s < 0 or polls_to_complete < 0 or seed < 0:
            raise ValueError("processing_delay_s, polls_to_complete and seed must not be negative")
        self.org_ppa_guid = _guid(org_ppa_guid, "org_ppa_guid")
        self.answerers = frozenset(_guid(g, "answerer") for g in answerers)
        self.orgs = frozenset(_guid(g, "org") for g in orgs)
        self.processing_delay_s = processing_delay_s
        self.polls_to_complete = polls_to_complete
        self._now = now or (lambda: datetime.now(UTC))
        self._rng = random.Random(random_seed)
        self._extra_rng = random.Random(None if random_seed is None else f"{random_seed}/files-and-neighbours")
        self._appeals: dict[str, Appeal] = {}
        self._by_number: dict[str, str] = {}
        self._numbers = itertools.count(1)
        self._messages: dict[str, Message] = {}
        self._acks: dict[str, Ack] = {}  # RequestHeader MessageGUID -> Ack
        self._results: dict[str, ImportResult] = {}  # TransportGUID -> first result
        self._applied: list[dict[str, Any]] = []
        self._applied_counts: Counter[str] = Counter()
        self._duplicates: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()
        self._faults: list[Fault] = []
        if seed:
            self.create_appeals(generate=seed)

    @classmethod
    def from_party_map(cls, path: str | Path, **kwargs: Any) -> EmulatorState:
        """Answerers and receiver organisations from a CSV party_id,answerer_guid,org_guid,comment."""
        answerers, orgs = set(kwargs.pop("answerers", ())), set(kwargs.pop("orgs", ()))
        with Path(path).open(encoding="utf-8", newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    if (row.get("answerer_guid") or "").strip():
                        answerers.add(_guid(row["answerer_guid"].strip(), "answerer_guid"))
                    if (row.get("org_guid") or "").strip():
                        orgs.add(_guid(row["org_guid"].strip(), "org_guid"))
                except ValueError as exc:
                    raise ValueError(f"{path}:{line}: {exc}") from None
        return cls(answerers=answerers, orgs=orgs, **kwargs)

    # -- time -----------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._now()

    def today(self) -> date:
        return self._now().astimezone(UTC).date()

    # -- appeals --------------------------------------------------------------------------------

    APPEAL_FIELDS = frozenset({
        "appeal_guid", "appeal_number", "create_date", "fias_house_guid", "text", "topic_code", "another_topic",
        "surname", "first_name", "patronymic", "post_address", "apartment_number", "email", "phone",
        "execution_end_date", "from_mobile", "collective", "npa_requirements", "oktmo_code", "oktmo_name",
        "attachments", "neighbours",
    })
    NEIGHBOUR_FIELDS = frozenset({"surname", "first_name", "patronymic", "post_address", "apartment_number", "email",
                                  "phone"})
    ATTACHMENT_FIELDS = frozenset({"name", "description", "attachment_guid", "hash"})

    def create_appeals(
        self, appeals: Iterable[Mapping[str, Any]] = (), generate: int = 0, create_date: date | str | None = None,
        fias_house_guid: str | None = None,
    ) -> list[Appeal]:
        """Creates one appeal per overrides mapping plus ``generate`` generated ones. All or nothing."""
        specs = [dict(a) for a in appeals] + [{} for _ in range(generate)]
        defaults: dict[str, Any] = {}
        if create_date is not None:
            defaults["create_date"] = create_date
        if fias_house_guid is not None:
            defaults["fias_house_guid"] = fias_house_guid
        built = [self._build_appeal({**defaults, **spec}) for spec in specs]
        guids = [a.guid for a in built]
        numbers = [a.number for a in built]
        if len(set(guids)) != len(guids) or any(g in self._appeals for g in guids):
            raise ValueError("appeal_guid already exists")
        if len(set(numbers)) != len(numbers) or any(n in self._by_number for n in numbers):
            raise ValueError("appeal_number already exists")
        for a in built:
            self._appeals[a.guid] = a
            self._by_number[a.number] = a.guid
        log.info("appeals created: %d", len(built))
        return built

    def _build_appeal(self, spec: Mapping[str, Any]) -> Appeal:
        unknown = set(spec) - self.APPEAL_FIELDS
        if unknown:
            raise ValueError(f"unknown appeal fields: {sorted(unknown)}")
        rng = self._rng
        created = _date(spec.get("create_date"), "create_date") or self.today()
        topic_code, text = rng.choice(COMPLAINTS)
        if "topic_code" in spec:
            if spec["topic_code"] not in TOPICS:
                raise ValueError(f"topic_code must be one of {sorted(TOPICS)}")
            topic_code = spec["topic_code"]
            text = rng.choice([t for code, t in COMPLAINTS if code == topic_code])
        female = rng.random() < 0.5
        surname = rng.choice(_SURNAMES)[int(female)]
        first_name = rng.choice(_FEMALE_NAMES if female else _MALE_NAMES)
        patronymic = rng.choice(_PATRONYMICS)[int(female)]
        fias = spec.get("fias_house_guid", DEMO_HOUSE_GUID)
        fias = _guid(fias, "fias_house_guid") if fias else None
        number = spec.get("appeal_number") or self._next_number(created.year)
        another_topic = spec.get("another_topic")
        applicant = Applicant(
            surname=spec.get("surname", surname),
            first_name=spec.get("first_name", first_name),
            patronymic=spec.get("patronymic", patronymic),
            post_address=spec.get("post_address", HOUSE_ADDRESSES.get(fias or "")),
            apartment_number=spec.get("apartment_number", str(rng.randint(1, 180))),
            email=spec.get("email", f"zhitel{rng.randint(100, 99999)}@example.org"),
            phone=spec.get("phone", f"+79{rng.randint(0, 99):02d}{rng.randint(0, 9999999):07d}"),
        )
        end = _date(spec.get("execution_end_date"), "execution_end_date") or created + timedelta(days=30)
        from_mobile = bool(spec.get("from_mobile", rng.random() < 0.3))
        collective = bool(spec.get("collective", rng.random() < 0.1))
        # attachments and neighbours come from their own generator, so adding them left the rest as it was
        extra = self._extra_rng
        if "attachments" in spec:
            attachments = self._attachments(spec["attachments"])
        else:
            attachments = [self._generated_file(extra, n) for n in range(extra.choice((0, 0, 0, 1, 2)))]
        if "neighbours" in spec:
            neighbours = self._neighbours(spec["neighbours"])
        else:
            neighbours = [self._generated_person(extra, applicant.post_address)
                          for _ in range(extra.randint(1, 2) if collective else 0)]
        return Appeal(
            guid=_guid(spec.get("appeal_guid") or str(uuid.uuid4()), "appeal_guid"),
            number=str(number),
            create_date=created,
            applicant=applicant,
            text=str(spec.get("text", text)),
            topic=None if another_topic else TOPICS[topic_code],
            another_topic=another_topic,
            fias_house_guid=fias,
            oktmo_code=str(spec.get("oktmo_code", OKTMO_CODE)),
            oktmo_name=spec.get("oktmo_name", OKTMO_NAME),
            execution_end_date=end,
            from_mobile=from_mobile,
            collective=collective,
            npa_requirements=spec.get("npa_requirements"),
            attachments=attachments,
            neighbours=neighbours,
        )

    def _attachments(self, items: Any) -> list[FileRef]:
        if not isinstance(items, list) or not all(isinstance(x, Mapping) for x in items):
            raise ValueError("attachments must be a list of objects")
        out = []
        for x in items:
            unknown = set(x) - self.ATTACHMENT_FIELDS
            if unknown:
                raise ValueError(f"unknown attachment fields: {sorted(unknown)}")
            name = x.get("name")
            if not isinstance(name, str) or not 1 <= len(name) <= 1024:
                raise ValueError("an attachment needs a name of 1..1024 characters")
            description = x.get("description") or name[:500]
            if not isinstance(description, str) or len(description) > 500:
                raise ValueError("an attachment description has at most 500 characters")
            digest = x.get("hash")
            if digest is not None and (not isinstance(digest, str) or not digest):
                raise ValueError("an attachment hash is a non-empty string")
            out.append(FileRef(_guid(x.get("attachment_guid") or str(uuid.uuid4()), "attachment_guid"), name,
                               description, digest))
        return out

    def _neighbours(self, items: Any) -> list[Applicant]:
        if not isinstance(items, list) or not all(isinstance(x, Mapping) for x in items):
            raise ValueError("neighbours must be a list of objects")
        out = []
        for x in items:
            unknown = set(x) - self.NEIGHBOUR_FIELDS
            if unknown:
                raise ValueError(f"unknown neighbour fields: {sorted(unknown)}")
            if not x.get("surname") or not x.get("first_name"):
                raise ValueError("a neighbour needs surname and first_name")
            out.append(Applicant(**{k: str(v) for k, v in x.items() if v is not None}))
        return out

    @staticmethod
    def _generated_file(rng: random.Random, n: int) -> FileRef:
        name = rng.choice(("Фото протечки.jpg", "Фото радиатора.jpg", "Акт осмотра.pdf", "Квитанция.pdf",
                           "Видео подъезда.mp4"))
        return FileRef(str(uuid.UUID(int=rng.getrandbits(128), version=4)), name, name,
                       f"{rng.getrandbits(256):064x}")

    @staticmethod
    def _generated_person(rng: random.Random, post_address: str | None) -> Applicant:
        female = rng.random() < 0.5
        return Applicant(
            surname=rng.choice(_SURNAMES)[int(female)], first_name=rng.choice(_FEMALE_NAMES if female else _MALE_NAMES),
            patronymic=rng.choice(_PATRONYMICS)[int(female)], post_address=post_address,
            apartment_number=str(rng.randint(1, 180)),
        )

    def _next_number(self, year: int) -> str:
        while True:
            number = f"{REGION_CODE}-{year}-{next(self._numbers):07d}"
            if number not in self._by_number:
                return number

    def appeal(self, guid: str) -> Appeal | None:
        return self._appeals.get(str(guid).lower())

    def appeals(self) -> list[Appeal]:
        return list(self._appeals.values())

    def _find(self, guid: str | None, number: str | None) -> Appeal | None:
        if guid:
            return self._appeals.get(guid.lower())
        if number and number in self._by_number:
            return self._appeals[self._by_number[number]]
        return None

    def withdraw(self, guid: str, comment: str | None = None) -> Appeal:
        """The citizen withdraws the appeal in ГИС ЖКХ. KeyError: unknown; ValueError: already executed."""
        appeal = self._require(guid)
        if appeal.status == "Executed":
            raise ValueError("an executed appeal cannot be withdrawn")
        appeal.status, appeal.withdrawn, appeal.withdrawn_comment = "Withdrawn", True, comment
        log.info("appeal withdrawn: %s", appeal.guid)
        return appeal

    ASSESSMENTS = ("received", "partly", "not_satisfied")

    def assess(self, guid: str, result: str, comment: str | None = None) -> Appeal:
        """The citizen assesses the answer in ГИС (history ``Assesment``). KeyError: unknown appeal;
        ValueError: no sent answer yet, an unknown result, or a missing comment for partly/not_satisfied."""
        appeal = self._require(guid)
        if result not in self.ASSESSMENTS:
            raise ValueError(f"result must be one of {self.ASSESSMENTS}")
        if result == "received":
            comment = None
        elif not isinstance(comment, str) or not 1 <= len(comment) <= 1000:
            raise ValueError("partly and not_satisfied need a comment of 1..1000 characters")
        if not any(a.sent for a in appeal.answers):
            raise ValueError("there is no sent answer to assess")
        appeal.history.append(HistoryEntry(self.today(), "Assesment", {"result": result, "comment": comment}))
        log.info("appeal assessed: %s", appeal.guid)
        return appeal

    def drift(
        self, guid: str, clear_performer: bool = False, unsend_answers: bool = False, status: str | None = None,
    ) -> Appeal:
        """Someone changed the appeal in the ГИС web UI. The record is not touched."""
        appeal = self._require(guid)
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if clear_performer:
            appeal.answerer_guid, appeal.date_of_appointment = None, None
        if unsend_answers:
            for a in appeal.answers:
                a.sent, a.send_date = False, None
            for h in appeal.history:
                if h.kind == "Answer":
                    h.data["is_sent"], h.data["send_date"] = False, None
        if status is not None:
            appeal.status = status
        log.info("appeal drifted: %s", appeal.guid)
        return appeal

    def _require(self, guid: str) -> Appeal:
        appeal = self.appeal(guid)
        if appeal is None:
            raise KeyError(guid)
        return appeal

    # -- faults ---------------------------------------------------------------------------------

    def add_fault(self, spec: Mapping[str, Any] | Fault) -> Fault:
        fault = spec if isinstance(spec, Fault) else Fault.from_dict(spec)
        self._faults.append(fault)
        log.info("fault injected: %s x%d", fault.kind, fault.count)
        return fault

    def clear_faults(self) -> None:
        self._faults.clear()

    def faults(self) -> list[Fault]:
        return list(self._faults)

    def _take(self, match: Callable[[Fault], bool]) -> Fault | None:
        for fault in self._faults:
            if match(fault):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return replace(fault, count=1)
        return None

    def take_transport_fault(self, operation: str | None) -> Fault | None:
        """The next http_503/timeout fault that applies to a SOAP request for ``operation``."""
        return self._take(lambda f: f.kind in ("http_503", "timeout") and f.operation in (None, operation))

    # -- SOAP operations ------------------------------------------------------------------------

    def count_request(self, operation: str) -> None:
        self._requests[operation] += 1

    def submit(self, operation: str, requester_guid: str, request: ExportRequest | ImportRequest) -> Ack:
        """Accepts an exportAppeal/importAnswer. A RequestHeader MessageGUID seen before gets the same Ack."""
        if operation not in ASYNC_OPERATIONS:
            raise ValueError(operation)
        key = requester_guid.lower()
        if key in self._acks:
            return replace(self._acks[key], created=False)
        msg = Message(
            guid=str(uuid.uuid4()), operation=operation, request=request, requester_guid=requester_guid,
            created_at=self.now(), created_monotonic=time.monotonic(),
        )
        msg.stuck = self._take(lambda f: f.kind == "stuck") is not None
        self._messages[msg.guid] = msg
        ack = Ack(msg.guid, requester_guid, created=True)
        self._acks[key] = ack
        log.info("message accepted: %s %s%s", operation, msg.guid, " (stuck)" if msg.stuck else "")
        return ack

    def message(self, guid: str) -> Message | None:
        return self._messages.get(str(guid).lower())

    def messages(self) -> list[Message]:
        return list(self._messages.values())

    def get_state(self, message_guid: str) -> StateReply:
        msg = self.message(message_guid)
        if msg is None:
            return StateReply(PROCESSED, message_guid, MessageResult(error=GisError.of("EMU-NOMSG")))
        if msg.result is not None:
            return StateReply(PROCESSED, msg.guid, msg.result)
        msg.polls += 1
        ready = msg.polls >= self.polls_to_complete and (
            time.monotonic() - msg.created_monotonic >= self.processing_delay_s
        )
        if ready and not msg.stuck:
            msg.result = self._complete(msg)
            return StateReply(PROCESSED, msg.guid, msg.result)
        return StateReply(RECEIVED if msg.polls == 1 else IN_PROGRESS, msg.guid)

    def _complete(self, msg: Message) -> MessageResult:
        fault = self._take(lambda f: f.kind == "message_error")
        if fault is not None:
            result = MessageResult(error=GisError(fault.code or "EMU-MSG", fault.description or ""))
        elif isinstance(msg.request, ExportRequest):
            result = self._export(msg.request)
        else:
            result = self._import(msg.request, msg.guid)
        log.info(
            "message processed: %s %s -> %s", msg.operation, msg.guid,
            result.error.code if result.error else f"{len(result.import_results) or len(result.exported)} results",
        )
        return result

    # -- exportAppeal ---------------------------------------------------------------------------

    def _export(self, q: ExportRequest) -> MessageResult:
        if q.appeal_guids or q.appeal_numbers:
            found = [self._find(g, None) for g in dict.fromkeys(g.lower() for g in q.appeal_guids)]
            found += [self._find(None, n) for n in dict.fromkeys(q.appeal_numbers)]
            selected = [a for a in found if a is not None]
        elif q.answer_guids:  # in the order of the answers given, each appeal once
            by_answer = {x.guid: a for a in self._appeals.values() for x in a.answers}
            found = [by_answer.get(g.lower()) for g in q.answer_guids]
            selected = list({a.guid: a for a in found if a is not None}.values())
        elif q.by_answer_dates:
            def matches(x: Answer) -> bool:
                created, sent = x.create_date, x.send_date if x.sent else None
                return ((q.answer_created_from is None or (created is not None and created >= q.answer_created_from))
                        and (q.answer_created_to is None or (created is not None and created <= q.answer_created_to))
                        and (q.answer_sent_from is None or (sent is not None and sent >= q.answer_sent_from))
                        and (q.answer_sent_to is None or (sent is not None and sent <= q.answer_sent_to)))

            selected = sorted((a for a in self._appeals.values() if any(matches(x) for x in a.answers)),
                              key=lambda a: (a.create_date, a.number))
        else:
            fias = {g.lower() for g in q.fias_house_guids}
            selected = sorted(
                (a for a in self._appeals.values()
                 if (q.start_date is None or a.create_date >= q.start_date)
                 and (q.end_date is None or a.create_date <= q.end_date)
                 and (not fias or (a.fias_house_guid or "") in fias)
                 and (not q.statuses or a.status in q.statuses)
                 and (q.theme_code is None or (a.topic is not None and a.topic.code == q.theme_code
                                               and (q.theme_guid is None or a.topic.guid == q.theme_guid.lower())))),
                key=lambda a: (a.create_date, a.number),
            )
        if not selected:
            return MessageResult(error=GisError.of(NOTHING_TO_EXPORT))
        return MessageResult(exported=tuple(copy.deepcopy(a) for a in selected))

    # -- importAnswer ---------------------------------------------------------------------------

    def _import(self, req: ImportRequest, message_guid: str) -> MessageResult:
        if not req.answer_actions and not req.appeal_actions:
            return MessageResult(error=GisError.of("EMU-011"))
        results: list[ImportResult] = []
        for action in req.answer_actions:
            results.extend(self._answer_action(action, message_guid))
        for action in req.appeal_actions:
            results.append(self._appeal_action(action, message_guid))
        return MessageResult(import_results=tuple(results))

    def _seen(self, transport_guid: str) -> ImportResult | None:
        """The stored result of a TransportGUID handled in an earlier message (counted as a duplicate)."""
        key = transport_guid.lower()
        stored = self._results.get(key)
        if stored is None:
            return None
        self._duplicates[key] += 1
        return replace(stored, transport_guid=transport_guid)

    def _store(self, result: ImportResult) -> ImportResult:
        self._results[result.transport_guid.lower()] = result
        return result

    def _fail(self, transport_guid: str, code: str, description: str | None = None) -> ImportResult:
        return self._store(ImportResult(transport_guid, error=GisError.of(code, description)))

    def _gate(self, appeal: Appeal | None) -> GisError | None:
        """Checks common to every action on an appeal; consumes an injected business fault."""
        if appeal is None:
            return GisError.of("EMU-001")
        if appeal.closed:
            return GisError.of("EMU-003")
        fault = self._take(lambda f: f.kind == "business" and f.appeal_guid == appeal.guid)
        if fault is not None:
            return GisError(fault.code or "EMU-BUSINESS", fault.description or "")
        return None

    def _record(self, transport_guid: str, appeal: Appeal, kind: str, message_guid: str, at: datetime,
                details: dict[str, Any]) -> None:
        self._applied.append({
            "transport_guid": transport_guid, "appeal_guid": appeal.guid, "kind": kind, "message_guid": message_guid,
            "applied_at": at.isoformat(), "details": details,
        })
        self._applied_counts[transport_guid.lower()] += 1

    def _answer_action(self, action: AnswerAction, message_guid: str) -> list[ImportResult]:
        """One AnswerAction. Each Answer is applied on its own (its TransportGUID: GUID = AnswerGUID); the
        AnswerAction's TransportGUID (GUID = AppealGUID) succeeds when all its answers did, else it
        carries the first answer's error."""
        head = action.transport_guid
        tgs = [head, *(a.transport_guid for a in action.answers)]
        seen = {tg: self._seen(tg) for tg in tgs}
        if all(seen.values()):
            return [r for r in seen.values() if r is not None]
        appeal = self._find(action.appeal_guid, action.appeal_number)
        error = self._gate(appeal)
        if error is None and appeal is not None and not appeal.answerer_guid:
            error = GisError.of("EMU-006")
        if error is not None or appeal is None:
            error = error or GisError.of("EMU-001")
            return [seen[tg] or self._fail(tg, error.code, error.description) for tg in tgs]
        answers = [seen[item.transport_guid] or self._answer(appeal, item, message_guid) for item in action.answers]
        head_result = seen[head]
        if head_result is None:
            failed = next((r.error for r in answers if r.error is not None), None)
            if failed is not None:
                head_result = self._fail(head, failed.code, failed.description)
            else:
                now = self.now()
                sent = [r.guid for r, item in zip(answers, action.answers, strict=True) if item.send]
                kind = "SendAnswer" if sent else "LoadAnswer" if any(i.text is not None for i in action.answers) \
                    else "DeleteAnswer"
                self._record(head, appeal, kind, message_guid, now, {
                    "answer_guids": [r.guid for r in answers], "sent_answer_guids": sent,
                })
                head_result = self._store(ImportResult(head, appeal.guid, None, now))
        return [head_result, *answers]

    def _answer(self, appeal: Appeal, item: AnswerItem, message_guid: str) -> ImportResult:
        tg = item.transport_guid
        if item.answerer_guid.lower() not in self.answerers:
            return self._fail(tg, "EMU-007")
        if item.text is None and not item.send and not item.delete:
            return self._fail(tg, "EMU-011")
        existing = appeal.answer(item.answer_guid.lower()) if item.answer_guid else None
        if item.answer_guid or item.delete:
            if existing is None:
                return self._fail(tg, "EMU-001", ANSWER_NOT_FOUND)
            if existing.sent:
                return self._fail(tg, "EMU-009")
        elif item.text is None:
            return self._fail(tg, "EMU-010")
        now, today = self.now(), self.today()
        if item.delete and existing is not None:
            appeal.answers.remove(existing)
            self._record(tg, appeal, "DeleteAnswer", message_guid, now,
                         {"answer_guid": existing.guid, "answerer_guid": item.answerer_guid.lower()})
            return self._store(ImportResult(tg, existing.guid, existing.number, now))
        answer = existing
        if answer is None:
            appeal.answer_seq += 1
            answer = Answer(
                guid=str(uuid.uuid4()), number=f"{appeal.number}/{appeal.answer_seq}",
                answerer_guid=item.answerer_guid.lower(), text=item.text or "", create_date=today,
                attachments=list(item.attachments),
            )
            appeal.answers.append(answer)
        elif item.text is not None:  # LoadAnswer again: the text and its files replace the earlier ones
            answer.text, answer.answerer_guid = item.text, item.answerer_guid.lower()
            answer.attachments = list(item.attachments)
        if item.send:
            answer.sent, answer.send_date = True, today
            appeal.history.append(HistoryEntry(today, "Answer", {
                "answer_guid": answer.guid, "answer_number": answer.number, "send_date": today,
                "answerer_guid": answer.answerer_guid, "text": answer.text, "is_sent": True,
                "attachments": list(answer.attachments),
            }))
        self._record(tg, appeal, "LoadAnswer" if item.text is not None else "SendAnswer", message_guid, now, {
            "answer_guid": answer.guid, "answer_number": answer.number, "answerer_guid": answer.answerer_guid,
            "loaded": item.text is not None, "sent": item.send, "send_answer_date": _iso(answer.send_date),
        })
        return self._store(ImportResult(tg, answer.guid, answer.number, now))

    def _appeal_action(self, action: AppealAction, message_guid: str) -> ImportResult:
        tg = action.transport_guid
        stored = self._seen(tg)
        if stored is not None:
            return stored
        appeal = self._find(action.appeal_guid, action.appeal_number)
        error = self._gate(appeal)
        if error is not None or appeal is None:
            error = error or GisError.of("EMU-001")
            return self._fail(tg, error.code, error.description)
        # Validate and apply on a copy, child by child in XSD order; commit only if every child passed.
        work = copy.deepcopy(appeal)
        today = self.today()
        kinds: list[str] = []
        details: dict[str, Any] = {}
        if action.performer is not None:
            p = action.performer
            if p.answerer_guid.lower() not in self.answerers:
                return self._fail(tg, "EMU-007")
            work.answerer_guid = p.answerer_guid.lower()
            work.date_of_appointment = p.date_of_appointment or today
            work.status = "InWork"
            work.history.append(HistoryEntry(today, "Performer", {"answerer_guid": work.answerer_guid}))
            kinds.append("Performer")
            details.update(answerer_guid=work.answerer_guid, date_of_appointment=work.date_of_appointment.isoformat())
        if action.executed is not None:
            if action.executed.lower() not in self.answerers:
                return self._fail(tg, "EMU-007")
            if not any(a.sent for a in work.answers):
                return self._fail(tg, "EMU-002")
            work.status = "Executed"
            kinds.append("Executed")
            details.setdefault("answerer_guid", action.executed.lower())
        for r in action.redirects:
            if r.answerer_guid.lower() not in self.answerers:
                return self._fail(tg, "EMU-007")
            if r.receiver.lower() not in self.orgs:
                return self._fail(tg, "EMU-005")
            work.redirected_to.append(r.receiver.lower())
            work.history.append(HistoryEntry(today, "Redirected", {
                "receiver": r.receiver.lower(), "comment": r.comment, "answerer_guid": r.answerer_guid.lower(),
                "attachments": list(r.attachments),
            }))
            if "RedirectAppeal" not in kinds:
                kinds.append("RedirectAppeal")
            details.setdefault("receivers", []).append(r.receiver.lower())
            details.setdefault("answerer_guid", r.answerer_guid.lower())
        if action.rollover is not None:
            r = action.rollover
            if r.answerer_guid.lower() not in self.answerers:
                return self._fail(tg, "EMU-007")
            if work.rolled_over:
                return self._fail(tg, "EMU-004")
            if work.execution_end_date is not None and r.execution_date <= work.execution_end_date:
                return self._fail(tg, "EMU-008")
            work.rolled_over, work.execution_end_date = True, r.execution_date
            work.history.append(HistoryEntry(today, "RolledOver", {
                "execution_date": r.execution_date, "comment": r.comment, "answerer_guid": r.answerer_guid.lower(),
                "attachments": list(r.attachments),
            }))
            kinds.append("RollOverAppeal")
            details.update(execution_date=r.execution_date.isoformat())
            details.setdefault("answerer_guid", r.answerer_guid.lower())
        if action.not_required is not None:
            n = action.not_required
            if n.answerer_guid.lower() not in self.answerers:
                return self._fail(tg, "EMU-007")
            work.not_required, work.not_required_cause, work.status = True, n.cause, "Executed"
            work.history.append(HistoryEntry(today, "IsNotRequired", {"cause": n.cause}))
            kinds.append("AnswerIsNotRequired")
            details.setdefault("answerer_guid", n.answerer_guid.lower())
        if not kinds:
            return self._fail(tg, "EMU-011")
        appeal.__dict__.update(work.__dict__)
        now = self.now()
        self._record(tg, appeal, kinds[0], message_guid, now, {"kinds": kinds, **details})
        return self._store(ImportResult(tg, appeal.guid, None, now))

    # -- the record -----------------------------------------------------------------------------

    def applied_count(self, transport_guid: str) -> int:
        return self._applied_counts[transport_guid.lower()]

    def applied(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._applied)

    def duplicates(self) -> dict[str, int]:
        return dict(self._duplicates)

    def record(self) -> dict[str, Any]:
        return {
            "applied": self.applied(),
            "duplicates": self.duplicates(),
            "requests": {op: self._requests[op] for op in OPERATIONS},
        }


# ---------------------------------------------------------------------------------------------
# helpers

_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _guid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _GUID_RE.match(value):
        raise ValueError(f"{what} must be a GUID")
    return value.lower()


def _date(value: Any, what: str) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{what} must be a date YYYY-MM-DD")


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    def one(v: Any) -> Any:
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, list):
            return [x.to_json() if isinstance(x, FileRef) else x for x in v]
        return v

    return {k: one(v) for k, v in data.items()}


def _applicant_json(a: Applicant) -> dict[str, Any]:
    return {"surname": a.surname, "first_name": a.first_name, "patronymic": a.patronymic,
            "post_address": a.post_address, "apartment_number": a.apartment_number, "email": a.email, "phone": a.phone}
