"""A collector whose configuration needs an extra that is not installed says so in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.extras import require_extras
from fleetlog.common.config import build_config
from fleetlog.common.errors import ConfigError
from tests.harness import ROOT, env, free_port, write_toml


def _config(**sections) -> CollectorConfig:
    return build_config(CollectorConfig, {"listen": "127.0.0.1:7433", **sections}, "collector.toml")


def test_everything_installed_passes():
    require_extras(_config(web={"listen": "127.0.0.1:8080"}))


def test_console_without_aiohttp(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(ConfigError) as caught:
        require_extras(_config(web={"listen": "127.0.0.1:8080"}))
    assert str(caught.value) == ("[web] (the console) needs the 'console' extra (aiohttp not installed): "
                                 "pip install 'fleetlog[console]'")
    require_extras(_config())   # no console configured: aiohttp is not needed


def test_postgresql_without_psycopg(monkeypatch):
    config = _config(storage={"backend": "postgresql", "dsn": "postgresql://fleetlog@db/fleetlog"})
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError) as caught:
        require_extras(config)
    assert str(caught.value) == ('storage.backend = "postgresql" needs the \'postgresql\' extra '
                                 "(psycopg not installed): pip install 'fleetlog[postgresql]'")


def test_dsn_without_psycopg_is_a_config_error(monkeypatch):
    # The dsn's syntax is checked by libpq through psycopg: without it, the key names the extra.
    from fleetlog.collector.store import pg_dsn
    monkeypatch.setattr(pg_dsn, "psycopg", None)
    with pytest.raises(ConfigError) as caught:
        _config(storage={"backend": "postgresql", "dsn": "postgresql://fleetlog@db/fleetlog"})
    assert str(caught.value) == ("collector.toml: storage.dsn: needs the 'postgresql' extra "
                                 "(psycopg not installed): pip install 'fleetlog[postgresql]'")


def test_collector_without_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "grpc_health", None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(ConfigError, match=r"needs the 'collector' extra \(grpc_health, cryptography not installed\)"):
        require_extras(_config())


def test_check_config_names_the_missing_extra(tmp_path):
    # A real process in which aiohttp cannot be imported, as in an install without the extra.
    path = write_toml(tmp_path / "collector.toml", {"listen": f"127.0.0.1:{free_port()}",
                                                    "data_dir": str(tmp_path / "data"),
                                                    "web": {"listen": f"127.0.0.1:{free_port()}"}})
    code = ("import sys; sys.modules['aiohttp'] = None; from fleetlog.collector.main import main; "
            f"sys.exit(main(['--config', {str(path)!r}, '--check-config']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=env(), cwd=ROOT, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("pip install 'fleetlog[console]'")
    assert "Traceback" not in result.stderr
