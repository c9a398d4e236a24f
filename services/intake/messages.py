"""Messages for citizens (Russian), by machine-readable reason. Sent as x-dlq-message-ru on the
rejected topic and in the HTTP ingress's error answers."""

from __future__ import annotations

_UNREADABLE = "Обращение не удалось прочитать: данные повреждены. Пожалуйста, отправьте его ещё раз."

MESSAGES_RU: dict[str, str] = {
    "bad_json": _UNREADABLE,
    "bad_encoding": _UNREADABLE,
    "bad_header": _UNREADABLE,
    "missing_header": _UNREADABLE,
    "invalid_envelope": _UNREADABLE,
    "unknown_type": _UNREADABLE,
    "type_not_allowed": _UNREADABLE,
    "forged_source": "Обращения канала ГИС ЖКХ принимаются только из ГИС ЖКХ.",
    "undecodable": _UNREADABLE,
    "key_mismatch": _UNREADABLE,
    "too_large": "Обращение слишком большое. Сократите текст или приложите файлы ссылками.",
    "too_long": "Текст обращения или одно из полей слишком длинные. Сократите их, пожалуйста.",
    "missing_field": "Не заполнены обязательные поля обращения.",
    "unknown_channel": "Канал поступления обращения не поддерживается.",
    "invalid_data": "Некоторые поля обращения заполнены неверно.",
    "invalid_phone": "Номер телефона указан неверно.",
    "invalid_email": "Адрес электронной почты указан неверно.",
    "missing_address": "Укажите адрес дома, к которому относится обращение.",
    "empty_text": "Текст обращения пуст. Опишите, пожалуйста, проблему.",
    "unsupported_media_type": "Обращение нужно отправить в формате JSON.",
    "conflicting_duplicate": "Обращение с таким идентификатором уже зарегистрировано с другим содержанием.",
    "channel_mismatch": "Канал, указанный в обращении, не совпадает с каналом, по которому оно поступило.",
    "gis_only_field": "Обращение содержит служебные поля ГИС ЖКХ: их принимают только из ГИС ЖКХ.",
    "gis_only_channel": "Обращения канала ГИС ЖКХ принимаются только из ГИС ЖКХ, не через этот адрес.",
    "public_submission_only_site_form": "Без авторизации принимаются только обращения с формы сайта (канал site_form).",
    "channel_not_granted": "У этого клиента нет права подавать обращения по этому каналу.",
    "status_forbidden": "Статус по каналу и идентификатору доступен только системе этого канала, операторам и администраторам.",
    "not_found": "Обращение не найдено или ещё регистрируется.",
    "unavailable": "Сервис временно недоступен. Повторите отправку позже.",
}

ACCESS_CODE_NOTE = (
    "Сохраните код доступа: он показывается один раз. По номеру обращения и этому коду можно узнать статус, "
    "оценить ответ, подать жалобу или отозвать обращение."
)
