"""RunningCollector: everything a request handler may ask of the running collector, and nothing
more. The gRPC services (collector/service.py), the auth gate (collector/gate.py) and the
console's views (collector/web/) hold one of these, as Datasette's views hold `ds`; none of them
sees the collector's parts (writer, store, admission budget, query engine) or CollectorApp.

Each method delegates to the room that does the work: collector/intake.py (a batch from the wire
to its commit), nodes.py, own_events.py, denials.py, follow.py, status.py, evidence.py, bundles.py and the
query engine (query.py). Methods documented "blocking" read the store: call them in a worker
thread (asyncio.to_thread).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import grpc

from fleetlog.collector.auth_failures import AuthFailures
from fleetlog.collector.bundles import CollectorBundle
from fleetlog.collector.denials import Denials
from fleetlog.collector.evidence import Evidence
from fleetlog.collector.filters import FilterSpec, build_filter_spec
from fleetlog.collector.follow import Followers
from fleetlog.collector.identity import Authenticator, Caller, note_namespace
from fleetlog.collector.ingest import Origin
from fleetlog.collector.intake import Admitted, Committed, Intake
from fleetlog.collector.nodes import Nodes
from fleetlog.collector.own_events import OwnEvents
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.rejections import Rejections
from fleetlog.collector.settings.layer import SettingsLayer
from fleetlog.collector.status import StatusReport
from fleetlog.collector.store import EventWriter
from fleetlog.common.errors import StorageError
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb


class RunningCollector:
    def __init__(self, *, authenticator: Authenticator, auth_failures: AuthFailures, rejections: Rejections, intake: Intake, nodes: Nodes,
                 own_events: OwnEvents, denials: Denials, query: QueryEngine, store: EventWriter,
                 followers: Followers, status: StatusReport, evidence: Evidence,
                 node_name: Callable[[], str], data_dir: str, settings: SettingsLayer | None = None):
        self._authenticator = authenticator
        self._auth_failures = auth_failures
        self._rejections = rejections
        self._intake = intake
        self._nodes = nodes
        self._own_events = own_events
        self._denials = denials
        self._query = query
        self._store = store
        self._followers = followers
        self._status = status
        self._evidence = evidence
        self._node_name = node_name
        self._data_dir = data_dir
        self._settings = settings

    # -- who is asking ---------------------------------------------------------------------------

    @property
    def authenticator(self) -> Authenticator:
        """The tokens and mTLS settings; the console builds its sign-in and sessions on it."""
        return self._authenticator

    @property
    def needs_credentials(self) -> bool:
        """True with tokens or mTLS configured: a peer is authenticated before anything it sent
        is read."""
        return not self._authenticator.open

    def authenticate(self, context: grpc.aio.ServicerContext, claimed: str = "") -> Caller:
        """The caller of a gRPC call (`claimed`: the node name an agent gave itself). Raises
        AuthError."""
        return self._authenticator.authenticate(context, claimed)

    def refusal(self, metadata: Any) -> str | None:
        """Why a call with this metadata cannot be authenticated, or None when it may proceed."""
        return self._authenticator.refusal(metadata)

    def failed_authentication(self, ip: str) -> None:
        """Count a failed authentication from `ip` (collector/auth_failures.py)."""
        self._auth_failures.failed(ip)

    def authentication_retry_after(self, ip: str) -> float:
        """Seconds during which `ip`'s credentials are refused unchecked (too many failures); 0: none."""
        return self._auth_failures.retry_after(ip)

    # -- refusals and the audit ------------------------------------------------------------------

    def refuse(self, peer: str, reason: str, message: str) -> None:
        """Count and (rate-limited) log a request refused for what the peer sent."""
        self._rejections.refuse(peer, reason, message)

    def count_refusal(self, reason: str) -> None:
        """Count a refusal whose record is a denial (see record_denial)."""
        self._rejections.count(reason)

    async def record_denial(self, caller: Caller | None, what: str, why: str,
                            context: grpc.aio.ServicerContext | None, host: str = "", ip: str = "",
                            fields: dict[str, Any] | None = None) -> None:
        """Log and store (throttled) an `audit/denied` event: `what` was refused to `caller`
        (None: not authenticated) because `why`. The peer is the gRPC `context`'s, else `ip`;
        `fields` go into the event."""
        await self._denials.record(caller, what, why, context, host, ip, fields)

    async def record_search(self, caller: Caller, purpose: str, raw_filters: dict[str, str],
                            via: str = "") -> None:
        """Store the audit event of a search before it is answered; `via` names a front end other
        than gRPC ("web"). Raises StorageError when it cannot be stored: refuse the search then."""
        await self._own_events.record_search(caller, purpose, raw_filters, via)

    async def add_note(self, caller: Caller, text: str, namespace: str = "") -> tuple[int, str]:
        """Store a note (`Admin.EventLog.Note`) in `namespace`, or the caller's own (see
        identity.note_namespace); its seq and event id. Raises UsageError, NamespaceRefused,
        StorageError."""
        return await self._own_events.add_note(caller, text, note_namespace(caller, namespace))

    # -- ingest ----------------------------------------------------------------------------------

    def agent_connected(self, name: str, ip: str, delta: int) -> None:
        """An agent's ingest stream opened (+1) or closed (-1)."""
        self._nodes.connected(name, ip, delta)

    async def admit(self, nbytes: int) -> None:
        """Wait until a received message of `nbytes` fits the admission budget, and take its share
        (before decoding it). Give it back with `release`, or pass it on to `prepare`."""
        await self._intake.admit(nbytes)

    async def wait_for_room(self) -> None:
        """Wait, taking nothing, while the admission budget is spent: call before reading the
        next message, so a flood stays in the peers' buffers."""
        await self._intake.wait_for_room()

    async def release(self, events: int, nbytes: int) -> None:
        """Give back budget taken with `admit` for a message that is not a batch (or is broken)."""
        await self._intake.release(events, nbytes)

    async def prepare(self, batch: pb.Batch, wire_bytes: int, origin: Origin) -> Admitted:
        """Check and classify an admitted batch from `origin`. Raises BadBatch (nothing of it is
        stored; its budget is back)."""
        return await self._intake.prepare(batch, wire_bytes, origin)

    async def commit(self, admitted: Admitted) -> Committed:
        """Store a prepared batch and wait for its commit (only then may it be acknowledged).
        Raises StorageError. Either way its budget is given back."""
        return await self._intake.commit(admitted)

    # -- reading ---------------------------------------------------------------------------------

    def filter_spec(self, raw: dict[str, str], caller: Caller) -> FilterSpec:
        """The CLI's filters (raw strings by name) as a FilterSpec, narrowed to the namespaces the
        caller may read. Raises UsageError with the CLI's message."""
        spec = build_filter_spec(raw)
        if caller.namespaces is not None:
            spec = replace(spec, allowed_namespaces=tuple(caller.namespaces))
        return spec

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Blocking: pages of matching events as presented to users (0: no limit)."""
        return self._query.search(spec, order=order, limit=limit, page_size=page_size)

    def time_span(self, spec: FilterSpec) -> tuple[int, int] | None:
        """Blocking: (oldest, newest) time in µs of the matching events; None when none match."""
        return self._query.time_span(spec)

    def histogram(self, spec: FilterSpec, start_us: int, width_us: int, buckets: int) -> list[tuple[int, int, int]]:
        """Blocking: (bucket index, level, count) of the matching events in `buckets` buckets."""
        return self._query.histogram(spec, start_us, width_us, buckets)

    def chain_of(self, event: dict[str, Any]) -> str:
        """The chain a presented event belongs to (its key in a follow cursor)."""
        return self._store.chain_of(event)

    async def follow_start(self, after_seq: int, cursor_json: str) -> dict[str, int]:
        """Where a follow starts: the client's cursor (JSON chain -> seq), else `after_seq` on a
        one-chain store, else now. Raises UsageError for a malformed cursor."""
        return await self._followers.start_cursor(after_seq, cursor_json)

    def follow(self, spec: FilterSpec, cursor: dict[str, int]
               ) -> AsyncIterator[tuple[list[dict[str, Any]], dict[str, int]]]:
        """Endless: pages of matching events as they are committed after `cursor`, each with the
        cursor past it."""
        return self._followers.pages(spec, cursor)

    async def status(self, caller: Caller | None = None) -> pb.StatusReply:
        """The collector, its cluster, nodes, forwarders and store, as `fleetlog status` shows;
        for a namespace role only its namespaces' nodes (collector/status.py). None: the
        collector's own use (a bundle's manifest takes its name and version)."""
        return await self._status.build(caller)

    async def chain_status(self) -> dict[str, Any]:
        """The chain head and the newest signed checkpoint (head_seq, head_link_hex,
        checkpoint_json, public_keys_pem), read without signing anything."""
        return await self._evidence.chain_status()

    async def evidence(self, caller: Caller, via: str = "") -> pb.EvidenceReply:
        """Recorded in the audit log, then a fresh checkpoint of the head with the public keys.
        Raises StorageError when the audit event cannot be stored."""
        await self._own_events.record_evidence(caller, "checkpoint", via)
        return await self._evidence.fresh()

    def bundle(self, spec: FilterSpec, caller: Caller, via: str = "") -> CollectorBundle:
        """The support bundle of the events `spec` matches: blocking pages of masked lines, then
        `attest()`, which records the audit event and signs the digests of exactly the lines
        produced (raises StorageError)."""
        async def attest(events: int, digests_sha256: str) -> pb.EvidenceReply:
            await self._own_events.record_evidence(caller, "bundle", via, events, digests_sha256)
            return await self._evidence.attest(events, digests_sha256)
        return CollectorBundle(self.search(spec, order="asc", limit=0), attest)

    # -- settings managed live -------------------------------------------------------------------

    @property
    def settings(self) -> SettingsLayer:
        """Forwarders, namespaces and tokens kept in the store (collector/settings/layer.py)."""
        if self._settings is None:
            raise StorageError("settings are not available on this collector")
        return self._settings

    # -- where the console writes ----------------------------------------------------------------

    @property
    def node_name(self) -> str:
        """This collector's name (its chain, and the name on exports)."""
        return self._node_name()

    @property
    def data_dir(self) -> str:
        """The collector's data_dir: downloads are written there before they are sent."""
        return self._data_dir
