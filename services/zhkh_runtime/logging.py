"""structlog JSON logging. Log ids (appeal, event, topic/partition/offset), never personal data.

Standard-library loggers (FastStream, uvicorn, aiokafka, pymongo) go through the same renderer,
so every line a service prints is one JSON object.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import structlog

from .errors import safe_detail


def render_exception(exc: BaseException) -> str:
    """A traceback with frames (file, line, function) and exception types, but no exception
    messages beyond :func:`safe_detail` (a pydantic error's ``input_value``, a KeyError of a
    dictionary key or a ValueError quoting a phone number would put input into the log)."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not c for c in chain) and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    lines: list[str] = []
    for item in reversed(chain):
        lines.append("Traceback (most recent call last):")
        for fs in traceback.extract_tb(item.__traceback__):
            lines.append(f'  File "{fs.filename}", line {fs.lineno}, in {fs.name}')
        lines.append(f"{type(item).__module__}.{type(item).__qualname__}: {safe_detail(item, 300)}")
    return "\n".join(lines)


def safe_exc_info(logger: Any, name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor replacing ``format_exc_info``: see :func:`render_exception`."""
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if isinstance(exc_info, BaseException):
        exc = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    else:
        exc = sys.exc_info()[1]
    if exc is not None:
        event_dict["exception"] = render_exception(exc)
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    lvl = logging.getLevelName(level.upper())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                safe_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    for noisy in ("aiokafka", "pymongo", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
