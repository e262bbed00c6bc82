"""Source positions persisted atomically in state_dir (write to a temp file, fsync, rename)."""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Any

log = logging.getLogger("fleetlog.agent.checkpoints")


class CheckpointFile:
    """A small JSON document: {identity: position data}. Written whole, atomically."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = self._load()
        self.fault: str | None = None

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (ValueError, OSError):
            # A torn write cannot happen (rename is atomic); a corrupt file means outside
            # interference. Start over: re-reading is safe because the collector deduplicates.
            return {}

    def save(self) -> None:
        """Persist; a failure (a full state disk) is logged once and retried at the next save.
        Reading goes on from the positions in memory: only a restart before a save succeeds
        re-reads lines, which the collector deduplicates."""
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as handle:
                json.dump(self.data, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            if self.fault is None:
                log.error("cannot save checkpoints to %s: %s; retrying at the next commit", self.path, exc.strerror)
            self.fault = exc.strerror or str(exc)
            tmp.unlink(missing_ok=True)
            return
        if self.fault is not None:
            log.warning("checkpoints saved to %s again", self.path)
            self.fault = None
