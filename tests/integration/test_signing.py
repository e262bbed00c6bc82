"""A real collector signs what it stores: key generated in data_dir on first start, checkpoints
every `checkpoint_every` events, a rotation to a `fleetlog keygen` key, and `fleetlog verify`
of the stopped collector's data_dir with either public key."""

from __future__ import annotations

import sqlite3

from tests.harness import run_cli, search_json, wait_for, write_lines


def _checkpoints(db) -> list[tuple[int, str]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT seq, key_id FROM checkpoints ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_generated_key_checkpoints_rotation_and_offline_verify(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    collector = cluster.collector(signing={"checkpoint_every": 50, "checkpoint_interval": "500ms"})
    data_dir = tmp_path / "collector-1" / "data"
    assert (data_dir / "signing.key").stat().st_mode & 0o777 == 0o600
    agent = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}])
    write_lines(logs / "app.log", [f"2026-01-02T03:04:05Z INFO line {i} user=bob" for i in range(120)])
    wait_for(lambda: len(search_json(collector, "--host", "web-1")) == 120, 30, "120 events stored")
    wait_for(lambda: collector.metric("fleetlog_collector_checkpoints_total") >= 3, 10, "checkpoints signed")
    agent.stop()
    assert collector.stop() == 0

    first_key = data_dir / "signing.pub"
    ok = run_cli("verify", "--db", str(data_dir), "--public-key", str(first_key))
    assert ok.returncode == 0, ok.stderr
    n_events = int(ok.stdout.split()[1])
    assert n_events >= 120 + 3   # the lines, database creation, start, stop (and search audit events)
    seqs = [seq for seq, _ in _checkpoints(data_dir / "events.db")]
    assert all(b - a <= 50 for a, b in zip([0] + seqs, seqs))   # at least every 50 events
    assert seqs[-1] == n_events                                   # and the head at a clean stop

    # Rotate: a key made by `fleetlog keygen`, configured; the generated one is still in data_dir.
    keygen = run_cli("keygen", "--out", str(tmp_path / "keys"))
    assert keygen.returncode == 0, keygen.stderr
    cluster.rewrite(collector, signing={"key": str(tmp_path / "keys" / "signing.key")})
    collector.start()
    collector.wait_ready()
    rotations = search_json(collector, "--action", "Collector.SigningKey.Rotate")
    assert len(rotations) == 1 and rotations[0]["tier"] == "permanent"
    assert collector.stop() == 0

    for public_key in (tmp_path / "keys" / "signing.pub", first_key):
        ok = run_cli("verify", "--db", str(data_dir), "--public-key", str(public_key))
        assert ok.returncode == 0, ok.stderr
        assert int(ok.stdout.split()[1]) > n_events
    assert len({key for _, key in _checkpoints(data_dir / "events.db")}) == 2

    # A configured key that is missing is a one-line config error.
    cluster.rewrite(collector, signing={"key": str(tmp_path / "keys" / "missing.key")})
    check = collector.start()
    assert check.process.wait(30) == 2
    assert "signing.key" in collector.log() and "Traceback" not in collector.log()
