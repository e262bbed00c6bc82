import os

import pytest

from fleetlog.agent.config import AgentConfig, load_agent_config
from fleetlog.agent.sources.file import FileSourceConfig
from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.retention import tier_cutoffs
from fleetlog.common.config import build_config, to_plain
from fleetlog.common.errors import ConfigError
from fleetlog.common.levels import Level


def _error(cls, data, label="agent.toml"):
    with pytest.raises(ConfigError) as info:
        build_config(cls, data, label)
    return str(info.value)


def test_defaults_and_conversions():
    config = build_config(AgentConfig, {
        "node_name": "web-1",
        "spool": {"max_bytes": "10MiB", "when_full": "drop_oldest"},
        "batch": {"max_wait": "500ms", "compression": "zstd"},
        "sources": [{"type": "file", "paths": ["/var/log/*.log"], "exclude": ["*.gz", {"field": "user", "pattern": "svc-*"}],
                     "min_level": "warn", "max_line_bytes": "1KiB"},
                    {"type": "journald", "units": ["sshd.service"], "min_level": "notice"}],
    }, "agent.toml")
    assert config.spool.max_bytes == 10 * 1024 * 1024 and config.spool.when_full == "drop_oldest"
    assert config.batch.max_wait == 0.5 and config.batch.max_events == 5000
    file_source = config.sources[0]
    assert isinstance(file_source, FileSourceConfig)
    assert file_source.min_level == Level.WARNING and file_source.max_line_bytes == 1024
    assert file_source.exclude_paths == ("*.gz",)
    assert [(p.field, p.pattern) for p in file_source.exclude_events] == [("user", "svc-*")]
    assert config.sources[1].units == ("sshd.service",)


@pytest.mark.parametrize("data, message", [
    ({"sources": [{"type": "file", "paths": ["a"], "start_at": "start"}]},
     'agent.toml: sources[0].start_at: expected "beginning" or "end", got "start"'),
    ({"spol": {}}, "agent.toml: spol: unknown key (known keys: "),
    ({"sources": [{"type": "file", "paths": ["a"], "parser": "regex"}]},
     'agent.toml: sources[0].pattern: required when parser = "regex"'),
    ({"sources": [{"type": "file", "paths": ["a"], "parser": "regex", "pattern": "(unclosed"}]},
     "agent.toml: sources[0].pattern: invalid regular expression"),
    ({"batch": {"max_wait": "soon"}}, "agent.toml: batch.max_wait: expected a duration"),
    ({"spool": {"max_bytes": "lots"}}, "agent.toml: spool.max_bytes: expected a size"),
    ({"sources": [{"type": "kafka"}]}, 'agent.toml: sources[0].type: expected "file" or "journald" or "syslog" or "otlp" or "journal-upload", got "kafka"'),
    ({"collectors": ["nohost"]}, "agent.toml: collectors[0]: expected HOST:PORT, got 'nohost'"),
    ({"sources": [{"type": "file", "paths": ["a"], "min_level": "loud"}]}, "agent.toml: sources[0].min_level: unknown level 'loud'"),
    ({"sources": [{"type": "file"}]}, "agent.toml: sources[0].paths: required key is missing"),
])
def test_errors_name_file_key_and_problem(data, message):
    assert _error(AgentConfig, data).startswith(message)


NOW = 1_800_000_000 * 10**6


def test_collector_config():
    config = build_config(CollectorConfig, {
        "retention": {"general": "7d", "namespaces": {"staging": {"general": "1d"}}},
        "levels": {"default": "notice", "namespaces": {"payments": "warning"}},
        "forwarders": [{"type": "syslog", "name": "siem", "port": 6514, "protocol": "tls"}],
    }, "collector.toml")
    # The namespace's own retention where it sets one, the default elsewhere.
    assert tier_cutoffs(config, "general", NOW) == (NOW - 7 * 86400 * 10**6, {"staging": NOW - 86400 * 10**6})
    assert config.namespace_level("payments") == Level.WARNING and config.namespace_level("x") == Level.NOTICE
    assert _error(CollectorConfig, {"forwarders": [{"type": "syslog", "name": "a"}, {"type": "console", "name": "a"}]},
                  "collector.toml") == "collector.toml: forwarders[1].name: duplicate forwarder name 'a'"
    assert _error(CollectorConfig, {"storage": {"synchronous": "off"}}, "collector.toml") == \
        'collector.toml: storage.synchronous: expected "full" or "normal", got "off"'
    assert config.storage.partition_period == 86400
    assert build_config(CollectorConfig, {"storage": {"partition_period": "6h"}},
                        "collector.toml").storage.partition_period == 21600
    assert _error(CollectorConfig, {"storage": {"partition_period": "10s"}}, "collector.toml") == \
        "collector.toml: storage.partition_period: must be a finite duration of at least 1m"


def test_shared_sections_keep_each_daemons_keys_and_defaults():
    # One MetricsConfig: a [metrics] table without listen keeps the daemon's own port.
    assert build_config(AgentConfig, {"metrics": {}}, "agent.toml").metrics.listen == "127.0.0.1:9434"
    assert build_config(CollectorConfig, {"metrics": {}}, "collector.toml").metrics.listen == "127.0.0.1:9433"
    # The flattened filter and endpoint keys are read from, and shown in, the forwarder's own table.
    config = build_config(CollectorConfig, {"forwarders": [
        {"type": "jsonl", "name": "j", "port": 9000, "min_level": "error"},
        {"type": "syslog", "name": "s", "exclude": [{"field": "user", "pattern": "svc-*"}]}]}, "collector.toml")
    jsonl, syslog = to_plain(config)["forwarders"]
    assert jsonl == {"type": "jsonl", "name": "j", "host": "127.0.0.1", "port": 9000, "min_level": "error",
                     "log_types": [], "actions": [], "include": [], "exclude": []}
    assert syslog["port"] == 514 and syslog["exclude"] == [{"field": "user", "pattern": "svc-*"}]
    assert list(syslog)[:4] == ["type", "name", "host", "port"] and list(syslog)[-5:] == [
        "min_level", "log_types", "actions", "include", "exclude"]
    assert _error(CollectorConfig, {"forwarders": [{"type": "jsonl", "name": "j"}]}, "collector.toml") == \
        "collector.toml: forwarders[0].port: expected a port number 1-65535, got 0"
    assert _error(CollectorConfig, {"forwarders": [{"type": "console", "name": "c", "filters": {}}]},
                  "collector.toml") == ("collector.toml: forwarders[0].filters: unknown key (known keys: actions, "
                                        "exclude, include, log_types, min_level, name, type)")


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_agent_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "agent.toml"
    bad.write_text("node_name = \n")
    with pytest.raises(ConfigError, match="agent.toml: invalid TOML"):
        load_agent_config(str(bad))


def test_writer_shards_default_to_the_cores_up_to_two_and_only_for_sqlite(tmp_path, monkeypatch):
    from fleetlog.collector import config as config_module
    from fleetlog.collector.store import open_backend
    assert config_module.DEFAULT_WRITER_SHARDS == min(2, os.cpu_count() or 1)
    monkeypatch.setattr(config_module, "DEFAULT_WRITER_SHARDS", 2)
    unset = build_config(CollectorConfig, {"node_name": "c1"}, "collector.toml")
    assert unset.storage.writer_shards == 2          # the effective count, as --check-config shows it
    backend = open_backend(unset, str(tmp_path / "a"))
    assert backend.writer.shards == 2
    backend.close()
    one = build_config(CollectorConfig, {"node_name": "c1", "storage": {"writer_shards": 1}}, "collector.toml")
    backend = open_backend(one, str(tmp_path / "b"))
    assert backend.writer.shards == 1
    backend.close()
    assert _error(CollectorConfig, {"storage": {"writer_shards": 0}}, "collector.toml") == \
        "collector.toml: storage.writer_shards: must be between 1 and 16"
    assert _error(CollectorConfig, {"storage": {"backend": "postgresql", "dsn": "postgresql://f@127.0.0.1/f",
                                                "writer_shards": 2}}, "collector.toml").startswith(
        "collector.toml: storage.writer_shards: only used with the SQLite store")
