"""Shared pieces of `make bench`: the workload, process measurements, the results table."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import platform
from dataclasses import dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent


def write_workload(path: pathlib.Path, count: int, start: int = 0) -> int:
    """~120-byte lines in the shape of an authentication log; returns bytes written."""
    with open(path, "a") as handle:
        chunk = []
        for i in range(start, start + count):
            chunk.append(f"2025-12-02T14:30:45.{i % 1000000:06d}Z INFO req=r{i % 9973:05d} "
                         f"user=user{i % 97}@example.com Authentication SUCCESS via LDAP seq={i:09d}\n")
            if len(chunk) == 10000:
                handle.write("".join(chunk))
                chunk = []
        handle.write("".join(chunk))
    return path.stat().st_size


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the kernel's record of the process's peak resident set."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def stored_events(db: pathlib.Path, host: str) -> int:
    """Events of `host` committed in the SQLite store whose main file is `db`."""
    from tests.harness import committed_events
    return committed_events(db, host)


@dataclass
class BenchContext:
    work: pathlib.Path                 # a temp dir for this run; removed at the end
    lines: int                         # the end-to-end workload size (--lines)
    results: dict[str, Any] = field(default_factory=dict)  # figures later sections may reuse


@dataclass
class Row:
    figure: str
    measured: str
    target: str = ""
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("pass" if self.passed else "FAIL")


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def render_table(rows: list[Row]) -> str:
    headers = ("figure", "measured", "target", "pass/fail")
    cells = [headers] + [(r.figure, r.measured, r.target, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(4)) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
