from pathlib import Path

from pydantic import Field

from zhkh_runtime.settings import RuntimeSettings

from .calendar import DEFAULT_OVERRIDES
from .deadlines import DEFAULT_TABLE


class NotifierSettings(RuntimeSettings):
    service_name: str = "notifier"
    http_port: int = 8003
    deadline_table: Path = Field(default=DEFAULT_TABLE, description="Regimes and the table choosing them")
    calendar_overrides: Path = Field(default=DEFAULT_OVERRIDES, description="Production calendar overrides")
    alert_thresholds: str = Field(default="50%,80%,1wd,overdue", description="Comma-separated alert points")
    scan_interval_s: float = Field(default=1.0, gt=0, description="Pause between scans when nothing is due")
    scan_batch: int = Field(default=500, ge=1, description="Alerts sent per scan round at most")
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail; unset: no e-mail")
    smtp_port: int = 25
    smtp_from: str = "noreply@zhkh-appeals.local"
    sms_gateway_url: str | None = Field(default=None, description="HTTP SMS gateway (POST JSON {to, text, client_ref})")
    citizen_webhooks: dict[str, str] = Field(
        default_factory=dict, description='Channel -> URL answering the way the appeal came, e.g. {"chatbot": "http://..."}'
    )
    party_alerts_webhook: str | None = Field(default=None, description="Where deadline alerts for parties go")
    quiet_hours: str = Field(default="22:00-08:00", description="No citizen messages then (local time); empty: none")
    default_timezone: str = "Europe/Moscow"
    delivery_attempts: int = Field(default=5, ge=1)
    delivery_backoff_s: float = Field(default=30.0, gt=0, description="First retry delay; doubles each attempt")
    # the letterhead of the paper answer letters (letters.py): citizens reachable only by post
    letter_org_name: str = Field(default="", max_length=300, description="Sender named on paper answer letters")
    letter_org_address: str = Field(default="", max_length=500, description="Sender's postal address on the letters")
    letter_org_phone: str = Field(default="", max_length=100, description="Sender's phone on the letters")

    @property
    def thresholds(self) -> list[str]:
        return [t.strip() for t in self.alert_thresholds.split(",") if t.strip()]
