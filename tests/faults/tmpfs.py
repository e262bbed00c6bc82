"""A small tmpfs mounted by a test (we run as root, also in CI), so a disk really fills, and
really turns read-only. Unmounted in a finally with a bound: a lazy unmount if the first fails."""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
from collections.abc import Iterator


@contextlib.contextmanager
def tmpfs(path: pathlib.Path, size: str) -> Iterator[pathlib.Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                   check=True, timeout=10, capture_output=True)
    try:
        yield path
    finally:
        done = subprocess.run(["umount", str(path)], timeout=10, capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], timeout=10, capture_output=True, check=False)


def fill(path: pathlib.Path, name: str = "filler") -> pathlib.Path:
    """Write zeros into `path/name` until the file system says ENOSPC; returns the file."""
    filler = path / name
    block = b"\0" * 65536
    with open(filler, "ab", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
        try:   # the last partial block
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def remount(path: pathlib.Path, mode: str) -> None:
    """`ro` or `rw`: a file system turning read-only under a running daemon, and coming back."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, timeout=10, capture_output=True)


def free_bytes(path: pathlib.Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
