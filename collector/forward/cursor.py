"""A forwarder's durable cursor: the seq of the last stored event it has dealt with (delivered
or filtered out). One small file per forwarder under `data_dir/forwarders/`, replaced atomically
(write, fsync, rename, fsync the folder), so a crash leaves the old or the new value, never junk.
"""

from __future__ import annotations

import json
import os
import pathlib
import re

from fleetlog.common.errors import StorageError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class CursorFile:
    def __init__(self, folder: pathlib.Path, forwarder: str):
        self.folder = folder
        # Names are free text in the config; the file name keeps them readable but safe.
        self.path = folder / f"{_UNSAFE.sub('_', forwarder)}.cursor"
        self.forwarder = forwarder

    def load(self) -> int:
        """The saved seq, 0 for a forwarder that has never delivered (it starts at the beginning)."""
        try:
            data = json.loads(self.path.read_text())
            return int(data["seq"])
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"{self.path}: unreadable forwarder cursor ({exc}); "
                               "fix or delete it (deleting re-sends everything stored)") from None

    def save(self, seq: int) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w") as handle:
                handle.write(json.dumps({"forwarder": self.forwarder, "seq": seq}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot save the forwarder cursor: {exc.strerror}") from None
