from pydantic import Field

from zhkh_runtime.settings import RuntimeSettings


class AnalyticsSettings(RuntimeSettings):
    service_name: str = "analytics"
    http_port: int = 8005
    report_timezone: str = Field(
        default="Europe/Moscow", description="IANA zone in which the API's from/to dates are days"
    )
    export_batch: int = Field(default=1000, ge=1, le=10_000, description="CSV export: rows read and sent per chunk")
