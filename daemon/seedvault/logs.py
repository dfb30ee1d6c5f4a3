"""Logging: structlog set up once, JSON lines off a TTY, console lines on one, secrets masked.

Events are snake_case facts with key-value fields (``capture_done source=… files=…``). Any
field whose name says it holds a secret (token, password, secret, authorization, api_key) is
replaced by ``"***"``, and bearer tokens inside string values — a logged exception's traceback
included — are masked too, so a secret that slips into a log call still never reaches the log.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"token|password|secret|authorization|api_key|apikey", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}")


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named fields and bearer tokens in values."""
    for key, value in list(event.items()):
        if isinstance(value, BaseException):  # an exception passed as a value: its text
            value = event[key] = f"{type(value).__name__}: {value}"
        if _SECRET_KEYS.search(key) and value not in (None, "", False):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = _HF_TOKEN.sub("hf_***", _BEARER.sub(r"\1***", value))
    return event


def setup_logging(
    *, level: str = "info", stream: TextIO | None = None, json: bool | None = None
) -> None:
    """Configure structlog for the process.

    ``stream`` defaults to stderr (the CLI keeps stdout for data); ``json`` defaults to "not a
    TTY". ``run`` and ``serve`` pass ``sys.stdout`` so a service manager collects JSON lines.
    """
    out = stream or sys.stderr
    as_json = (not out.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    stamped: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,  # after the traceback is text: an exception's message is masked too
    ]
    # Libraries' own stdlib logging (apscheduler's "job skipped", aiohttp's errors) comes out
    # as the same lines on the same stream, masked too; their chatter below WARNING is dropped.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *stamped],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_seedvault", False)]:
        root.removeHandler(old)
    handler._seedvault = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamped, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
