"""The journald source: follows `journalctl --output=json` from the persisted cursor.

journalctl does the journal-format work (files of several boots, rotation, corruption handling,
`--directory`/`--file` for a journal that is not the system's); we read its JSON lines in bulk.
An entry's identity is its cursor: events are keyed by the journal's sequence-number id (`s=`)
and positioned by the sequence number (`i=`), so re-reading after a restart or a wiped state
directory yields the same event ids. The checkpoint is the cursor of the last entry of a durable
batch; journalctl restarts with `--after-cursor` from it.

Mapping: PRIORITY -> level, __REALTIME_TIMESTAMP -> time, SYSLOG_IDENTIFIER (or _COMM) -> app,
_PID -> pid, MESSAGE -> message (a byte array when it is not valid UTF-8: decoded with
replacement characters and `fields.invalid_utf8`), _SYSTEMD_UNIT -> the source label
`journald:UNIT`. Fields an application logged itself (no leading underscore) map like JSON
keys (REQUEST_ID -> request_id, USER_NAME -> user, ...) and the rest land in `fields`.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import json
import logging
import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fleetlog.agent.checkpoints import CheckpointFile
from fleetlog.agent.parse import Parsed, _apply_keys, _level_of, _text
from fleetlog.agent.sources.base import FLAG_TRUNCATED, Emit, Record, SourceBatch
from fleetlog.common.config import LevelName
from fleetlog.common.event_filter import EventFilter, FieldPattern
from fleetlog.common.levels import Level

log = logging.getLogger("fleetlog.agent.journald")


@dataclass(frozen=True)
class JournaldSourceConfig:
    type: Literal["journald"]
    name: str = ""
    units: tuple[str, ...] = ()
    journal_dir: str = ""
    log_type: str = "system"
    min_level: LevelName = Level.DEBUG
    include: tuple[FieldPattern, ...] = ()
    exclude: tuple[FieldPattern, ...] = ()
    start_at: Literal["beginning", "end"] = "beginning"

JOURNALCTL = "journalctl"
READ_SIZE = 1024 * 1024
MAX_MESSAGE_CHARS = 64 * 1024
MAX_TIME_US = 253_402_300_799_999_999        # 9999-12-31T23:59:59.999999Z, as the collector accepts
RESTART_DELAYS = (0.5, 1, 2, 5, 10, 30)   # backoff when journalctl exits or cannot start

# Journal fields that are metadata of the entry rather than the application's own fields.
_TRUSTED_OR_PROTOCOL = {
    "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY", "SYSLOG_PID", "SYSLOG_TIMESTAMP",
    "SYSLOG_RAW", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "MESSAGE_ID", "ERRNO", "INVOCATION_ID",
    "USER_INVOCATION_ID", "TID", "UNIT", "USER_UNIT", "DOCUMENTATION",
}


def _decode(value: Any) -> tuple[str, bool]:
    """A journal field value as text: (text, was invalid UTF-8). journalctl writes fields that
    are not valid UTF-8 as arrays of byte values, and fields it did not print as null; the
    journal export format gives bytes."""
    if isinstance(value, str):
        return value, False
    if isinstance(value, bytes):        # the journal export format's values (journal-upload receiver)
        try:
            return value.decode("utf-8"), False
        except UnicodeDecodeError:
            return value.decode("utf-8", "replace"), True
    if isinstance(value, list):
        if value and isinstance(value[0], list):   # a field logged several times: the last one
            return _decode(value[-1])
        if all(isinstance(b, int) for b in value):
            raw = bytes(b & 0xFF for b in value)
            try:
                return raw.decode("utf-8"), False
            except UnicodeDecodeError:
                return raw.decode("utf-8", "replace"), True
        return _decode(value[-1]) if value else ("", False)
    if value is None:
        return "", False
    return str(value), False


def parse_cursor(cursor: str) -> tuple[str, int] | None:
    """(sequence-number id, sequence number) of a journal cursor."""
    parts = dict(item.split("=", 1) for item in cursor.split(";") if "=" in item)
    try:
        seqnum_id, seqnum = parts["s"], int(parts["i"], 16)
    except (KeyError, ValueError):
        return None
    # The position on the wire is a uint64 the collector stores as a signed 64-bit integer.
    return (seqnum_id, seqnum) if 0 <= seqnum < 1 << 63 else None


def entry_to_record(entry: dict[str, Any]) -> tuple[str, str, Record] | None:
    """(source label, source key, record) of one journalctl JSON entry; None without a cursor."""
    cursor = entry.get("__CURSOR")
    located = parse_cursor(cursor) if isinstance(cursor, str) else None
    if located is None:
        return None
    seqnum_id, seqnum = located
    message, invalid = _decode(entry.get("MESSAGE"))
    flags = 0
    if len(message) > MAX_MESSAGE_CHARS:
        message, flags = message[:MAX_MESSAGE_CHARS], FLAG_TRUNCATED
    level = _level_of(_decode(entry.get("PRIORITY"))[0]) if "PRIORITY" in entry else None
    try:
        time_us = int(entry["__REALTIME_TIMESTAMP"])
    except (KeyError, ValueError, TypeError):
        time_us = None
    if time_us is not None and not 0 <= time_us <= MAX_TIME_US:
        time_us = None   # beyond what the wire and the collector take (found by fuzzing): read time
    app = _decode(entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM"))[0]
    try:
        pid = int(_decode(entry.get("_PID") or entry.get("SYSLOG_PID") or 0)[0] or 0)
    except ValueError:
        pid = 0
    if not 0 <= pid < 1 << 32:
        pid = 0          # the wire's pid is a uint32
    own = {key.lower(): _decode(value)[0] for key, value in entry.items()
           if not key.startswith("_") and key not in _TRUSTED_OR_PROTOCOL}
    known, fields = _apply_keys(own) if own else ({}, None)
    if invalid:
        fields = {**(fields or {}), "invalid_utf8": True}
    unit = _decode(entry.get("_SYSTEMD_UNIT"))[0]
    label = "journald:" + (unit or app or "journal")
    parsed = Parsed(time_us, level, message, _text(known.get("request_id")), _text(known.get("user")),
                    _text(known.get("action")), fields)
    return label, f"journald:{seqnum_id}", Record(seqnum, parsed, app, pid, flags, time_us or 0)


class JournaldSource:
    def __init__(self, config: JournaldSourceConfig, state_dir: pathlib.Path,
                 on_read: Callable[[str, int], None] | None = None):
        self.config = config
        self.name = config.name or "journald-" + hashlib.sha256(
            "\0".join([config.journal_dir, *config.units]).encode()).hexdigest()[:12]
        path = state_dir / "sources" / self.name / "checkpoints.json"
        self._fresh = not path.exists()      # start_at = "end" applies only to the first start
        self.checkpoints = CheckpointFile(path)
        self.filters = EventFilter(config.include, config.exclude)
        self.on_read = on_read or (lambda source, n: None)
        self._last_read: str | None = self.checkpoints.data.get("cursor")
        self._process: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        cmd = [JOURNALCTL, "--output=json", "--follow", "--no-pager", "--all", "--quiet"]
        where = self.config.journal_dir
        if where:
            if os.path.isdir(where):
                cmd.append(f"--directory={where}")
            else:
                cmd.extend(f"--file={path}" for path in (sorted(glob.glob(where)) or [where]))
        # --follow alone shows only the last 10 entries, also after a cursor: --no-tail.
        if self._last_read:
            cmd.extend([f"--after-cursor={self._last_read}", "--no-tail"])
        elif self.config.start_at == "end" and self._fresh:
            cmd.append("--lines=0")
        else:
            cmd.append("--no-tail")
        cmd.extend(f"--unit={unit}" for unit in self.config.units)
        return cmd

    async def run(self, emit: Emit) -> None:
        failures = 0
        try:
            while True:
                read_any = await self._follow_once(emit)
                failures = 0 if read_any else failures + 1
                await asyncio.sleep(RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)])
        finally:
            await self._stop_process()

    async def _follow_once(self, emit: Emit) -> bool:
        """Run journalctl until it exits; whether it delivered anything."""
        cmd = self.command()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            log.error("cannot run %s: %s", JOURNALCTL, exc.strerror)
            return False
        process = self._process
        assert process.stdout is not None and process.stderr is not None
        delivered = False
        pending = b""
        while True:
            data = await process.stdout.read(READ_SIZE)
            if not data:
                break
            buffer = pending + data if pending else data
            end = buffer.rfind(b"\n")
            if end < 0:
                pending = buffer
                continue
            pending = buffer[end + 1:]
            delivered = await self._deliver(buffer[:end], emit) or delivered
        error = (await process.stderr.read()).decode(errors="replace").strip()
        code = await process.wait()
        self._process = None
        log.warning("journalctl exited with %s%s; following again", code, f": {error.splitlines()[-1]}" if error else "")
        return delivered

    async def _deliver(self, block: bytes, emit: Emit) -> bool:
        """Emit the entries of a block of JSON lines, one SourceBatch per (label, journal); the
        cursor rides on the last, so it is durable only once everything before it is."""
        groups: dict[tuple[str, str], list[Record]] = {}
        last_cursor = None
        for line in block.split(b"\n"):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                log.warning("skipping a line journalctl wrote that is not JSON (%d bytes)", len(line))
                continue
            if not isinstance(entry, dict):
                continue
            mapped = entry_to_record(entry)
            if mapped is None:
                continue
            label, key, record = mapped
            groups.setdefault((label, key), []).append(record)
            last_cursor = entry["__CURSOR"]
        if last_cursor is None:
            return False
        self._last_read = last_cursor
        items = list(groups.items())
        for i, ((label, key), records) in enumerate(items):
            self.on_read(label, len(records))
            checkpoint = last_cursor if i == len(items) - 1 else None
            await emit(SourceBatch(source=label, source_key=key, log_type=self.config.log_type,
                                   records=records, checkpoint=checkpoint,
                                   read_bytes=sum(len(r.parsed.message) for r in records) + 64 * len(records),
                                   min_level=int(self.config.min_level), filters=self.filters or None))
        return True

    async def _stop_process(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def commit(self, checkpoint: Any) -> None:
        if not checkpoint:
            return
        self.checkpoints.data["cursor"] = checkpoint
        self.checkpoints.save()

    def lag_bytes(self) -> dict[str, int]:
        return {}   # the journal has no byte offset to lag behind; events_read_total shows progress
