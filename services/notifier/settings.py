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

    @property
    def thresholds(self) -> list[str]:
        return [t.strip() for t in self.alert_thresholds.split(",") if t.strip()]
