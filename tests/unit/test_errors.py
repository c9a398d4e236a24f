from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, RecordTooLargeError
from pydantic import BaseModel, ValidationError
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from zhkh_runtime.errors import PermanentError, TransientError, is_transient, reason_of, safe_detail


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("x"),
        AutoReconnect("lost"),
        asyncio.TimeoutError(),
        ConnectionError("reset"),
        OperationFailure("Write conflict", code=112),
        OperationFailure("txn", code=251, details={"errorLabels": ["TransientTransactionError"]}),
        OperationFailure("txn unknown after a database restart", code=251),  # SecantusDB: no label
        OperationFailure("interrupted at shutdown", code=11600),
        KafkaConnectionError(),
    ],
)
def test_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [PermanentError("x"), ValueError("bug"), DuplicateKeyError("dup"), OperationFailure("bad", code=2), RecordTooLargeError()],
)
def test_not_transient(exc):
    assert not is_transient(exc)


def test_reason_and_detail_do_not_leak_input():
    class M(BaseModel):
        phone: int

    with pytest.raises(ValidationError) as err:
        M.model_validate({"phone": "+7 912 SECRET"})
    assert reason_of(err.value) == "invalid_data"
    assert "SECRET" not in safe_detail(err.value)
    assert reason_of(PermanentError("no_consent", "d")) == "no_consent"
    assert reason_of(RuntimeError()) == "handler_error"
