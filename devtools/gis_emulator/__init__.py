"""A local emulator of ГИС ЖКХ's AppealsAsync SOAP service (exportAppeal, importAnswer, getState), for development.

    python -m devtools.gis_emulator --port 18080 --seed 3

See docs/gis_emulator.md. ``EmulatorState`` is the logic, ``create_app`` the ASGI app,
``EmulatorServer`` runs it with uvicorn in the current event loop (tests).
"""

from .server import SIGNATURE_FAULT, SOAP_PATH, EmulatorServer, create_app
from .signature import SignatureError, SignatureVerifier
from .state import DEFAULT_ORG_PPA_GUID, EmulatorState

__all__ = ["DEFAULT_ORG_PPA_GUID", "SIGNATURE_FAULT", "SOAP_PATH", "EmulatorServer", "EmulatorState",
           "SignatureError", "SignatureVerifier", "create_app"]
