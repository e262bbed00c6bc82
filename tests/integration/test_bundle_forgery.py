"""No reader gets a bundle signed that the collector did not write itself (issue 27, item 4).

A namespace-auditor once sent Query.Evidence the digests of an invented events.jsonl and got them
signed with the collector's key. Now the collector signs only the digests it computes over the
lines it produces (Query.Bundle), every request for signed evidence is in the audit log, and
`fleetlog verify --bundle --public-key` refuses a bundle signed with any other key.
"""

from __future__ import annotations

import hashlib
import json

import grpc
import pytest

from fleetlog.common.bundle_attestation import Attestation, line_digest
from fleetlog.common.checkpoints import key_id, load_private_key, write_key_pair
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from tests.harness import run_cli, tar_members, write_tar, write_toml
from tests.search_dataset import build_store, labels

TOKENS = [("ops", "auditor", []), ("pay", "namespace-auditor", ["payments"])]
INVENTED_DIGESTS = "ab" * 32


@pytest.fixture
def collector(cluster, tmp_path):
    write_toml(tmp_path / "tokens.toml", {"tokens": [
        {"name": name, "sha256": hashlib.sha256(f"secret-of-{name}".encode()).hexdigest(), "role": role,
         "namespaces": namespaces} for name, role, namespaces in TOKENS]})
    for name, _, _ in TOKENS:
        (tmp_path / f"{name}.token").write_text(f"secret-of-{name}\n")
    build_store(tmp_path / "collector-1" / "data" / "events.db")
    return cluster.collector(tokens_file=str(tmp_path / "tokens.toml"))


def cli(collector, tmp_path, token: str, *args: str):
    return run_cli("--collector", collector.address, "--token-file", str(tmp_path / f"{token}.token"), *args)


def _old_evidence_request() -> bytes:
    """Query.Evidence as it was: field 1 the digests' SHA-256 to sign, field 2 the event count."""
    return b"\x0a\x40" + INVENTED_DIGESTS.encode() + b"\x10\x03"


def test_the_collector_signs_no_digest_a_reader_sends(collector, tmp_path):
    with grpc.insecure_channel(collector.address) as channel:
        evidence = channel.unary_unary("/fleetlog.v1.Query/Evidence")
        raw = evidence(_old_evidence_request(), metadata=(("authorization", "Bearer secret-of-pay"),), timeout=10)
    reply = pb.EvidenceReply.FromString(raw)
    assert reply.public_keys_pem and reply.checkpoint_json     # the collector's own evidence, freshly signed
    assert reply.bundle_attestation_json == ""                 # ... and nothing of what the reader sent
    assert INVENTED_DIGESTS.encode() not in raw


def test_evidence_and_bundles_are_audited(collector, tmp_path):
    with grpc.insecure_channel(collector.address) as channel:
        channel.unary_unary("/fleetlog.v1.Query/Evidence")(
            b"", metadata=(("authorization", "Bearer secret-of-pay"),), timeout=10)
    path = tmp_path / "pay.tar.gz"
    made = cli(collector, tmp_path, "pay", "bundle", "--compress", "--out-file", str(path))
    assert made.returncode == 0, made.stderr
    digests_sha256 = hashlib.sha256(tar_members(path)["digests.txt"]).hexdigest()

    found = cli(collector, tmp_path, "ops", "search", "--format", "json", "--limit", "0", "--action", "audit/evidence")
    assert found.returncode == 0, found.stderr
    audits = [json.loads(line) for line in found.stdout.splitlines()]
    assert [(a["user"], a["message"], a["fields"]) for a in audits] == [
        ("pay", "evidence: a fresh checkpoint of the chain head", {"purpose": "checkpoint", "peer_ip": "127.0.0.1"}),
        ("pay", f"evidence: bundle of 3 events attested (digests.txt sha256 {digests_sha256})",
         {"purpose": "bundle", "peer_ip": "127.0.0.1", "events": 3, "digests_sha256": digests_sha256}),
    ]


def test_a_bundle_holds_the_readers_namespaces_and_verifies_against_the_pinned_key(collector, tmp_path):
    path = tmp_path / "pay.tar.gz"
    made = cli(collector, tmp_path, "pay", "bundle", "--compress", "--out-file", str(path))
    assert made.returncode == 0, made.stderr
    events = [json.loads(line) for line in tar_members(path)["events.jsonl"].splitlines()]
    assert labels(events) == {"e04", "e05", "e10"}
    assert "k-999" not in json.dumps(events)                                   # masked by the collector
    real_key = tmp_path / "collector-1" / "data" / "signing.pub"
    pinned = run_cli("verify", "--bundle", str(path), "--public-key", str(real_key))
    assert (pinned.returncode, pinned.stdout) == (0, "OK: 3 events, 1 checkpoints\n"), pinned.stderr

    write_key_pair(str(tmp_path / "other"))
    wrong = run_cli("verify", "--bundle", str(path), "--public-key", str(tmp_path / "other" / "signing.pub"))
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("fleetlog verify: bundle: signed with key ")
    assert "not the key given with --public-key" in wrong.stderr and "Traceback" not in wrong.stderr


def test_a_bundle_of_invented_events_signed_with_another_key_fails_against_the_pinned_key(collector, tmp_path):
    """What a forger can still do: make up events and sign them with a key of their own. The
    bundle is consistent inside, so only the collector's key, pinned, tells it apart."""
    path = tmp_path / "pay.tar.gz"
    assert cli(collector, tmp_path, "pay", "bundle", "--compress", "--out-file", str(path)).returncode == 0
    files = tar_members(path)
    manifest = json.loads(files["manifest.json"])
    lines = [json.dumps({"seq": 1, "time": "2025-12-01T14:00:00.000000Z", "level": "info", "host": "db-1",
                         "message": "invented: erin approved the transfer"}, separators=(",", ":"))]
    digests = "".join(f"1 {line_digest(line.encode())}\n" for line in lines).encode()
    write_key_pair(str(tmp_path / "forger"))
    forger = load_private_key(str(tmp_path / "forger" / "signing.key"))
    attestation = Attestation(manifest["attestation"]["collector"], 1, hashlib.sha256(digests).hexdigest(),
                              manifest["attestation"]["time"], key_id(forger.public_key())).signed(forger)
    manifest.update(attestation=attestation.to_json(), checkpoint=None, counts={"events": 1})
    forged = tmp_path / "forged.tar.gz"
    write_tar(forged, {"events.jsonl": "\n".join(lines).encode() + b"\n", "digests.txt": digests,
                    "manifest.json": json.dumps(manifest).encode(),
                    "signing.pub": (tmp_path / "forger" / "signing.pub").read_bytes()})
    assert run_cli("verify", "--bundle", str(forged)).returncode == 0           # self-consistent
    real_key = tmp_path / "collector-1" / "data" / "signing.pub"
    pinned = run_cli("verify", "--bundle", str(forged), "--public-key", str(real_key))
    assert pinned.returncode == 1
    assert f"signed with key {key_id(forger.public_key())}, not the key given with --public-key" in pinned.stderr
