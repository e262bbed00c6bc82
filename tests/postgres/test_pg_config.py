"""[storage] backend = "postgresql": the config keys, and --check-config against a real server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fleetlog.collector.config import CollectorConfig
from fleetlog.common.config import build_config
from fleetlog.common.errors import ConfigError
from tests.harness import ROOT, env, free_port, write_toml


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        build_config(CollectorConfig, data, "collector.toml")
    return str(caught.value)


def test_postgresql_needs_a_dsn():
    assert _error({"storage": {"backend": "postgresql"}}) == \
        'collector.toml: storage.dsn: required with backend = "postgresql" (or dsn_file)'


def test_dsn_and_dsn_file_exclude_each_other(tmp_path):
    path = tmp_path / "dsn"
    path.write_text("postgresql://fleetlog@db/fleetlog\n")
    assert _error({"storage": {"backend": "postgresql", "dsn": "postgresql://a@b/c", "dsn_file": str(path)}}) == \
        "collector.toml: storage.dsn_file: give dsn or dsn_file, not both"


def test_dsn_only_with_postgresql():
    assert _error({"storage": {"dsn": "postgresql://a@b/c"}}) == \
        'collector.toml: storage.dsn: only used with backend = "postgresql"'


def test_bad_dsn_syntax_is_one_line():
    message = _error({"storage": {"backend": "postgresql", "dsn": "host=db port"}})
    assert message.startswith("collector.toml: storage.dsn: not a valid PostgreSQL connection string: ")
    assert "\n" not in message


def test_missing_dsn_file_names_it(tmp_path):
    missing = tmp_path / "nope"
    assert _error({"storage": {"backend": "postgresql", "dsn_file": str(missing)}}) == \
        f"collector.toml: storage.dsn_file: cannot read {missing}: No such file or directory"


def test_dsn_file_is_read(tmp_path):
    path = tmp_path / "dsn"
    path.write_text("# the cluster's database\n\npostgresql://fleetlog:s3cret@db:5432/fleetlog\n")
    config = build_config(CollectorConfig, {"storage": {"backend": "postgresql", "dsn_file": str(path)}}, "c")
    assert config.storage.resolved_dsn() == "postgresql://fleetlog:s3cret@db:5432/fleetlog"


def test_unknown_storage_key_stays_an_error():
    assert _error({"storage": {"backend": "postgresql", "dns": "x"}}).startswith(
        "collector.toml: storage.dns: unknown key")


def _check_config(tmp_path, storage: dict) -> subprocess.CompletedProcess[str]:
    path = write_toml(tmp_path / "collector.toml", {"listen": f"127.0.0.1:{free_port()}",
                                                    "data_dir": str(tmp_path / "data"), "storage": storage})
    return subprocess.run([sys.executable, "-m", "fleetlog.collector.main", "--config", str(path), "--check-config"],
                          capture_output=True, text=True, timeout=60, env=env(), cwd=ROOT, check=False)


def test_check_config_reaches_the_database_and_masks_the_password(tmp_path, pg_dsn):
    dsn = pg_dsn.replace("postgres@", "postgres:hunter2@")
    done = _check_config(tmp_path, {"backend": "postgresql", "dsn": dsn})
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["storage"]
    assert shown["backend"] == "postgresql"
    assert "hunter2" not in done.stdout and "***" in shown["dsn"]


def test_check_config_says_when_the_database_cannot_be_reached(tmp_path):
    dsn = f"postgresql://fleetlog@127.0.0.1:{free_port()}/fleetlog"
    done = _check_config(tmp_path, {"backend": "postgresql", "dsn": dsn})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fleetlog-collector: storage.dsn: cannot reach the database at ")
    assert "Connection refused" in lines[0]
