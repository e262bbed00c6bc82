"""What makes a bundle verifiable on its own (contract §4.7, `fleetlog verify --bundle`).

A bundle's events are a filtered subset with secrets masked, so they cannot be re-chained like a
database. Instead the collector vouches for the file as it was written: `digests.txt` has one line
`SEQ DIGEST` per line of events.jsonl (DIGEST = the first 32 hex digits of SHA-256 over the exact
bytes of that line, without its newline), and the collector signs, with its checkpoint key,

    {"collector": C, "digests_sha256": SHA-256 hex of digests.txt, "events": N, "key_id": K,
     "time": T (µs since epoch), "type": "fleetlog-bundle/1"}

as canonical JSON (sorted keys, compact, UTF-8), the same way as checkpoints. The `type` keeps
the signature from passing for a checkpoint and vice versa. A changed, removed, inserted or
reordered event then shows as the first line whose digest or seq disagrees, and the manifest's
signed checkpoint still ties the bundle to the collector's chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetlog.common.checkpoints import SignedStatement
from fleetlog.common.export.bundle import line_digest  # noqa: F401 — verifiers import it from here too

ATTESTATION_TYPE = "fleetlog-bundle/1"


@dataclass(frozen=True)
class Attestation(SignedStatement):
    TYPE = ATTESTATION_TYPE
    collector: str
    events: int
    digests_sha256: str
    time: int
    key_id: str
    signature: str = ""   # hex

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attestation:
        try:
            if data["type"] != ATTESTATION_TYPE:
                raise ValueError(f"type {data['type']!r}")
            return cls(str(data["collector"]), int(data["events"]), str(data["digests_sha256"]),
                       int(data["time"]), str(data["key_id"]), str(data["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed bundle attestation: {exc}") from None
