from zhkh_runtime.settings import RuntimeSettings


class IntakeSettings(RuntimeSettings):
    service_name: str = "intake"
    http_port: int = 8001
    default_phone_region: str = "RU"
