from pathlib import Path

from pydantic import Field, field_validator

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
    # per-house control cards for the heating season (services/router/controlcards.py)
    heating_season_start: str = Field(default="09-15", pattern=r"^\d{2}-\d{2}$", description="First day (MM-DD) "
                                      "of the heating season: appeals from then on open control cards")
    heating_season_end: str = Field(default="05-15", pattern=r"^\d{2}-\d{2}$", description="Last day (MM-DD, "
                                    "inclusive) of the heating season; the season may wrap the new year")
    control_cards_outside_season: bool = Field(default=False, description="Open control cards all year round")
    control_card_resources: tuple[str, ...] = Field(
        default=("heating", "hot_water", "cold_water", "electricity", "gas"),
        description="Appeal categories that open control cards (a JSON list)")
    control_card_target_hours: dict[str, int] = Field(
        default_factory=dict, description="Same-day target hour (1..24 local) per district id, '*' for the rest "
        "(a JSON object); without one: the end of the opening day (24)")
    control_card_timezone: str = Field(default="Europe/Moscow", description="Zone of a district whose "
                                       "administration is not in the directory")

    @field_validator("heating_season_start", "heating_season_end", "control_card_resources",
                     "control_card_target_hours", "control_card_timezone")
    @classmethod
    def _cards(cls, v: object, info: object) -> object:
        from .controlcards import check_setting  # the cards' own rules

        return check_setting(getattr(info, "field_name", ""), v)
