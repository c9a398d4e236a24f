from pathlib import Path

from pydantic import Field

from zhkh_runtime.settings import RuntimeSettings

from .rules import DEFAULT_RULES


class RouterSettings(RuntimeSettings):
    service_name: str = "router"
    http_port: int = 8002
    fallback_queue_id: str = "fallback:operators"
    routing_rules: Path = Field(default=DEFAULT_RULES, description="Routing rules file")
    directory_check_s: float = Field(
        default=5.0, gt=0, description="The directory is cached in memory; an import is seen within this many seconds")
