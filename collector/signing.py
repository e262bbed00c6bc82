"""The collector's checkpoint signer (contract §4.7).

Checkpoints are signed inside the storage transaction that stores the events they cover, every
`checkpoint_every` events (at exact multiples past the previous checkpoint, using each event's
stored link), so signing costs one Ed25519 signature per checkpoint and never a transaction of its
own under load. A timer signs the chain head every `checkpoint_interval` when events arrived but
no checkpoint followed, and a clean shutdown signs the head, so a stopped collector's database is
covered to its last event.

The key is `[signing] key` or, when none is configured, `signing.key` in data_dir, generated on
first start. Every public key that signed is kept in the `signing_keys` table. When the key
differs from the newest one of the database, the collector records a permanent-tier rotation
event naming both public keys; the next checkpoint (signed with the new key) covers it, which is
what lets a verifier holding the new key trust the old key's checkpoints. When the old private
key is still at hand (the generated data_dir key after switching to a configured one) it also
signs that event, so the old public key vouches for the new one as well.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.internal import InternalEvent, append_internal
from fleetlog.collector.store import CheckpointRow, EventWriter
from fleetlog.common.checkpoints import (
    ROTATION_ACTION,
    Checkpoint,
    KeyFileError,
    key_id,
    load_private_key,
    public_pem,
    write_key_pair,
)
from fleetlog.common.errors import ConfigError
from fleetlog.common.timefmt import now_us

log = logging.getLogger("fleetlog.collector.signing")

DEFAULT_KEY_NAME = "signing"


def load_or_create_key(configured: str | None, data_dir: str) -> tuple[Ed25519PrivateKey, str, bool]:
    """(key, path, generated). A configured key must exist; the default one is created on first start."""
    if configured:
        try:
            return load_private_key(configured), configured, False
        except KeyFileError as exc:
            raise ConfigError(f"collector.toml: signing.key: {exc}") from None
    path = os.path.join(data_dir, f"{DEFAULT_KEY_NAME}.key")
    try:
        if os.path.exists(path):
            return load_private_key(path), path, False
        _, _, key = write_key_pair(data_dir, DEFAULT_KEY_NAME)
    except KeyFileError as exc:
        raise ConfigError(f"collector.toml: data_dir: {exc}") from None
    log.info("generated a signing key in %s (key id %s)", path, key_id(key.public_key()))
    return key, path, True


class Signer:
    """Signs checkpoints for one store; every method runs on the writer thread."""

    def __init__(self, key: Ed25519PrivateKey, collector: str, every: int,
                 on_signed: Callable[[int], None] | None = None):
        self.key = key
        self.key_id = key_id(key.public_key())
        self.collector = collector
        self.every = every
        self.on_signed = on_signed

    def _sign(self, seq: int, link: bytes, key: Ed25519PrivateKey | None = None) -> CheckpointRow:
        key = key or self.key
        checkpoint = Checkpoint(self.collector, seq, link.hex(), now_us(), key_id(key.public_key())).signed(key)
        return (checkpoint.seq, checkpoint.key_id, checkpoint.collector, checkpoint.chain_hash, checkpoint.time,
                checkpoint.signature)

    def in_transaction(self, first: int, links: Sequence[bytes], last_checkpoint: int) -> list[CheckpointRow]:
        """The store's checkpointer (collector.store.Checkpointer): sign every `every`-th seq among
        the new events (seqs first.., links[i] the link of first + i); the store writes them in
        the transaction of the events."""
        last = first + len(links) - 1
        target = max(last_checkpoint + self.every, first)   # overdue (e.g. stored unsigned before): sign now
        signed = []
        while target <= last:
            signed.append(self._sign(target, links[target - first]))
            target += self.every
        if signed and self.on_signed is not None:
            self.on_signed(len(signed))
        return signed

    def checkpoint_head(self, store: EventWriter, key: Ed25519PrivateKey | None = None) -> bool:
        """Sign the chain head unless a checkpoint (by this key) already covers it."""
        if store.last_seq == 0 or (key is None and store.last_checkpoint_seq >= store.last_seq):
            return False
        store.add_checkpoint(self._sign(store.last_seq, store.chain_head, key))
        if self.on_signed is not None:
            self.on_signed(1)
        return True

    def attach(self, store: EventWriter, previous_key: Ed25519PrivateKey | None = None) -> str | None:
        """Register the key with the store, recording a rotation when it replaces another key.
        `previous_key`: the old private key when still at hand, to endorse the new one.
        Returns the previous key id on a rotation, else None."""
        store.checkpointer = self.in_transaction
        newest = store.newest_signing_key()
        if newest is not None and newest[0] == self.key_id:
            return None
        rotated_from = newest[0] if newest is not None else None
        if newest is not None:
            old_id, old_pem = newest
            event = InternalEvent(
                ROTATION_ACTION, f"signing key rotated: {old_id} -> {self.key_id}", tier="permanent",
                fields={"previous_key_id": old_id, "previous_public_key": old_pem,
                        "key_id": self.key_id, "public_key": public_pem(self.key.public_key())})
            append_internal(store, self.collector, [event])
            if previous_key is not None and key_id(previous_key.public_key()) == old_id:
                self.checkpoint_head(store, previous_key)
            log.warning("signing key rotated: %s -> %s (recorded at seq %d)", old_id, self.key_id, store.last_seq)
        store.add_signing_key(self.key_id, public_pem(self.key.public_key()), store.last_seq, now_us())
        return rotated_from


def previous_default_key(config_key: str | None, data_dir: str) -> Ed25519PrivateKey | None:
    """The generated data_dir key when a configured key replaced it: it can endorse the new key."""
    path = os.path.join(data_dir, f"{DEFAULT_KEY_NAME}.key")
    if not config_key or os.path.abspath(config_key) == os.path.abspath(path) or not os.path.exists(path):
        return None
    try:
        return load_private_key(path)
    except KeyFileError:
        return None   # unreadable: the rotation is then vouched for by the new key only


def evidence_of(store: EventWriter, current_key_id: str) -> dict:
    """The newest checkpoint (as JSON text) and every public key, the current one first."""
    row = store.latest_checkpoint(current_key_id)
    checkpoint = ""
    if row is not None:
        seq, kid, collector, chain_hash, time_us, signature = row
        checkpoint = json.dumps(Checkpoint(collector, seq, chain_hash, time_us, kid, signature).to_json())
    return {"checkpoint_json": checkpoint, "public_keys_pem": store.public_keys(current_key_id)}
