"""A collector started on the data_dir of a single-file store (before time partitions) migrates
it at start with a log line, serves every old event, and the store still verifies offline."""

from __future__ import annotations

from fleetlog.common.checkpoints import write_key_pair
from tests.harness import run_cli, search_json
from tests.unit.test_migration import EVENTS, single_file_store


def test_a_collector_migrates_a_single_file_data_dir_at_start(cluster, tmp_path):
    data = tmp_path / "collector-1" / "data"
    data.mkdir(parents=True)
    _, _, key = write_key_pair(str(data))        # the collector signs with the store's own key
    single_file_store(data, key)
    collector = cluster.collector()
    assert f"migrating a single-file store of {EVENTS} events to time partitions" in collector.log()
    assert (data / "partitions" / "legacy.db").exists()
    old = search_json(collector, "--host", "web-1", "--limit", "0")
    assert sorted(e["message"] for e in old) == sorted(f"line {p}" for p in range(EVENTS))
    assert [e["seq"] for e in old] == list(range(1, EVENTS + 1))
    collector.stop()
    result = run_cli("verify", "--db", str(data), "--public-key", str(data / "signing.pub"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")
