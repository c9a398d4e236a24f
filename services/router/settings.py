from zhkh_runtime.settings import RuntimeSettings


class RouterSettings(RuntimeSettings):
    service_name: str = "router"
    http_port: int = 8002
    fallback_queue_id: str = "fallback:operators"
