from zhkh_runtime.app import serve

from .main import create_app
from .settings import AnalyticsSettings

settings = AnalyticsSettings()
serve(create_app(settings), settings)
