"""The console's Host allow-list (collector/host_names.py): which Host headers pass, and the
one-line errors for bad `[web] allowed_hosts` entries."""

from __future__ import annotations

import pytest

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.host_names import AllowedHosts, host_of_header
from fleetlog.common.config import build_config
from fleetlog.common.errors import ConfigError

OWN = AllowedHosts.for_console("127.0.0.1:8433", "collector-1", None, ["logs.example.com", "*.corp.example"])


@pytest.mark.parametrize(("header", "allowed"), [
    ("127.0.0.1:8433", True), ("localhost", True), ("LOCALHOST:1", True), ("[::1]:8433", True),
    ("collector-1", True), ("logs.example.com:443", True), ("logs.example.com.", True), ("a.corp.example", True),
    ("attacker.example", False), ("attacker.example:8433", False), ("b.a.corp.example", False),
    ("corp.example", False), ("corp.example.evil", False), ("*.corp.example", False), ("127.0.0.2", False),
    ("localhost.attacker.example", False), ("[::1", False), ("::1", False), ("127.0.0.1:80:80", False),
    ("", False), ("localhost/x", False), ("user@localhost", False),
])
def test_host_headers(header, allowed):
    host = host_of_header(header)
    assert (host is not None and OWN.allows(host)) is allowed


def test_a_wildcard_listen_address_is_not_a_name():
    hosts = AllowedHosts.for_console("0.0.0.0:8433", "c1", None, [])
    assert not hosts.allows("0.0.0.0") and hosts.allows("c1") and hosts.allows("127.0.0.1")
    assert AllowedHosts.for_console("[::]:8433", "c1", None, []).exact == {"c1", "localhost", "127.0.0.1", "::1"}


@pytest.mark.parametrize(("entry", "index"), [("http://logs.example.com", 1), ("logs.example.com:8433", 1),
                                              ("logs/x", 1), ("", 1), ("*", 1), ("a..b", 1)])
def test_bad_allowed_hosts_are_one_line_config_errors(entry, index):
    with pytest.raises(ConfigError) as info:
        build_config(CollectorConfig, {"web": {"allowed_hosts": ["ok.example", entry]}}, "collector.toml")
    assert str(info.value) == (f"collector.toml: web.allowed_hosts[{index}]: expected a host name or IP address "
                               f"(no scheme, port or path), got {entry!r}")


def test_good_allowed_hosts_load():
    config = build_config(CollectorConfig, {"web": {"allowed_hosts": ["logs.example.com", "*.corp.example",
                                                                      "10.0.0.5", "[fd00::1]"]}}, "collector.toml")
    assert config.web.allowed_hosts == ("logs.example.com", "*.corp.example", "10.0.0.5", "[fd00::1]")


@pytest.mark.parametrize("listen", ["127.0.0.1:²", "127.0.0.1:"])
def test_a_listen_port_must_be_ascii_digits(listen):
    with pytest.raises(ConfigError) as info:
        build_config(CollectorConfig, {"web": {"listen": listen}}, "collector.toml")
    assert str(info.value) == f"collector.toml: web.listen: expected HOST:PORT, got {listen!r}"
