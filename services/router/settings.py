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
    rating_ask_after_days: float = Field(default=10.0, ge=0, description="An answer unrated this long: the citizen "
                                         "is asked once whether the problem is solved (closing the loop)")
    close_without_reply_days: float = Field(default=5.0, ge=0, description="...and without a reply this long after "
                                            "that, the appeal is closed (reason no_reply)")
    reopen_window_days: float = Field(default=30.0, ge=0, description="An appeal closed without a reply may be "
                                      "reopened by the citizen (unsatisfied rating, complaint) this long")
    follow_up_interval_s: float = Field(default=300.0, gt=0, description="How often the closing-the-loop timer "
                                        "looks for answers due a question or a closing")
    outage_notice_window_days: float = Field(default=30.0, ge=0, description="Residents told about an outage: "
                                             "open appeals about its resource at its houses, and those answered "
                                             "this many days back")
