"""A small valid bundle (members of the .tar.gz), made in memory: the fuzzer changes, drops and
adds members from here, so it starts past the signature checks instead of at random bytes."""

from __future__ import annotations

import functools
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.common.bundle_attestation import Attestation, line_digest
from fleetlog.common.checkpoints import Checkpoint, key_id, public_pem


@functools.lru_cache(maxsize=1)
def seed_members() -> tuple[tuple[str, bytes], ...]:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    kid = key_id(key.public_key())
    lines = [json.dumps({"seq": seq, "message": f"line {seq}", "user": "***"}, separators=(",", ":")).encode()
             for seq in (3, 4, 7)]
    digests = "".join(f"{json.loads(line)['seq']} {line_digest(line)}\n" for line in lines).encode()
    checkpoint = Checkpoint("c1", 7, "ab" * 32, 1_700_000_000_000_000, kid).signed(key)
    attestation = Attestation("c1", len(lines), hashlib.sha256(digests).hexdigest(), 1_700_000_000_000_000,
                              kid).signed(key)
    manifest = {"filters": {}, "counts": {"events": len(lines)}, "checkpoint": checkpoint.to_json(),
                "attestation": attestation.to_json()}
    return (("events.jsonl", b"\n".join(lines) + b"\n"), ("digests.txt", digests),
            ("manifest.json", json.dumps(manifest).encode()), ("signing.pub", public_pem(key.public_key()).encode()))
