"""Source positions persisted atomically in state_dir (write to a temp file, fsync, rename)."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any


class CheckpointFile:
    """A small JSON document: {identity: position data}. Written whole, atomically."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = self._load()

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
        tmp = self.path.with_suffix(".tmp")
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
