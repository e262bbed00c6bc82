"""`fleetlog support-bundle` against a running collector and agent: the file name, what is inside,
and that no secret leaves the machine in it."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import tarfile

from tests.harness import run_cli, search_json, wait_for, write_lines, write_toml


def test_support_bundle_collects_status_configs_logs_and_masks_secrets(cluster, tmp_path):
    admin_token, agent_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    tokens = write_toml(tmp_path / "tokens.toml", {"tokens": [
        {"name": "ops", "sha256": hashlib.sha256(admin_token.encode()).hexdigest(), "role": "admin"},
        {"name": "web-1", "sha256": hashlib.sha256(agent_token.encode()).hexdigest(), "role": "agent"}]})
    (tmp_path / "admin.token").write_text(admin_token)
    (tmp_path / "agent.token").write_text(agent_token)
    collector_log = tmp_path / "collector-own.log"
    collector = cluster.collector(tokens_file=str(tokens), log_file=str(collector_log))
    app = tmp_path / "app.log"
    write_lines(app, ["2025-12-02T14:30:45Z INFO hello"])
    agent = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(app)]}],
                          token_file=str(tmp_path / "agent.token"))
    wait_for(lambda: search_json(collector, "--host", "web-1", "--message", "hello", "--token-file", str(tmp_path / "admin.token")),
             30, "the agent's line stored")
    # A secret that found its way into a daemon's log must not travel in the bundle.
    with open(collector_log, "a") as handle:
        handle.write("2025-12-02 14:31:00 ERROR login failed for url https://x/?password=hunter2 "
                     "Authorization: Bearer abcdefghijklmnop\n")

    # A setting kept in the store (docs/settings.md) travels in the bundle, a token's secret does not.
    made = run_cli("--collector", collector.address, "--token-file", str(tmp_path / "admin.token"), "token",
                   "create", "reader", "--role", "auditor")
    assert made.returncode == 0, made.stderr
    reader_token = made.stdout.strip()

    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("--collector", collector.address, "--token-file", str(tmp_path / "admin.token"),
                     "support-bundle", "--out", str(out),
                     "--config", str(collector.config_path), "--config", str(agent.config_path))
    assert result.returncode == 0, result.stderr
    [bundle] = list(out.iterdir())
    assert re.fullmatch(r"fleetlog_support_\d{4}-\d{2}-\d{2}-\d{6}\.tar\.gz", bundle.name)

    with tarfile.open(bundle) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    everything = "\n".join(files.values())
    for secret in (admin_token, agent_token, reader_token, "hunter2", "abcdefghijklmnop"):
        assert secret not in everything
    assert "password=***" in files["logs/collector-1.log"]

    status = json.loads(files["status/collector.json"])
    assert [node["name"] for node in status["nodes"]] == ["web-1"]
    assert status["nodes"][0]["last_seen"] > 0
    effective = json.loads(files["config/1-collector.toml.effective.json"])
    assert effective["tokens_file"] == str(tokens)
    assert json.loads(files["config/2-agent.toml.effective.json"])["node_name"] == "web-1"
    assert "fleetlog_agent_events_read_total" in files["status/agent-2-metrics.txt"]
    assert [(t["name"], t["source"]) for t in json.loads(files["status/settings-tokens.json"])["tokens"]] == [
        ("ops", "tokens_file"), ("reader", "store"), ("web-1", "tokens_file")]
    assert json.loads(files["status/settings-forwarders.json"]) == {"forwarders": []}
    assert json.loads(files["status/settings-alerts.json"]) == {"alerts": []}
    assert json.loads(files["system/disk-collector-1.json"])["bytes_used_by_fleetlog"] > 0
    assert "agent --config" in files["system/processes.txt"]
    versions = json.loads(files["system/versions.json"])
    assert versions["grpcio"] and versions["python"]
    manifest = json.loads(files["manifest.json"])
    assert set(manifest["files"]) | {"manifest.json"} == set(files)


def test_support_bundle_is_written_even_when_the_collector_is_down(tmp_path):
    result = run_cli("--collector", "127.0.0.1:9", "support-bundle", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [bundle] = list(tmp_path.glob("fleetlog_support_*.tar.gz"))
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile(next(m for m in tar.getmembers()
                                                   if m.name.endswith("manifest.json"))).read())
    assert "collector status" in manifest["not_collected"]
    assert "not collected: " in result.stdout


def test_support_bundle_bad_arguments_are_usage_errors(tmp_path):
    result = run_cli("support-bundle", "--out", str(tmp_path / "missing"))
    assert result.returncode == 2 and "--out" in result.stderr
    result = run_cli("support-bundle", "--out", str(tmp_path), "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "nope.toml" in result.stderr


def test_config_masking_keeps_paths_and_hides_inline_secrets():
    from fleetlog.cli.support import mask_config

    text = ('token_file = "/etc/fleetlog/agent.token"\n'
            'tls = { ca = "ca.pem", key = "client.key" }\n'
            'password = "hunter2"\n'
            '  "tokens_file": "/etc/fleetlog/tokens.toml",\n')
    assert mask_config(text) == ('token_file = "/etc/fleetlog/agent.token"\n'
                                 'tls = { ca = "ca.pem", key = "client.key" }\n'
                                 'password = "***"\n'
                                 '  "tokens_file": "/etc/fleetlog/tokens.toml",\n')


def test_support_bundle_masks_a_postgresql_password_in_the_dsn(tmp_path):
    """The copy of collector.toml kept the dsn's password (the effective JSON was masked)."""
    config = write_toml(tmp_path / "collector.toml", {
        "node_name": "c1", "data_dir": str(tmp_path / "data"),
        "storage": {"backend": "postgresql", "dsn": "postgresql://fleetlog:Pg-s3cret-77@db.example:5432/logs"}})
    with open(config, "a") as handle:
        handle.write('# old: dsn = "host=db user=fleetlog password=Kv-s3cret-88"\n')
    result = run_cli("--collector", "127.0.0.1:9", "support-bundle", "--out", str(tmp_path), "--config", str(config))
    assert result.returncode == 0, result.stderr
    [bundle] = list(tmp_path.glob("fleetlog_support_*.tar.gz"))
    with tarfile.open(bundle) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    everything = "\n".join(files.values())
    assert "Pg-s3cret-77" not in everything and "Kv-s3cret-88" not in everything
    assert 'dsn = "postgresql://fleetlog:***@db.example:5432/logs"' in files["config/1-collector.toml"]
    assert "password=***" in files["config/1-collector.toml"]
