from zhkh_runtime.app import serve

from .main import create_app
from .settings import NotifierSettings

settings = NotifierSettings()
serve(create_app(settings), settings)
