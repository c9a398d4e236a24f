"""Russian texts of citizen notifications, one per event kind, and the party alert.

The "registered" notice carries the citizen's access code. The stored delivery (``notifier_deliveries``)
keeps the rendered text with :data:`ACCESS_CODE_SLOT` in its place and the code in its own field
``access_code``, which is removed once the delivery is sent or has failed; the senders put the code into
the text only when they send it (:func:`rendered_body`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

ACCESS_CODE_SLOT = "[код доступа]"

CITIZEN: dict[str, tuple[str, str]] = {
    "registered": (
        "Обращение {number} зарегистрировано",
        "Ваше обращение зарегистрировано под номером {number}. Мы сообщим о ходе его рассмотрения.",
    ),
    "registered_with_code": (
        "Обращение {number} зарегистрировано",
        "Ваше обращение зарегистрировано под номером {number}. Код доступа: {access_code}. Сохраните его: "
        "по номеру обращения и этому коду можно узнать статус, оценить ответ, подать жалобу или отозвать "
        "обращение. Мы сообщим о ходе его рассмотрения.",
    ),
    "extended": (
        "Срок ответа по обращению {number} продлён",
        "Срок рассмотрения обращения {number} продлён на {days} дн. Причина: {reason}",
    ),
    "progress": (
        "Ход рассмотрения обращения {number}",
        "По вашему обращению {number} ответственная организация сообщает:\n\n{text}\n\nОкончательный ответ "
        "придёт отдельно.",
    ),
    "forwarded": (
        "Обращение {number} направлено в {party}",
        "Ваше обращение {number} направлено для рассмотрения в {party}. Ответ вы получите от этой организации.",
    ),
    "overdue": (
        "Срок ответа по обращению {number} истёк",
        "Срок ответа на ваше обращение {number} истёк {due}, а ответ не дан. Нарушение срока зафиксировано, "
        "обращение поставлено на контроль. Если оно будет передано вышестоящей организации, мы сообщим, куда "
        "оно направлено.",
    ),
    "rating_requested": (
        "Решена ли проблема по обращению {number}?",
        "По вашему обращению {number} был дан ответ. Решена ли проблема? Оцените ответ по номеру обращения и коду "
        "доступа. Если ответа не будет, обращение закроют через {days} дн.; после этого его можно возобновить в течение "
        "{window}: оцените ответ как неудовлетворительный или подайте жалобу.",
    ),
    "answered": (
        "Ответ на обращение {number}",
        "На ваше обращение {number} дан ответ:\n\n{text}\n\nЕсли ответ вас не устраивает, вы можете оценить его "
        "как неудовлетворительный и подать жалобу.",
    ),
    # the outage register (router outages.py): notices, not the appeal's answer
    "outage_linked": (
        "Обращение {number}: {resource_ru} — известное отключение",
        "Ваше обращение {number} зарегистрировано. По вашему адресу уже зарегистрировано {kind_ru} отключение: "
        "{resource_ru}, с {start}. Ожидаемое время восстановления — {restore}. Ваше обращение остаётся на контроле "
        "и будет рассмотрено в установленный срок.",
    ),
    "outage_registered": (
        "Обращение {number}: зарегистрировано отключение",
        "По адресу из вашего обращения {number} зарегистрировано {kind_ru} отключение: {resource_ru}, с {start}. "
        "Ожидаемое время восстановления — {restore}. Мы сообщим, если оно изменится.",
    ),
    "outage_restore_time_changed": (
        "Обращение {number}: новое время восстановления",
        "Ожидаемое время восстановления ({resource_ru}) по адресу из вашего обращения {number} изменилось: "
        "{restore}.",
    ),
    "outage_restored": (
        "Обращение {number}: подача восстановлена",
        "По адресу из вашего обращения {number} восстановлено: {resource_ru} ({restored}). Отключение "
        "длилось {hours} ч.; эти сведения сохранены и могут служить основанием для перерасчёта платы. Если "
        "проблема осталась, обратитесь повторно, указав номер обращения {number}.",
    ),
}
OUTAGE_RESOURCE_RU = {
    "heating": "отопление", "hot_water": "горячее водоснабжение", "cold_water": "холодное водоснабжение",
    "sewerage": "водоотведение", "electricity": "электроснабжение", "gas": "газоснабжение",
}
OUTAGE_KIND_RU = {"planned": "плановое", "emergency": "аварийное"}

PARTY_ALERT = (
    "Срок по обращению {number}: {threshold}",
    "Обращение {number}: {what}. Срок ответа: {due}.",
)
PARTY_ASSIGNED = {
    False: ("Новое обращение {number}", "Вам назначено обращение {number}. Срок ответа: {due}."),
    True: ("Вам передано обращение {number}",
           "Вам передано обращение {number} (было у {previous}). Срок ответа: {due}."),
}
THRESHOLD_RU = {"overdue": "срок ответа истёк", "1wd": "остался один рабочий день"}


def citizen_message(kind: str, **fields: Any) -> tuple[str, str]:
    subject, body = CITIZEN[kind]
    return subject.format(**fields), body.format(**fields)


def rendered_body(delivery: dict[str, Any]) -> str:
    """The text to send: the stored body with the access code put back in (if the delivery has one)."""
    body = str(delivery.get("body", ""))
    code = delivery.get("access_code")
    return body.replace(ACCESS_CODE_SLOT, code) if code else body


def party_alert(number: str, threshold: str, due: str) -> tuple[str, str]:
    what = THRESHOLD_RU.get(threshold, f"прошло {threshold} срока")
    subject, body = PARTY_ALERT
    return subject.format(number=number, threshold=what), body.format(number=number, what=what, due=due)


def party_assigned(number: str, due: str, previous: str | None) -> tuple[str, str]:
    """The party's notice of a new appeal (``previous`` None) or of one passed on to it."""
    subject, body = PARTY_ASSIGNED[previous is not None]
    return subject.format(number=number), body.format(number=number, due=due, previous=previous)


def local_time(at: datetime, tz: str) -> str:
    """``at`` as the citizen or party reads it: local date and time in ``tz`` with the zone's name."""
    return f"{at.astimezone(ZoneInfo(tz)).strftime('%d.%m.%Y %H:%M')} ({tz})"
