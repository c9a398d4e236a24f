from zhkh_runtime.app import serve

from .main import create_app
from .settings import GisSyncSettings

settings = GisSyncSettings()
serve(create_app(settings), settings)
