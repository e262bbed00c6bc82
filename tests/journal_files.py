"""Real journal files for tests: entries in the journal export format, written (or appended) by
`systemd-journal-remote --output=FILE.journal -`. Values given as bytes use the export format's
binary-safe form (field name, newline, 64-bit little-endian length, raw bytes)."""

from __future__ import annotations

import pathlib
import struct
import subprocess
from typing import Any

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_ID = "0123456789abcdef0123456789abcdef"


def export_entry(fields: dict[str, Any], realtime_us: int, monotonic_us: int) -> bytes:
    out = [b"__REALTIME_TIMESTAMP=%d\n" % realtime_us, b"__MONOTONIC_TIMESTAMP=%d\n" % monotonic_us,
           b"_BOOT_ID=" + BOOT_ID.encode() + b"\n"]
    for name, value in fields.items():
        if isinstance(value, bytes):
            out.append(name.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n")
        else:
            out.append(f"{name}={value}\n".encode())
    return b"".join(out) + b"\n"


class JournalFile:
    """One journal file that tests append entries to, as a journald would."""

    def __init__(self, path: pathlib.Path, start_us: int = 1_764_685_845_000_000):
        assert path.suffix == ".journal"
        self.path = path
        self.next_us = start_us
        self.entries = 0

    def append(self, entries: list[dict[str, Any]]) -> None:
        data = b""
        for fields in entries:
            data += export_entry(fields, self.next_us, 1_000_000 + self.entries)
            self.next_us += 1000
            self.entries += 1
        result = subprocess.run([JOURNAL_REMOTE, f"--output={self.path}", "-"], input=data, check=False,
                                capture_output=True, timeout=30)
        assert result.returncode == 0, result.stderr.decode(errors="replace")


def entry(message: str | bytes, unit: str = "demo.service", priority: int = 6, identifier: str = "demo",
          pid: int = 4242, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"_SYSTEMD_UNIT": unit, "PRIORITY": priority, "SYSLOG_IDENTIFIER": identifier,
                              "_PID": pid, "MESSAGE": message}
    fields.update(extra)
    return fields
