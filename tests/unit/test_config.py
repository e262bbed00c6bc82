import pytest

from agent.config import AgentConfig, FileSourceConfig, load_agent_config
from collector.config import CollectorConfig
from common.config import build_config
from common.errors import ConfigError
from common.levels import Level


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
    ({"sources": [{"type": "kafka"}]}, 'agent.toml: sources[0].type: expected "file" or "journald", got "kafka"'),
    ({"collectors": ["nohost"]}, "agent.toml: collectors[0]: expected HOST:PORT, got 'nohost'"),
    ({"sources": [{"type": "file", "paths": ["a"], "min_level": "loud"}]}, "agent.toml: sources[0].min_level: unknown level 'loud'"),
    ({"sources": [{"type": "file"}]}, "agent.toml: sources[0].paths: required key is missing"),
])
def test_errors_name_file_key_and_problem(data, message):
    assert _error(AgentConfig, data).startswith(message)


def test_collector_config():
    config = build_config(CollectorConfig, {
        "retention": {"general": "7d", "namespaces": {"staging": {"general": "1d"}}},
        "levels": {"default": "notice", "namespaces": {"payments": "warning"}},
        "forwarders": [{"type": "syslog", "name": "siem", "port": 6514, "protocol": "tls"}],
    }, "collector.toml")
    assert config.retention_for("staging")["general"] == 86400 and config.retention_for("other")["general"] == 7 * 86400
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


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_agent_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "agent.toml"
    bad.write_text("node_name = \n")
    with pytest.raises(ConfigError, match="agent.toml: invalid TOML"):
        load_agent_config(str(bad))
