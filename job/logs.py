"""Logging: plain text on a terminal, JSON lines elsewhere (or when EXT2INT_LOG_FORMAT says so).

Log lines go to stderr, which the secrets guard (job/secrets.py) scrubs, like every other output.
"""

from __future__ import annotations

import json
import logging
import sys
import time

LOGGER = "ext2int"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message, and any `extra` fields given to the call."""

    _STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup(fmt: str = "auto", level: str = "INFO", stream=None) -> logging.Logger:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    for noisy in ("apscheduler", "urllib3"):
        other = logging.getLogger(noisy)
        other.handlers[:] = [handler]
        other.setLevel("WARNING")
        other.propagate = False
    return logger
