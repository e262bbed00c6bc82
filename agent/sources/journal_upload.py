"""The journal-upload receiver: systemd-journal-remote's `POST /upload`, for nodes that ship their
journal with systemd's own uploader (`systemd-journal-upload`) and run no agent.

`[[sources]] type = "journal-upload"` (contract §10). The body (application/vnd.fdo.journal,
chunked) is the journal export format, parsed as it streams in by journal_export; each entry is
mapped by the journald source's own mapping (PRIORITY, MESSAGE, SYSLOG_IDENTIFIER/_COMM, _PID,
__REALTIME_TIMESTAMP, _SYSTEMD_UNIT -> `journald:UNIT`) and handed to the agent's normal path
(batcher -> disk spool -> shipper).

Origin: host = the client certificate's CN (else first DNS SAN) over HTTPS with `ca`, else the
peer's address; the entry's _HOSTNAME is `fields.claimed_host`, the relay `fields.relay` (set by
the collector). Plain HTTP is allowed on loopback only.

Identity and retries: an entry is keyed like the journald source's, by its cursor's seqnum_id
(source key) and seqnum (position), so an entry uploaded twice is stored once. The answer (200)
comes only once every entry of the upload is in the spool. systemd-journal-upload saves its
cursor only after a 2xx answer (--save-state); after any other answer it exits and, as a unit,
is restarted by systemd and sends again from the saved cursor. Entries this relay already has
(a seqnum at or below the highest it took for that sender and seqnum_id) are skipped on the relay
and counted (`receiver_events_duplicate_total`); the collector would drop them anyway.

Spool full: an upload waits up to `spool_wait` for room in the receiver's queue and for its
entries to reach the spool; then it is answered 503 with Retry-After. What it sent before is kept
and stored once (the retry's copies are skipped).
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fleetlog.agent.metrics import ReceiverMetrics
from fleetlog.agent.sources.base import FLAG_TRUNCATED, Emit, Record, SourceBatch
from fleetlog.agent.sources.http_connections import ConnectionLimit
from fleetlog.agent.sources.journal_export import REASONS, ExportEntry, ExportParser
from fleetlog.agent.sources.journald import entry_to_record
from fleetlog.agent.sources.syslog import (
    certificate_name,
    check_listener_bounds,
    peer_host,
    server_context,
)
from fleetlog.agent.sources.syslog_records import cut_utf8
from fleetlog.common.config import Duration, FieldError, LevelName, Size, is_loopback
from fleetlog.common.errors import ConfigError, MissingExtraError, the_extra
from fleetlog.common.event_filter import EventFilter, FieldPattern
from fleetlog.common.levels import Level
from fleetlog.common.tls import TlsFiles

log = logging.getLogger("fleetlog.agent.journal_upload")

CONTENT_TYPE = "application/vnd.fdo.journal"
MAX_PENDING = 20_000                    # entries received, not yet handed to the batcher
MAX_PENDING_BYTES = 8 * 1024 * 1024     # ... and the bytes their entries kept
# A SourceBatch at most this big: the batcher seals after the chunk that crosses batch.max_bytes,
# and a sealed batch must stay well under the collector's 4 MiB message limit.
EMIT_RECORDS = 5000
EMIT_BYTES = 256 * 1024
MAX_SENDERS = 100_000                   # (sender, seqnum_id) pairs remembered for skipping re-sent entries
BIND_RETRY = 5.0
# The metrics' reasons, each at 0 from the start.
REFUSALS = ("too_many_connections", "idle_timeout", "bad_content_type", "spool_full", "bad_stream", "cut_upload")
DROPS: tuple[str, ...] = ()                  # nothing is dropped: a full spool is answered 503
MALFORMED = (*REASONS, "no_cursor")


@dataclass(frozen=True)
class JournalUploadSourceConfig:
    type: Literal["journal-upload"]
    listen: str                                  # HOST:PORT; without tls a loopback address only
    name: str = ""                               # the listener's name in metrics; default journal-upload-PORT
    tls: TlsFiles | None = None                  # cert + key (HTTPS); ca set = client certificates required
    namespace: str = ""
    log_type: str = "system"
    max_message_bytes: Size = 64 * 1024
    max_connections: int = 100                   # open connections, idle ones too
    idle_timeout: Duration = 300.0               # an upload sending nothing this long is ended
    spool_wait: Duration = 10.0                  # how long an upload waits for the spool before 503
    min_level: LevelName = Level.DEBUG
    include: tuple[FieldPattern, ...] = ()
    exclude: tuple[FieldPattern, ...] = ()

    def validate(self) -> None:
        host, _, port = self.listen.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise FieldError("listen", f"expected HOST:PORT, got {self.listen!r}")
        if self.tls is None:
            if not is_loopback(host):
                raise FieldError("listen", f"plain HTTP only on a loopback address, not {self.listen!r}; "
                                 "set tls = { cert, key, ca } to listen beyond this machine")
        elif not self.tls.cert or not self.tls.key:
            raise FieldError("tls", "needs cert and key (and ca to require client certificates)")
        check_listener_bounds(self.max_message_bytes, self.max_connections, self.idle_timeout)
        if self.spool_wait <= 0:
            raise FieldError("spool_wait", "must be more than 0")

    @property
    def listener(self) -> str:
        return self.name or f"journal-upload-{self.listen.rpartition(':')[2]}"


def export_record(entry: ExportEntry) -> tuple[str, str, Record] | None:
    """(source label, source key, record) of one uploaded entry, by the journald source's mapping;
    the sender's _HOSTNAME becomes its claim, the boot id and cursor fields. None without a cursor."""
    values: dict[str, Any] = dict(entry.fields)
    cursor = values.get("__CURSOR")
    if cursor is None:
        return None
    values["__CURSOR"] = cursor.decode("ascii", "replace")
    if entry.truncated:
        values["MESSAGE"] = cut_utf8(values.get("MESSAGE", b""))
    mapped = entry_to_record(values)
    if mapped is None:
        return None
    label, key, record = mapped
    parsed = record.parsed
    extra = {"boot_id": values.get("_BOOT_ID", b"").decode("ascii", "replace"), "cursor": values["__CURSOR"]}
    fields = {**(parsed.fields or {}), **{k: v for k, v in extra.items() if v}}
    claimed = values.get("_HOSTNAME", b"").decode("utf-8", "replace")
    record = record._replace(parsed=parsed._replace(fields=fields, claimed_host=claimed),
                             flags=record.flags | (FLAG_TRUNCATED if entry.truncated else 0))
    return label, key, record


def _slices(queued: list[tuple[Record, int]]) -> list[tuple[list[Record], int]]:
    """Records cut into runs of at most EMIT_RECORDS and about EMIT_BYTES, with their bytes."""
    out: list[tuple[list[Record], int]] = []
    run: list[Record] = []
    size = 0
    for record, held in queued:
        run.append(record)
        size += held
        if size >= EMIT_BYTES or len(run) >= EMIT_RECORDS:
            out.append((run, size))
            run, size = [], 0
    if run:
        out.append((run, size))
    return out


class _Refused(Exception):
    def __init__(self, status: int, reason: str, text: str):
        super().__init__(text)
        self.status, self.reason = status, reason


class JournalUploadSource:
    def __init__(self, config: JournalUploadSourceConfig, state_dir: pathlib.Path,
                 on_read: Callable[[str, int], None] | None = None, metrics: ReceiverMetrics | None = None):
        self.config = config
        self.name = config.listener
        try:
            import aiohttp  # noqa: F401 — imported only where such a listener is configured
        except ModuleNotFoundError:
            raise MissingExtraError(f"agent.toml: journal-upload listener {self.name} needs "
                                    f"{the_extra('receivers', 'aiohttp')}") from None
        self.on_read = on_read or (lambda source, n: None)
        self.metrics = metrics or ReceiverMetrics()
        self.metrics.listener(self.name, REFUSALS, DROPS, MALFORMED)
        self.filters = EventFilter(config.include, config.exclude)
        self._tls = server_context(config.tls) if config.tls else None
        # Entries waiting for the batcher, by (sender, source label, source key), in arrival order.
        # Each with the bytes it holds at most (its entry's kept bytes).
        self._pending: dict[tuple[str, str, str], list[tuple[Record, int]]] = {}
        self._queued = 0
        self._queued_bytes = 0
        self._has_data = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        # Per (sender, source key): the highest seqnum taken, and the highest in the spool.
        self._taken: dict[tuple[str, str], int] = {}
        self._spooled: dict[tuple[str, str], int] = {}
        self._spool_moved = asyncio.Event()     # set (and replaced) whenever _spooled moves
        self.bound: tuple[str, int] | None = None

    # -- one upload ------------------------------------------------------------------------------

    async def _upload(self, request: Any) -> Any:
        from aiohttp import web
        try:
            await self._receive(request)
        except _Refused as refused:
            return self._refuse(refused)
        return web.Response(status=200, text="OK.\n")

    def _refuse(self, refused: _Refused) -> Any:
        from aiohttp import web
        self.metrics.refused.labels(self.name, refused.reason).inc()
        headers = {"Retry-After": str(max(1, round(self.config.spool_wait)))} if refused.status == 503 else {}
        response = web.Response(status=refused.status, text=f"{refused}\n", headers=headers)
        response.force_close()
        return response

    async def _receive(self, request: Any) -> None:
        from aiohttp.http_exceptions import HttpProcessingError
        if request.content_type != CONTENT_TYPE:
            raise _Refused(415, "bad_content_type", f"expected Content-Type {CONTENT_TYPE}")
        host = self._sender(request)
        parser = ExportParser(self.config.max_message_bytes)
        waits: dict[tuple[str, str], int] = {}      # what must be in the spool before the answer
        try:
            while True:
                if not self._room.is_set():
                    await self._wait_for(self._room.wait(), "no room in the spool")
                try:
                    async with asyncio.timeout(self.config.idle_timeout):
                        data = await request.content.readany()
                except TimeoutError:
                    raise _Refused(408, "idle_timeout", "no data for idle_timeout") from None
                except (ConnectionError, HttpProcessingError) as exc:   # hung up, or broken chunking
                    parser.end()
                    raise _Refused(400, "cut_upload", f"the upload ended before its body: {exc}") from None
                if not data:
                    parser.end()
                    break
                entries = parser.feed(data)
                if entries:
                    self._accept(host, entries, waits)
                if parser.broken:
                    raise _Refused(400, "bad_stream", "malformed journal export data")
        finally:
            for reason, count in parser.problems.items():
                self.metrics.malformed.labels(self.name, reason).inc(count)
        if waits:
            await self._wait_for(self._spool_has(waits), "entries not yet in the spool")

    def _sender(self, request: Any) -> str:
        transport = request.transport
        name = certificate_name(transport.get_extra_info("ssl_object")) if transport and self._tls else ""
        return name or peer_host(transport.get_extra_info("peername") if transport else request.remote)

    async def _wait_for(self, awaitable: Any, what: str) -> None:
        try:
            async with asyncio.timeout(self.config.spool_wait):
                await awaitable
        except TimeoutError:
            raise _Refused(503, "spool_full", f"the relay's spool is full ({what}); try again later") from None

    async def _spool_has(self, waits: dict[tuple[str, str], int]) -> None:
        while not all(self._spooled.get(key, -1) >= seqnum for key, seqnum in waits.items()):
            await self._spool_moved.wait()

    def _accept(self, host: str, entries: Iterable[ExportEntry], waits: dict[tuple[str, str], int]) -> None:
        taken = 0
        for entry in entries:
            mapped = export_record(entry)
            if mapped is None:
                self.metrics.malformed.labels(self.name, "no_cursor").inc()
                continue
            label, key, record = mapped
            size = sum(map(len, entry.fields.values()))      # what the record holds, at most
            sender = (host, key)
            waits[sender] = max(waits.get(sender, -1), record.position)
            if record.position <= self._taken.get(sender, -1):
                self.metrics.duplicates.labels(self.name).inc()
                continue
            self._remember(sender, record.position)
            group = (host, label, key)
            self._pending.setdefault(group, []).append((record, size))
            self._queued += 1
            self._queued_bytes += size
            taken += 1
        if taken:
            self.metrics.received.labels(self.name).inc(taken)
            self._has_data.set()
            if self._queued >= MAX_PENDING or self._queued_bytes >= MAX_PENDING_BYTES:
                self._room.clear()

    def _remember(self, sender: tuple[str, str], seqnum: int) -> None:
        """The highest seqnum taken from a sender, the most recent senders last. Beyond MAX_SENDERS
        the least recent is forgotten: its re-sent entries are no longer skipped here (the
        collector still stores each once), and an upload still waiting for it is answered 503."""
        taken = self._taken
        if taken.pop(sender, None) is None and len(taken) >= MAX_SENDERS:
            oldest = next(iter(taken))
            del taken[oldest]
            self._spooled.pop(oldest, None)
        taken[sender] = seqnum

    # -- handing over --------------------------------------------------------------------------

    async def _flush(self, emit: Emit) -> None:
        """Everything queued to the batcher. The highest seqnum per sender rides on the last batch:
        the spool takes batches in order, so when it holds that one it holds them all."""
        pending, self._pending = self._pending, {}
        self._has_data.clear()
        marks: dict[tuple[str, str], int] = {}
        slices = []
        for (host, label, key), queued in pending.items():
            marks[host, key] = max(marks.get((host, key), -1), queued[-1][0].position)
            slices += [(host, label, key, records, size) for records, size in _slices(queued)]
        for i, (host, label, key, records, size) in enumerate(slices):
            self.on_read(label, len(records))
            try:
                await emit(SourceBatch(source=label, source_key=key, log_type=self.config.log_type, records=records,
                                       checkpoint=marks if i == len(slices) - 1 else None,
                                       read_bytes=size + 64 * len(records), min_level=int(self.config.min_level),
                                       filters=self.filters or None, namespace=self.config.namespace,
                                       relayed_host=host))
            finally:
                self._queued -= len(records)
                self._queued_bytes -= size
                if self._queued < MAX_PENDING and self._queued_bytes < MAX_PENDING_BYTES:
                    self._room.set()

    def commit(self, checkpoint: Any) -> None:
        """A batch is in the spool: the uploads waiting for its entries may be answered."""
        if not checkpoint:
            return
        for sender, seqnum in checkpoint.items():
            if sender in self._taken and seqnum > self._spooled.get(sender, -1):   # bounded with _taken
                self._spooled[sender] = seqnum
        moved, self._spool_moved = self._spool_moved, asyncio.Event()
        moved.set()

    def lag_bytes(self) -> dict[str, int]:
        return {}

    # -- listening -----------------------------------------------------------------------------

    async def _listen(self) -> Callable[[], Awaitable[None]]:
        from aiohttp import web
        app = web.Application()
        app.router.add_post("/upload", self._upload)
        # The access log is off (every upload would be a line). The keep-alive timer, idle_timeout
        # (at most 75 s), also closes a connection whose request head does not come whole.
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=min(self.config.idle_timeout, 75.0),
                               lingering_time=1.0, shutdown_timeout=1.0, handle_signals=False)
        await runner.setup()
        server = runner.server
        assert server is not None          # made by runner.setup()
        connections = ConnectionLimit(self.config.max_connections, self.metrics.connections.labels(self.name).inc,
                                      self.metrics.refused.labels(self.name, "too_many_connections").inc)
        address, _, port = self.config.listen.rpartition(":")
        try:
            listener = await asyncio.get_running_loop().create_server(
                lambda: connections.protocol(server), address.strip("[]") or None, int(port), ssl=self._tls,
                reuse_address=True, backlog=128, family=socket.AF_UNSPEC)
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"agent.toml: journal-upload listener {self.name}: cannot listen on "
                              f"{self.config.listen}: {exc.strerror}") from None
        self.bound = listener.sockets[0].getsockname()[:2] if listener.sockets else None

        async def stop() -> None:
            listener.close()
            await runner.cleanup()
        return stop

    async def run(self, emit: Emit) -> None:
        while True:
            try:
                stop = await self._listen()
                break
            except ConfigError as exc:
                log.error("%s; trying again in %.0f s", exc, BIND_RETRY)
                await asyncio.sleep(BIND_RETRY)
        log.info("journal-upload listener %s on %s (%s)", self.name, self.config.listen,
                 "https" if self._tls else "http")
        try:
            while True:
                await self._has_data.wait()
                await self._flush(emit)
        except asyncio.CancelledError:
            # A clean stop: what was received goes to the batcher before the task ends.
            await self._flush(emit)
            raise
        finally:
            await asyncio.shield(stop())

