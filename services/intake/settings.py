from pathlib import Path

from limits import parse_many
from pydantic import Field, field_validator

from zhkh_runtime.settings import RuntimeSettings

from .classifier import DEFAULT_RULES
from .knowledge import DEFAULT_KNOWLEDGE_BASE


class IntakeSettings(RuntimeSettings):
    service_name: str = "intake"
    http_port: int = 8001
    default_phone_region: str = "RU"
    numbering_timezone: str = Field(default="Europe/Moscow", description="The year of a registration number is "
                                    "the year in this zone (IANA name)")
    classifier_rules: Path = Field(default=DEFAULT_RULES, description="Rules file of the text classifier")
    duplicate_window_h: float = Field(default=72.0, description="Same applicant+house+category within it: linked")
    incident_window_h: float = Field(default=24.0, description="Window in which reports form a mass incident")
    incident_threshold: int = Field(default=3, ge=2, description="Distinct applicants that open a mass incident")
    ingress_wait_s: float = Field(default=5.0, ge=0, description="HTTP ingress waits this long for the number")
    public_submission: bool = Field(default=True, description="Anonymous submissions from the public site form "
                                    "(channel site_form only) over HTTP; off: every submission needs a token")
    public_submission_rate: str = Field(default="5/minute;30/hour", description="Anonymous site-form submissions (and "
                                        "those with a token not granted the form) per client address ('limits' notation, "
                                        "';' between limits); over it: 429 with Retry-After")

    knowledge_base: Path = Field(default=DEFAULT_KNOWLEDGE_BASE, description="Knowledge base of answers for "
                                 "consultations (TOML, services/intake/rules/knowledge.toml); validated at start")
    public_suggestions: bool = Field(default=True, description="Anonymous callers may ask for knowledge-base "
                                     "suggestions (POST /api/v1/suggestions); off: a token is needed")
    suggestion_rate: str = Field(default="30/minute;300/hour", description="Suggestions per client address for "
                                 "anonymous callers and tokens without role operator, admin or service")
    consultation_loop_s: float = Field(default=10.0, gt=0, description="How often the consultations loop publishes "
                                       "events a failed request left and links conversions registered late")
    consultation_settle_s: float = Field(default=5.0, ge=0, description="The loop leaves a consultation this young "
                                         "to the request that is publishing it")

    @field_validator("public_submission_rate", "suggestion_rate")
    @classmethod
    def _rate(cls, v: str) -> str:
        if not parse_many(v):
            raise ValueError("no limit given")
        return v
