"""Which failures are worth retrying. Everything not transient goes to the dead-letter topic."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from zhkh_contracts import describe_validation_error

WRITE_CONFLICT = 112
NO_SUCH_TRANSACTION = 251
# Server errors worth another try: pymongo's retryable-writes codes (not primary, shutting down,
# network, time limit), write conflicts, and a transaction the server no longer knows: after a
# database restart SecantusDB answers 251 without the TransientTransactionError label that MongoDB
# would add (found by tests/e2e/test_faults.py: the record went to the DLQ instead of being retried).
RETRYABLE_CODES = frozenset({
    6, 7, 89, 9001, 262, 134,  # HostUnreachable, HostNotFound, NetworkTimeout, SocketException, ExceededTimeLimit, ...
    91, 11600, 189, 10107, 13435, 13436, 11602, 10058,  # shutting down / not primary (SDAM spec)
    WRITE_CONFLICT, NO_SUCH_TRANSACTION,
})


class PermanentError(Exception):
    """A message that can never succeed (bad data, business rule). ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TransientError(Exception):
    """Raise to ask for a retry (e.g. a dependency is briefly unavailable)."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | ConnectionFailure | asyncio.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, PyMongoError) and (
        exc.has_error_label("TransientTransactionError") or exc.has_error_label("UnknownTransactionCommitResult")
    ):
        return True
    if isinstance(exc, OperationFailure) and exc.code in RETRYABLE_CODES:
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or exc.__class__.__name__.endswith("TimeoutError")
    return False


def is_bad_input(exc: BaseException) -> bool:
    """The message itself is wrong (as opposed to our processing failing)."""
    return isinstance(exc, PermanentError | ValidationError)


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, PermanentError):
        return exc.reason
    if isinstance(exc, ValidationError):
        return "invalid_data"
    return "handler_error"


def safe_detail(exc: BaseException, limit: int = 1000) -> str:
    """Error text without input values: pydantic errors list field paths and error types only,
    a PermanentError its fixed detail; any other exception only its class name (its message may
    quote input: a KeyError of a name, a ValueError of a phone number, ...)."""
    if isinstance(exc, ValidationError):
        text = describe_validation_error(exc)
    elif isinstance(exc, PermanentError):
        text = exc.detail or exc.reason
    else:
        text = exc.__class__.__name__
    return text[:limit]
