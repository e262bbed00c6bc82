"""A support bundle as the collector writes it (Query.Bundle, the console's download): the
matching events as events.jsonl lines with secrets masked, and at the end the collector's signed
attestation of the digests of exactly those lines (common/bundle_attestation.py).

The collector computes the digests it signs from the lines it produced from its own store,
under the caller's scope; nothing a client sends is signed. A client recomputes the digests from
the lines it received and holds them against the attestation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fleetlog.common.export.bundle import Digests, masked_line
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

# (the event as presented, its events.jsonl line, whether a secret was masked in it)
BundleLine = tuple[dict[str, Any], str, bool]


class CollectorBundle:
    def __init__(self, pages: Iterator[list[dict[str, Any]]],
                 attest: Callable[[int, str], Awaitable[pb.EvidenceReply]]):
        self._pages = pages
        self._attest = attest
        self._digests = Digests()
        self._complete = False

    def pages(self) -> Iterator[list[BundleLine]]:
        """Blocking: pages of the bundle's lines, in order; each line's digest is taken here."""
        for page in self._pages:
            lines = []
            for event in page:
                line, masked = masked_line(event)
                self._digests.add(int(event.get("seq", 0)), line)
                lines.append((event, line, masked))
            yield lines
        self._complete = True

    async def attest(self) -> pb.EvidenceReply:
        """A fresh checkpoint, the keys, and the signed attestation of every line `pages` gave."""
        if not self._complete:
            raise RuntimeError("a bundle is attested only after all its lines were produced")
        return await self._attest(self._digests.lines, self._digests.hexdigest())
