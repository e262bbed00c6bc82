"""A bundle verifies on its own (`fleetlog verify --bundle`), offline, and every way of editing it
afterwards is caught: a changed, removed, inserted or reordered event, a rewritten digests.txt,
a swapped public key."""

from __future__ import annotations

import json

import pytest

from fleetlog.common.checkpoints import write_key_pair
from tests.harness import run_cli, search_json, tar_members, wait_for, write_lines, write_tar


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle of web-1's events (a filtered subset, secrets masked) from a collector that is
    stopped before anything is verified."""
    from tests.harness import Cluster

    tmp = tmp_path_factory.mktemp("bundle")
    cluster = Cluster(tmp)
    try:
        collector = cluster.collector()
        for node in ("web-1", "web-2"):
            log = tmp / f"{node}.log"
            write_lines(log, [f"2025-12-02T14:30:{i:02d}Z INFO {node} step {i} password=s3cret-{i}" for i in range(20)])
            cluster.agent(node, [collector], [{"type": "file", "paths": [str(log)]}])
        wait_for(lambda: len(search_json(collector, "--host", "web-1,web-2")) == 40, 30, "40 events stored")
        path = tmp / "web-1.tar.gz"
        made = run_cli("--collector", collector.address, "bundle", "--host", "web-1", "--compress",
                       "--out-file", str(path))
        assert made.returncode == 0, made.stderr
    finally:
        cluster.stop_all()
    return path


def _verify(path):
    return run_cli("verify", "--bundle", str(path))


def test_an_untouched_bundle_verifies_offline(bundle):
    result = _verify(bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK: 20 events, 1 checkpoints"
    files = tar_members(bundle)
    assert b"s3cret" not in files["events.jsonl"]                      # masked, and still verifiable
    assert len(files["digests.txt"].splitlines()) == 20
    assert json.loads(files["manifest.json"])["attestation"]["events"] == 20


def _tampered(bundle, tmp_path, edit) -> tuple[int, str]:
    files = tar_members(bundle)
    edit(files)
    copy = tmp_path / "tampered.tar.gz"
    write_tar(copy, files)
    result = _verify(copy)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stderr


def _lines(files) -> list[bytes]:
    return files["events.jsonl"].splitlines()


def _seq(line: bytes) -> int:
    return json.loads(line)["seq"]


def test_a_changed_message_is_named_by_seq(bundle, tmp_path):
    lines = _lines(tar_members(bundle))
    code, err = _tampered(bundle, tmp_path, lambda f: f.update(
        {"events.jsonl": f["events.jsonl"].replace(b"step 7 ", b"step 8 ")}))
    assert code == 1
    assert f"seq {_seq(lines[7])}: event changed" in err


def test_a_changed_level_is_caught(bundle, tmp_path):
    def edit(files):
        lines = _lines(files)
        lines[3] = lines[3].replace(b'"level":"info"', b'"level":"debug"')
        files["events.jsonl"] = b"\n".join(lines) + b"\n"
    code, err = _tampered(bundle, tmp_path, edit)
    assert code == 1 and "event changed" in err


@pytest.mark.parametrize("how", ["removed", "swapped", "inserted"])
def test_removed_swapped_or_inserted_events_are_caught(bundle, tmp_path, how):
    def edit(files):
        lines = _lines(files)
        if how == "removed":
            del lines[5]
        elif how == "swapped":
            lines[4], lines[5] = lines[5], lines[4]
        else:
            lines.insert(5, lines[5])
        files["events.jsonl"] = b"\n".join(lines) + b"\n"
    code, err = _tampered(bundle, tmp_path, edit)
    assert code == 1
    assert "removed, inserted or moved" in err or "event changed" in err


def test_a_rewritten_digest_file_is_caught(bundle, tmp_path):
    from fleetlog.common.bundle_attestation import line_digest

    def edit(files):
        lines = _lines(files)
        lines[2] = lines[2].replace(b"step 2 ", b"step 9 ")
        files["events.jsonl"] = b"\n".join(lines) + b"\n"
        digests = files["digests.txt"].splitlines()
        digests[2] = digests[2].split(b" ")[0] + b" " + line_digest(lines[2]).encode()
        files["digests.txt"] = b"\n".join(digests) + b"\n"
    code, err = _tampered(bundle, tmp_path, edit)
    assert code == 1 and "digests.txt is not the one the collector signed" in err


def test_another_public_key_is_caught(bundle, tmp_path):
    write_key_pair(str(tmp_path / "keys"))
    code, err = _tampered(bundle, tmp_path, lambda f: f.update(
        {"signing.pub": (tmp_path / "keys" / "signing.pub").read_bytes()}))
    assert code == 1 and "does not hold" in err


def test_a_file_that_is_no_bundle_is_a_usage_error(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file")
    result = _verify(junk)
    assert result.returncode == 2 and "not a bundle" in result.stderr
    missing = _verify(tmp_path / "missing.tar.gz")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
