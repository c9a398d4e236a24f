from zhkh_runtime.app import serve

from .main import create_app
from .settings import IntakeSettings

settings = IntakeSettings()
serve(create_app(settings), settings)
