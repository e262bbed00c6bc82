"""`fleetlog verify` (offline tamper-evidence check of a database or a bundle) and `fleetlog keygen`.

Neither talks to a collector: verify reads a copy of a data_dir (or a bundle file) and a public key.
Exit 0 with `OK: N events, M checkpoints`; exit 1 with `seq S: reason` for the first bad seq.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fleetlog.common.errors import UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from fleetlog.collector.store import Verification


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    verify = subparsers.add_parser(
        "verify", parents=parents, help="check the tamper-evidence chain offline",
        description="Check the hash chain and signed checkpoints of a collector database (a data_dir or a "
                    "copy of one) or of a bundle, without a collector. Prints `OK: N events, M checkpoints`, "
                    "or exits 1 naming the first bad sequence number and why.")
    verify.add_argument("--db", metavar="PATH", help="a collector data_dir, a copy of one, or its events.db")
    verify.add_argument("--dsn", metavar="DSN", help="a PostgreSQL cluster store: checks every collector's chain")
    verify.add_argument("--public-key", metavar="F", action="append",
                        help="the collector's signing.pub (PEM); with --dsn, one per collector (repeat the flag); "
                             "with --bundle, the key(s) the bundle must be signed with")
    verify.add_argument("--bundle", metavar="FILE", help="a .tar.gz written by `fleetlog bundle --compress`")
    verify.set_defaults(handler=run_verify)

    keygen = subparsers.add_parser(
        "keygen", parents=parents, help="create an Ed25519 signing key pair",
        description="Write signing.key (mode 0600) and signing.pub into DIR; never overwrites a key.")
    keygen.add_argument("--out", metavar="DIR", required=True, help="directory for signing.key and signing.pub")
    keygen.set_defaults(handler=run_keygen)


def run_verify(args: argparse.Namespace) -> int:
    sources = [flag for flag, value in (("--bundle", args.bundle), ("--db", args.db), ("--dsn", args.dsn)) if value]
    if len(sources) > 1:
        raise UsageError(f"give one of --bundle FILE, --db PATH or --dsn DSN, not {' and '.join(sources)}")
    if args.bundle:
        from fleetlog.common.verify_bundle import verify_bundle
        return _print(verify_bundle(args.bundle, [_public_key(path) for path in args.public_key or []]))
    from fleetlog.collector.store import verify_store
    if args.dsn:
        return _print(verify_store("postgresql", args.dsn, [_public_key(path) for path in args.public_key or []]))
    if not args.db or not args.public_key:
        raise UsageError("give --db PATH with --public-key F, --dsn DSN, or --bundle FILE")
    if len(args.public_key) > 1:
        raise UsageError("--db: give one --public-key (the collector's signing.pub)")
    return _print(verify_store("sqlite", args.db, [_public_key(args.public_key[0])]))


def _public_key(path: str) -> Ed25519PublicKey:
    # Imported here, as in run_keygen: keys need the 'cli' extra (cryptography), searching does not.
    from fleetlog.common.checkpoints import KeyFileError, load_public_key
    try:
        return load_public_key(path)
    except KeyFileError as exc:
        raise UsageError(f"--public-key {exc}") from None


def _print(report: Verification) -> int:
    """Notes, then exit 1 naming the first bad seq of each bad chain, or the summary."""
    for note in report.notes:
        sys.stderr.write(f"note: {note}\n")
    failures = report.failure_lines()
    for line in failures:
        sys.stderr.write(f"fleetlog verify: {line}\n")
    if failures:
        return 1
    for note in report.unsigned_notes():
        sys.stderr.write(f"note: {note}\n")
    print(report.summary())
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from fleetlog.common.checkpoints import KeyFileError, key_id, write_key_pair
    try:
        private_path, public_path, key = write_key_pair(args.out)
    except KeyFileError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {private_path} (mode 0600) and {public_path}; key id {key_id(key.public_key())}")
    return 0
