"""The `file` forwarder: JSON lines appended to `path`, rotated by size.

When the file reaches `rotate_bytes` (0 = never) it becomes `path.1`, `path.1` becomes `path.2`
and so on; at most `rotate_max` old files are kept (logrotate's numbering). Rotation happens
only between batches' events, so a line is never split across files. A batch counts as
delivered once it is fsync'd.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO, Literal

from fleetlog.collector.forward.filters import ForwarderFilters
from fleetlog.collector.forward.transport import DeliveryError
from fleetlog.common.config import FieldError, Flatten, Size
from fleetlog.common.event import to_json


@dataclass(frozen=True)
class FileForwarderConfig:
    type: Literal["file"]
    name: str
    path: str = ""
    rotate_bytes: Size = 0                # 0 = never rotate
    rotate_max: int = 5
    filters: Annotated[ForwarderFilters, Flatten()] = ForwarderFilters()

    def validate(self) -> None:
        if not self.path:
            raise FieldError("path", "required: the file to append events to")
        if self.rotate_max < 0:
            raise FieldError("rotate_max", "must be 0 or more")


class FileSink:
    def __init__(self, config: FileForwarderConfig):
        self.path = pathlib.Path(config.path)
        self.rotate_bytes, self.rotate_max = config.rotate_bytes, config.rotate_max
        self.target = str(self.path)
        self.handle: BinaryIO | None = None
        self.size = 0
        self.dirty = False

    def _open(self) -> BinaryIO:
        if self.handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.path, "ab")  # noqa: SIM115 — kept open across batches
            self.size = self.handle.tell()
        return self.handle

    def _rotate(self) -> None:
        self.close()
        if self.rotate_max < 1:
            self.path.unlink(missing_ok=True)
            return
        oldest = self.path.with_name(f"{self.path.name}.{self.rotate_max}")
        oldest.unlink(missing_ok=True)
        for n in range(self.rotate_max - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))

    def send(self, events: list[dict[str, Any]]) -> None:
        try:
            handle = self._open()
            chunk: list[bytes] = []
            chunk_size = 0
            for event in events:
                line = (to_json(event) + "\n").encode()
                if self.rotate_bytes and self.size + chunk_size and self.size + chunk_size + len(line) > self.rotate_bytes:
                    handle.write(b"".join(chunk))
                    self._sync()
                    self._rotate()
                    handle = self._open()
                    chunk, chunk_size = [], 0
                chunk.append(line)
                chunk_size += len(line)
            handle.write(b"".join(chunk))
            handle.flush()
            self.size += chunk_size
            self.dirty = True
        except OSError as exc:
            self.close()
            raise DeliveryError(f"writing {self.path} failed: {exc.strerror}") from None

    def _sync(self) -> None:
        if self.handle is not None:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        self.dirty = False

    def delivered(self, wait: bool) -> bool:
        if self.dirty:
            try:
                self._sync()
            except OSError as exc:
                self.close()
                raise DeliveryError(f"syncing {self.path} failed: {exc.strerror}") from None
        return True

    def abort(self) -> None:
        pass  # writes to local files never block for long

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError:
                pass  # the error was already reported by send/delivered
            self.handle = None
