"""Deterministic event ids (contract §4.2).

An event's id is a pure function of (node, source identity, position): the same line read twice,
by the same node, gets the same id, whatever the agent's state. The collector computes it from
the *authenticated* node name, so one node cannot produce ids that collide with another's.
"""

from __future__ import annotations

import hashlib


def event_id(node: str, source_key: str, position: int) -> str:
    """32 hex characters (128 bits of BLAKE2b of "node NUL source_key NUL position")."""
    return event_ids_of(node, source_key)(position)


def event_ids_of(node: str, source_key: str):
    """event_id(node, source_key, ·) as a function of the position, for the many events of one
    source: the prefix is hashed once and copied (0.5 instead of 0.85 µs an id)."""
    prefix = hashlib.blake2b(f"{node}\x00{source_key}\x00".encode(), digest_size=16)

    def of(position: int) -> str:
        h = prefix.copy()
        h.update(str(position).encode())
        return h.hexdigest()
    return of
