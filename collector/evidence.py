"""What the collector vouches for: the chain head and the newest signed checkpoint with every
public key (`fleetlog status`, the console), and for a support bundle a fresh checkpoint plus a
signed attestation of the digests the collector computed over the bundle's lines
(collector/bundles.py: `fleetlog bundle`, the console's download).

Everything read from the store is read on the writer thread, so it is committed state only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fleetlog.collector.signing import Signer, evidence_of
from fleetlog.collector.store import EventWriter
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.bundle_attestation import Attestation
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.timefmt import now_us


def chain_head_evidence(store: EventWriter) -> dict[str, Any]:
    """The chain head (seq, link) as the writer sees it, committed state only."""
    return {"head_seq": store.last_seq, "head_link_hex": store.chain_head.hex() if store.last_seq else ""}


class Evidence:
    def __init__(self, writer: StorageWriter, signer: Signer, node_name: Callable[[], str]):
        self._writer = writer
        self._signer = signer
        self._node_name = node_name   # read at each attestation: the config as last reloaded

    async def chain_status(self) -> dict[str, Any]:
        """The chain head and the newest signed checkpoint, read without signing anything."""
        return await self._writer.call(lambda store: {**chain_head_evidence(store),
                                                       **evidence_of(store, self._signer.key_id)})

    async def fresh(self) -> pb.EvidenceReply:
        """Sign the head first (a bundle gets a checkpoint covering all it holds), then the newest
        checkpoint, the head and the public keys."""
        def collect(store: EventWriter) -> dict[str, Any]:
            self._signer.checkpoint_head(store)
            return {**chain_head_evidence(store), **evidence_of(store, self._signer.key_id)}
        return pb.EvidenceReply(**await self._writer.call(collect))

    async def attest(self, events: int, digests_sha256: str) -> pb.EvidenceReply:
        """`fresh()` with a signed attestation of a bundle's digests. Only for digests the
        collector computed itself (collector/bundles.py), never for ones a client sent."""
        reply = await self.fresh()
        attestation = Attestation(self._node_name(), events, digests_sha256, now_us(),
                                  self._signer.key_id).signed(self._signer.key)
        reply.bundle_attestation_json = json.dumps(attestation.to_json())
        return reply
