"""Deterministic event ids (SPEC §4.2).

An event's id is a pure function of (node, source identity, position): the same line read twice,
by the same node, gets the same id, whatever the agent's state. The collector computes it from
the *authenticated* node name, so one node cannot produce ids that collide with another's.
"""

from __future__ import annotations

import hashlib


def event_id(node: str, source_key: str, position: int) -> str:
    """32 hex characters (128 bits of BLAKE2b)."""
    return hashlib.blake2b(f"{node}\x00{source_key}\x00{position}".encode(), digest_size=16).hexdigest()
