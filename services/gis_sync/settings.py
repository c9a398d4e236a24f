from __future__ import annotations

from pathlib import Path

from pydantic import Field

from zhkh_runtime.settings import RuntimeSettings


class GisSyncSettings(RuntimeSettings):
    service_name: str = "gis_sync"
    http_port: int = 8004

    gis_endpoint: str = Field(
        default="http://127.0.0.1:18080/ext-bus-appeals-service/services/AppealsAsync",
        description="AppealsAsync endpoint (the local emulator by default)",
    )
    gis_org_ppa_guid: str = Field(default="0f6f1d2a-5c1e-4b8e-9f00-000000000059", description="orgPPAGUID of our organisation")
    gis_party_map: Path | None = Field(
        default=None, description="CSV party_id,answerer_guid,org_guid: who is a ГИС performer, who another ГИС organisation"
    )
    gis_default_answerer: str | None = Field(default=None, description="Performer GUID when an appeal has none yet")
    gis_signer: str = Field(
        default="none",
        description="gost (XAdES-BES, GOST R 34.10-2012 256, key and certificate below), none (unsigned: "
                    "the local emulator only), or module:factory returning a Signer",
    )
    gis_signing_key: Path | None = Field(default=None, description="PKCS#8 GOST R 34.10-2012 256 private key (PEM/DER)")
    gis_signing_cert: Path | None = Field(default=None, description="The key's X.509 certificate (PEM/DER)")
    gis_export_version: str = Field(default="14.8.0.1", description="base:version of exportAppealRequest")
    gis_import_version: str = Field(default="15.11.0.0", description="base:version of importAnswerRequest")
    gis_timeout_s: float = Field(default=10.0, gt=0, description="One SOAP request")
    gis_poll_interval_s: float = Field(default=1.0, gt=0, description="Between getState polls of an export")
    gis_stuck_after_s: float = Field(default=120.0, gt=0, description="A request still not processed after this is sent again")
    gis_transient_codes: list[str] = Field(default_factory=list, description="ErrorMessage codes worth retrying")
    push_interval_s: float = Field(default=1.0, gt=0)
    push_batch: int = Field(default=100, ge=1, le=1000)
    push_max_attempts: int = Field(default=8, ge=1, description="Transient failures of one step before GisActionFailed")
    push_backoff_s: float = Field(default=2.0, gt=0)
    push_backoff_max_s: float = Field(default=300.0, gt=0)
    pull_interval_s: float = Field(default=60.0, gt=0)
    pull_initial_days: int = Field(default=7, ge=0, description="First pull: appeals created this many days back")
    pull_overlap_days: int = Field(default=1, ge=0)
    reconcile_interval_s: float = Field(default=600.0, gt=0)
