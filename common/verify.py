"""Offline verification of the tamper evidence of one chain (contract §4.7), whatever stores it: the
store's verifier reads the rows (collector/store/sqlite_verify.py, pg_verify.py), this module judges.

No collector is needed: the chain is recomputed from the stored values (common/chain.py), each
stored link is compared, gaps in seq must be retention purges (an anchor continues the chain and a
chained purge event records the deleted ranges), and every checkpoint must carry a valid Ed25519
signature by a trusted key over the link recomputed at its seq. Trusted keys: the one the operator
gives, plus keys named by a key-rotation event that a checkpoint of an already trusted key covers.
Events after the last checkpoint are chained but unsigned; they are held to the head the store
recorded (meta last_seq/chain_head). The first failure, by seq, is raised as `Tampered`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleetlog.common import chain
from fleetlog.common.checkpoints import (
    PURGE_ACTION,
    ROTATION_ACTION,
    Checkpoint,
    KeyFileError,
    key_id,
    parse_public_pem,
)
from fleetlog.common.errors import VerificationError


class Tampered(VerificationError):
    """The first bad seq and why."""

    def __init__(self, seq: int, reason: str):
        super().__init__(f"seq {seq}: {reason}")
        self.seq = seq
        self.reason = reason


@dataclass
class Report:
    events: int = 0
    checkpoints: int = 0
    unsigned: int = 0            # events after the last checkpoint
    last_checkpoint_seq: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"OK: {self.events} events, {self.checkpoints} checkpoints"

    def failure_lines(self) -> list[str]:
        return []    # a failure of one chain is raised (Tampered), not reported

    def unsigned_notes(self) -> list[str]:
        if not self.unsigned:
            return []
        note = (f"{self.unsigned} events after seq {self.last_checkpoint_seq} (the last checkpoint) are chained "
                "and match the store's head, but not signed yet")
        return [note]


@dataclass
class _Rotation:
    seq: int
    keys: dict[str, Ed25519PublicKey]


class ChainFailures:
    """Keeps the failure with the lowest seq."""

    def __init__(self) -> None:
        self.first: Tampered | None = None

    def add(self, seq: int, reason: str) -> None:
        if self.first is None or seq < self.first.seq:
            self.first = Tampered(seq, reason)

    def before(self, seq: int) -> bool:
        return self.first is None or seq < self.first.seq


def _rotation_keys(fields_json: str | None) -> dict[str, Ed25519PublicKey]:
    """The keys a rotation event names, where each PEM matches its stated id."""
    try:
        fields = json.loads(fields_json or "{}")
    except ValueError:
        return {}
    keys = {}
    for id_field, pem_field in (("previous_key_id", "previous_public_key"), ("key_id", "public_key")):
        try:
            key = parse_public_pem(fields.get(pem_field) or "")
        except KeyFileError:
            continue
        if key_id(key) == fields.get(id_field):
            keys[key_id(key)] = key
    return keys


def _purge_record(fields_json: str | None) -> tuple[list[tuple[int, int]], str]:
    try:
        fields = json.loads(fields_json or "{}")
        ranges = [(int(low), int(high)) for low, high in fields.get("seq_ranges") or []]
    except (ValueError, TypeError):
        return [], ""
    return ranges, str(fields.get("anchors_sha256") or "")


def check_checkpoints(checkpoints: list[Checkpoint], links: dict[int, bytes], rotations: list[_Rotation],
                      trusted: dict[str, Ed25519PublicKey], failures: ChainFailures, report: Report) -> None:
    """Signatures, trust and chain hashes of the checkpoints, in seq order."""
    def sound(cp: Checkpoint) -> bool:
        key = trusted.get(cp.key_id)
        link = links.get(cp.seq)
        return key is not None and cp.signature_valid(key) and (link is None or link.hex() == cp.chain_hash)

    # Trust spreads through rotations a trusted checkpoint covers (both keys of the event).
    changed = True
    while changed:
        changed = False
        for rotation in rotations:
            if set(rotation.keys) <= set(trusted):
                continue
            if any(cp.seq >= rotation.seq and cp.seq in links and sound(cp) for cp in checkpoints):
                trusted.update(rotation.keys)
                changed = True

    previous_good = 0
    for cp in checkpoints:
        if not failures.before(cp.seq):
            break
        key = trusted.get(cp.key_id)
        if key is None:
            failures.add(cp.seq, f"checkpoint signed by key {cp.key_id}, which is neither the given public key "
                                 "nor one it vouches for through a recorded key rotation (forged checkpoint?)")
            break
        if not cp.signature_valid(key):
            failures.add(cp.seq, f"checkpoint signature by key {cp.key_id} is invalid (forged or altered checkpoint)")
            break
        link = links.get(cp.seq)
        if link is not None and link.hex() != cp.chain_hash:
            failures.add(cp.seq, f"the events do not match the signed checkpoint: an event after seq {previous_good} "
                                 f"and up to {cp.seq} was changed, removed, inserted or reordered")
            break
        previous_good = cp.seq
        report.checkpoints += 1
        report.last_checkpoint_seq = max(report.last_checkpoint_seq, cp.seq)


def check_purges(gaps: list[tuple[int, int]], purges: list[tuple[int, list[tuple[int, int]], str]],
                 anchors: dict[int, bytes], failures: ChainFailures) -> None:
    """Every gap lies inside ranges a chained purge event recorded, with the anchors it recorded."""
    covered: list[tuple[int, int]] = sorted(r for _, ranges, _ in purges for r in ranges)
    for low, high in gaps:
        position = low
        for a, b in covered:
            if a <= position <= b:
                position = b + 1
            if position > high:
                break
        if position <= high:
            failures.add(position, "missing: deleted outside any recorded retention purge")
    for seq, ranges, digest in purges:
        if not digest:
            continue
        h = hashlib.sha256()
        for anchor_seq in sorted(anchors):
            if any(a <= anchor_seq <= b for a, b in ranges):
                h.update(anchor_seq.to_bytes(8, "big") + anchors[anchor_seq])
        if h.hexdigest() != digest:
            failures.add(seq, "the chain anchors of this retention purge differ from the ones it recorded")


_SEQ = chain.CANONICAL_KEYS.index("seq")
_ACTION = chain.CANONICAL_KEYS.index("action")
_TIER = chain.CANONICAL_KEYS.index("tier")
_FIELDS = chain.CANONICAL_KEYS.index("fields")


def verify_chain(rows: Iterable[tuple[Any, ...]], anchors: dict[int, bytes], checkpoints: list[Checkpoint],
                 head_seq: int, head_hex: str, public_key: Ed25519PublicKey,
                 failures: ChainFailures | None = None) -> Report:
    """One chain of one store: its event rows (CANONICAL_KEYS values, then the stored link, in seq
    order), anchors, checkpoints (by seq) and recorded head, against the operator's public key.
    `failures`: where the rows' reader also records what it found wrong outside the rows (an
    unreadable block, where it ends the rows); the lowest seq is named, whoever found it."""
    report = Report()
    failures = failures if failures is not None else ChainFailures()
    wanted = {cp.seq for cp in checkpoints}
    walk = walk_chain(rows, anchors, wanted, failures, report)
    if walk.whole:
        check_head(walk.expected - 1, walk.link, head_seq, head_hex, anchors, walk.gaps, wanted, walk.links, failures)
    gaps, purges, links, rotations = walk.gaps, walk.purges, walk.links, walk.rotations

    if failures.first is None:   # a broken chain hides later purge records: judge gaps only on a whole chain
        check_purges(gaps, purges, anchors, failures)
    check_checkpoints(checkpoints, links, rotations, {key_id(public_key): public_key}, failures, report)
    if failures.first is not None:
        raise failures.first
    if report.events and not report.checkpoints:
        raise Tampered(1 if not gaps else gaps[0][1] + 1, "no signed checkpoint covers the events")
    report.unsigned = max(0, head_seq - report.last_checkpoint_seq)
    return report


@dataclass
class ChainWalk:
    """What walking one chain's events in seq order found."""

    link: bytes = chain.GENESIS
    expected: int = 1                   # the seq after the last event walked
    whole: bool = True                  # False when the walk stopped at a failure
    links: dict[int, bytes] = field(default_factory=dict)      # at checkpointed seqs
    rotations: list[_Rotation] = field(default_factory=list)
    purges: list[tuple[int, list[tuple[int, int]], str]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    purge_fields: list[tuple[int, str]] = field(default_factory=list)   # (seq, fields JSON) of purge events


# A stored link may be a prefix: a block keeps 4 bytes per event and the whole link at each run's
# end (collector/store/blocks.py). Enough to name the first altered event; the whole links at run
# ends and the signed checkpoints keep the chain itself whole.
MIN_STORED_LINK = 4


def walk_chain(rows: Iterable[tuple[Any, ...]], anchors: dict[int, bytes], wanted: set[int], failures: ChainFailures,
               report: Report) -> ChainWalk:
    """Recompute one chain's links over its rows (CANONICAL_KEYS values, then the stored link, in
    seq order); gaps must be continued by anchors. A row matches when its recomputed link starts
    with the stored one, of at least MIN_STORED_LINK bytes (a whole stored link must be equal).
    Stops at the first failure."""
    walk = ChainWalk()
    sha256, canonical_values = hashlib.sha256, chain.canonical_values
    link, expected = chain.GENESIS, 1
    for row in rows:
        seq = row[_SEQ]
        if seq != expected:
            anchor = anchors.get(seq - 1)
            if anchor is None:
                failures.add(expected, "missing: deleted, and no purge anchor continues the chain")
                walk.whole = False
                break
            walk.gaps.append((expected, seq - 1))
            link = anchor
            if seq - 1 in wanted:
                walk.links[seq - 1] = anchor
        try:
            canonical = canonical_values(row[:-1])
        except (TypeError, ValueError):
            failures.add(seq, "stored values are not of the stored types (altered row)")
            walk.whole = False
            break
        link = sha256(link + sha256(canonical).digest()).digest()
        stored = bytes(row[-1])
        if len(stored) < MIN_STORED_LINK or not link.startswith(stored):
            failures.add(seq, "the event does not match its chain link (changed, inserted or moved)")
            walk.whole = False
            break
        if seq in wanted:
            walk.links[seq] = link
        action = row[_ACTION]
        if action == ROTATION_ACTION and row[_TIER] == "permanent":
            walk.rotations.append(_Rotation(seq, _rotation_keys(row[_FIELDS])))
        elif action == PURGE_ACTION:
            ranges, digest = _purge_record(row[_FIELDS])
            walk.purges.append((seq, ranges, digest))
            walk.purge_fields.append((seq, row[_FIELDS]))
        report.events += 1
        expected = seq + 1
    walk.link, walk.expected = link, expected
    return walk


def check_head(last_seq: int, link: bytes, head_seq: int, head_hex: str, anchors: dict[int, bytes],
                gaps: list[tuple[int, int]], wanted: set[int], links: dict[int, bytes], failures: ChainFailures) -> None:
    """The events must end at the head the store recorded (a purge may have removed the last ones)."""
    if head_seq > last_seq:
        anchor = anchors.get(head_seq)
        if anchor is None:
            failures.add(last_seq + 1, f"missing: the store's head is seq {head_seq} but the events end at "
                                       f"seq {last_seq} (tail removed)")
            return
        gaps.append((last_seq + 1, head_seq))
        link = anchor
        if head_seq in wanted:
            links[head_seq] = anchor
    elif head_seq < last_seq:
        failures.add(head_seq + 1, f"beyond the store's recorded head (seq {head_seq}): appended after the fact")
        return
    if head_seq and link.hex() != head_hex:
        failures.add(head_seq, "the chain head differs from the one the store recorded")
    for cp_seq in sorted(wanted):
        if cp_seq > head_seq:
            failures.add(head_seq + 1, f"missing: a checkpoint covers seq {cp_seq}, beyond the last event")
            break
