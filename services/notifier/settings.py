from zhkh_runtime.settings import RuntimeSettings


class NotifierSettings(RuntimeSettings):
    service_name: str = "notifier"
    http_port: int = 8003
