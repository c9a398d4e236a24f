from zhkh_runtime.app import serve

from .main import create_app
from .settings import RouterSettings

settings = RouterSettings()
serve(create_app(settings), settings)
