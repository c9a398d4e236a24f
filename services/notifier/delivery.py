"""Delivery of notifications: the pure choices (channel, quiet hours), the senders, and the
dead-letter record of a delivery that cannot be made.

A delivery is a document in ``notifier_deliveries`` with a stable id, which is also its
idempotency key: sent as ``Idempotency-Key`` to webhooks and the SMS gateway, and as the e-mail's
Message-ID, so a receiver can drop a repeat after a crash between sending and marking.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from zoneinfo import ZoneInfo

from zhkh_runtime.errors import PermanentError, TransientError
from zhkh_runtime.records import OutboundRecord, failure_headers

from .templates import rendered_body


@dataclass(frozen=True)
class Target:
    kind: str  # webhook | email | sms
    address: str  # URL, e-mail address or E.164 phone


def citizen_target(channel: str, email: str | None, phone: str | None, webhooks: dict[str, str],
                   email_enabled: bool = True, sms_enabled: bool = True) -> Target | None:
    """The same channel when it has a webhook (ПП 416: answer the way the appeal came), else e-mail,
    else SMS, each only if configured; None when there is no configured way to reach the citizen."""
    if channel in webhooks:
        return Target("webhook", webhooks[channel])
    if email and email_enabled:
        return Target("email", email)
    if phone and sms_enabled:
        return Target("sms", phone)
    return None


def parse_quiet_hours(spec: str) -> tuple[time, time] | None:
    if not spec:
        return None
    start, end = spec.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def not_before(now: datetime, tz_name: str, quiet: tuple[time, time] | None, urgent: bool) -> datetime:
    """``now``, or the end of the quiet hours (local time of the appeal's region) for non-urgent mail."""
    if quiet is None or urgent:
        return now
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    start, end = quiet
    t = local.time()
    in_quiet = (t >= start or t < end) if start > end else (start <= t < end)
    if not in_quiet:
        return now
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz).astimezone(now.tzinfo)


class Senders:
    """SMTP and HTTP senders. Failures: TransientError (retry) or PermanentError (give up now)."""

    def __init__(self, smtp_host: str | None, smtp_port: int, smtp_from: str, sms_gateway_url: str | None,
                 timeout_s: float = 10.0) -> None:
        self.smtp_host, self.smtp_port, self.smtp_from = smtp_host, smtp_port, smtp_from
        self.sms_gateway_url, self.timeout_s = sms_gateway_url, timeout_s

    async def send(self, d: dict[str, Any]) -> None:
        kind = d["target_kind"]
        if kind == "email":
            await asyncio.to_thread(self._smtp, d)
        elif kind == "webhook":
            await asyncio.to_thread(self._post, d["target"], self._payload(d), d["_id"])
        elif kind == "sms":
            if not self.sms_gateway_url:
                raise PermanentError("no_sms_gateway", "ZHKH_SMS_GATEWAY_URL is not set")
            body = {"to": d["target"], "text": rendered_body(d), "client_ref": d["_id"]}
            await asyncio.to_thread(self._post, self.sms_gateway_url, body, d["_id"])
        else:
            raise PermanentError("unknown_target", kind)

    @staticmethod
    def _payload(d: dict[str, Any]) -> dict[str, Any]:
        return {"id": d["_id"], "kind": d["kind"], "appeal_id": d["appeal_id"], "registration_number": d["number"],
                "subject": d["subject"], "text": rendered_body(d),
                **{k: d[k] for k in ("party_id", "supervisor_party_id", "due_at") if d.get(k)}}

    def _smtp(self, d: dict[str, Any]) -> None:
        if not self.smtp_host:
            raise PermanentError("no_smtp", "ZHKH_SMTP_HOST is not set")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.smtp_from, d["target"], d["subject"]
        msg["Message-ID"] = make_msgid(idstring=d["_id"].replace(":", "."), domain="zhkh-appeals")
        msg.set_content(rendered_body(d))
        try:
            with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_s) as s:
                s.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError("recipient_refused", "the mail server refused the recipient") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"smtp: {exc.__class__.__name__}") from exc

    def _post(self, url: str, body: dict[str, Any], key: str) -> None:
        req = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode(), method="POST",
                                     headers={"content-type": "application/json", "idempotency-key": key})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:  # noqa: S310 - configured endpoints
                r.read()
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                raise TransientError(f"http {exc.code}") from exc
            raise PermanentError(f"http_{exc.code}", "the receiver refused the notification") from exc
        except OSError as exc:
            raise TransientError(f"http: {exc.__class__.__name__}") from exc


def dead_delivery_record(d: dict[str, Any], reason: str, detail: str, attempts: int, dlq_topic: str) -> OutboundRecord:
    """The DLQ record of a failed delivery: the delivery document as JSON (not a CloudEvent: it is
    what an operator resends), keyed by the appeal, with the x-dlq-* headers (reason, attempts).
    Without the access code: its text keeps the slot (the citizen has the code from the registration
    answer, if the appeal came by the HTTP ingress)."""
    value = json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items() if k != "access_code"},
                       ensure_ascii=False).encode()
    headers = {k: v.decode() for k, v in failure_headers(reason, detail, "notifier", None, attempts=attempts)}
    headers["content-type"] = "application/json"
    return OutboundRecord(topic=dlq_topic, key=d["appeal_id"].encode(), value=value, headers=headers)
