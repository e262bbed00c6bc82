"""The daemons' own logging: stderr (the journal under systemd) or `log_file`, text or JSON,
with `log_level` in the eight fleetlog levels and optional daily rotation."""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import sys

from fleetlog.common.levels import Level

_TO_LOGGING = {
    Level.EMERGENCY: logging.CRITICAL, Level.ALERT: logging.CRITICAL, Level.CRITICAL: logging.CRITICAL,
    Level.ERROR: logging.ERROR, Level.WARNING: logging.WARNING, Level.NOTICE: logging.INFO,
    Level.INFO: logging.INFO, Level.DEBUG: logging.DEBUG,
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        time = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        data = {"time": time.replace("+00:00", "Z"), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: Level, log_file: str | None = None, fmt: str = "text",
                  rotate_daily: bool = False, rotate_max: int = 7) -> None:
    if log_file and rotate_daily:
        handler: logging.Handler = logging.handlers.TimedRotatingFileHandler(
            log_file, when="midnight", backupCount=rotate_max, utc=True)
    elif log_file:
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_TO_LOGGING[level])
    logging.getLogger("grpc").setLevel(logging.WARNING)
