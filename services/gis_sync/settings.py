from zhkh_runtime.settings import RuntimeSettings


class GisSyncSettings(RuntimeSettings):
    service_name: str = "gis_sync"
    http_port: int = 8004
