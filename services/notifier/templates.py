"""Russian texts of citizen notifications, one per event kind, and the party alert.

The "registered" notice carries the citizen's access code. The stored delivery (``notifier_deliveries``)
keeps the rendered text with :data:`ACCESS_CODE_SLOT` in its place and the code in its own field
``access_code``, which is removed once the delivery is sent or has failed; the senders put the code into
the text only when they send it (:func:`rendered_body`)."""

from __future__ import annotations

from typing import Any

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


def rendered_body(delivery: dict[str, Any]) -> str:
    """The text to send: the stored body with the access code put back in (if the delivery has one)."""
    body = str(delivery.get("body", ""))
    code = delivery.get("access_code")
    return body.replace(ACCESS_CODE_SLOT, code) if code else body


def party_alert(number: str, threshold: str, due: str) -> tuple[str, str]:
    what = THRESHOLD_RU.get(threshold, f"прошло {threshold} срока")
    subject, body = PARTY_ALERT
    return subject.format(number=number, threshold=what), body.format(number=number, what=what, due=due)
