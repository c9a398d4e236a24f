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
    citizen_rate: str = Field(default="30/minute;300/hour", description="Citizen endpoints: requests per client "
                              "address (the limits library's notation)")
    access_code_failures: str = Field(default="5/15minutes", description="Wrong access codes per appeal number "
                                      "before its citizen endpoints answer 429")
    idempotency_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, description="How long an Idempotency-Key is "
                                   "remembered")
    api_wait_s: float = Field(default=2.0, ge=0, le=30, description="A write waits this long for the router's "
                              "outcome (status applied/refused with the history entry) before answering status accepted")
