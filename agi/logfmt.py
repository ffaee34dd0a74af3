"""Log lines of the long-running servers (callroute-fastagi, callroute-web), as text or JSON.

Both formats carry the same fields, so switching to JSON for journald or Loki loses
nothing: the time (UTC, ISO 8601), the level, the logger, the message, any structured
extras a record was given, and the exception. A JSON record is exactly one line (the
traceback is a field, its newlines escaped), so a collector never splits one record.
The handler sits on the root logger and uvicorn is told not to install its own
(`log_config=None`), so uvicorn's access and error lines take the same format.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from agi.config import LOG_FORMATS

# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName",
    # uvicorn's copy of the message with terminal colours: the message says it already.
    "color_message",
}


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")}


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER MESSAGE key=value...`, then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{_timestamp(record)} {record.levelname} {record.name} "
                f"{record.getMessage()}")
        fields = extras(record)
        if fields:
            line += " " + " ".join(f"{key}={json.dumps(value, default=str)}"
                                   for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": _timestamp(record), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        for key, value in extras(record).items():
            entry.setdefault(key, value)  # an extra never hides a field above
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(fmt: str, level: int | str = logging.INFO) -> None:
    """Every record of the process to stderr in `fmt` (text or json). A bad level or
    format is a ValueError, for the caller's one-line error."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    if isinstance(level, str):
        level = level.upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"--log-level {level!r} is not a logging level such as INFO")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
