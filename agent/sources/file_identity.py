"""How the file source recognises a file: content, not path or inode.

A file's fingerprint is a digest of its first line (at most `fingerprint_bytes`, after
`ignored_header_bytes`): stable while the file grows and across renames, different after a
truncation that rewrites the start, and immune to inode reuse. Two *different* files can share
a first line (a common header); the file source then anchors the second one's identity on the
device/inode it had when discovered (`fp@dev:ino`), and the checkpoint keeps that anchor.

A checkpoint also keeps `check`, a digest of the bytes just before its offset, so that on restart a
file whose first line matches but whose content was rewritten (copytruncate with an unchanging
header) is not mistaken for the file the checkpoint was written for.
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

CHECK_BYTES = 64          # bytes before a checkpoint offset that `check` digests
COMPARE_LIMIT = 1 << 20   # how much of two same-fingerprint files is compared for divergence


class Fingerprint(NamedTuple):
    digest: str
    length: int           # bytes hashed, starting at the skip offset


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def fingerprint_fd(fd: int, limit: int, skip: int) -> Fingerprint | None:
    """The first line (with its newline) capped at `limit` bytes; None while neither a whole first
    line nor `limit` bytes are there yet (the file is still being started)."""
    try:
        head = os.pread(fd, limit, skip)
    except OSError:
        return None
    newline = head.find(b"\n")
    if newline >= 0:
        head = head[:newline + 1]
    elif len(head) < limit:
        return None
    return Fingerprint(digest(head), len(head))


def fingerprint_matches(fd: int, fp: Fingerprint, skip: int) -> bool:
    """Whether the file behind `fd` still starts with the bytes `fp` was taken from."""
    try:
        head = os.pread(fd, fp.length, skip)
    except OSError:
        return False
    return len(head) == fp.length and digest(head) == fp.digest


def check_of(before: bytes) -> str:
    """The `check` of a checkpoint from the bytes that precede its offset (only the last
    CHECK_BYTES count); empty at offset 0."""
    return digest(before[-CHECK_BYTES:]) if before else ""


def check_at(fd: int, offset: int) -> str:
    start = max(0, offset - CHECK_BYTES)
    try:
        return check_of(os.pread(fd, offset - start, start))
    except OSError:
        return ""


def same_prefix(fd_a: int, size_a: int, fd_b: int, size_b: int) -> bool:
    """Whether two files hold the same bytes over their common length (capped): a copy of a
    file, or a new file that so far holds only the same header."""
    length = min(size_a, size_b, COMPARE_LIMIT)
    position = 0
    while position < length:
        step = min(64 * 1024, length - position)
        try:
            if os.pread(fd_a, step, position) != os.pread(fd_b, step, position):
                return False
        except OSError:
            return False
        position += step
    return True
