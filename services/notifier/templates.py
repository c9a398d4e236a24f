"""Russian texts of citizen notifications, one per event kind, and the party alert."""

from __future__ import annotations

from typing import Any

CITIZEN: dict[str, tuple[str, str]] = {
    "registered": (
        "Обращение {number} зарегистрировано",
        "Ваше обращение зарегистрировано под номером {number}. Мы сообщим о ходе его рассмотрения.",
    ),
    "extended": (
        "Срок ответа по обращению {number} продлён",
        "Срок рассмотрения обращения {number} продлён на {days} дн. Причина: {reason}",
    ),
    "answered": (
        "Ответ на обращение {number}",
        "На ваше обращение {number} дан ответ:\n\n{text}\n\nЕсли ответ вас не устраивает, вы можете оценить его "
        "как неудовлетворительный и подать жалобу.",
    ),
}

PARTY_ALERT = (
    "Срок по обращению {number}: {threshold}",
    "Обращение {number}: {what}. Срок ответа: {due}.",
)
THRESHOLD_RU = {"overdue": "срок ответа истёк", "1wd": "остался один рабочий день"}


def citizen_message(kind: str, **fields: Any) -> tuple[str, str]:
    subject, body = CITIZEN[kind]
    return subject.format(**fields), body.format(**fields)


def party_alert(number: str, threshold: str, due: str) -> tuple[str, str]:
    what = THRESHOLD_RU.get(threshold, f"прошло {threshold} срока")
    subject, body = PARTY_ALERT
    return subject.format(number=number, threshold=what), body.format(number=number, what=what, due=due)
