"""examples/three-node as a user runs it: secrets from make_secrets.py, the example's own configs
(only ports and directories moved into the test's temp dir), TLS and tokens throughout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib

from tests.harness import ROOT, Daemon, env, free_port, run_cli, wait_for, write_toml

EXAMPLE = ROOT / "examples" / "three-node"


def _localise(config: dict, tmp, secrets) -> dict:
    """The example's paths are relative to the repository root; point them at the test's copies."""
    def move(value: str) -> str:
        return value.replace("examples/three-node/secrets", str(secrets)).replace(
            "examples/three-node/logs", str(tmp / "logs")).replace("var/three-node", str(tmp / "var"))

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return move(node) if isinstance(node, str) else node
    return walk(config)


def test_three_node_example_on_loopback(tmp_path):
    secrets = tmp_path / "secrets"
    made = subprocess.run([sys.executable, str(EXAMPLE / "make_secrets.py"), "--out", str(secrets)],
                          capture_output=True, text=True, env=env(), timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    assert (secrets / "ops.token").stat().st_mode & 0o077 == 0          # secrets are private
    assert "sha256" in (secrets / "tokens.toml").read_text()
    assert (secrets / "ops.token").read_text().strip() not in (secrets / "tokens.toml").read_text()
    shutil.copytree(EXAMPLE / "logs", tmp_path / "logs")

    port = free_port()
    daemons: list[Daemon] = []
    try:
        collector_config = _localise(tomllib.loads((EXAMPLE / "collector.toml").read_text()), tmp_path, secrets)
        collector_config["listen"] = f"127.0.0.1:{port}"
        collector_config["metrics"]["listen"] = f"127.0.0.1:{free_port()}"
        collector = Daemon("collector", write_toml(tmp_path / "collector.toml", collector_config), collector_config,
                           tmp_path / "collector.log", port=port,
                           metrics_port=int(collector_config["metrics"]["listen"].rsplit(":", 1)[1]))
        daemons.append(collector.start())
        collector.wait_ready()
        for node in ("web-1", "web-2"):
            config = _localise(tomllib.loads((EXAMPLE / f"{node}.toml").read_text()), tmp_path, secrets)
            config["collectors"] = [f"localhost:{port}"]
            metrics = free_port()
            config["metrics"]["listen"] = f"127.0.0.1:{metrics}"
            daemons.append(Daemon("agent", write_toml(tmp_path / f"{node}.toml", config), config,
                                  tmp_path / f"{node}.log", metrics_port=metrics).start())

        cli = ("--collector", f"localhost:{port}", "--ca", str(secrets / "ca.pem"),
               "--token-file", str(secrets / "ops.token"))

        def trace():
            result = run_cli(*cli, "trace", "req-42", "--format", "json")
            return result.stdout.splitlines() if result.returncode == 0 else None
        lines = wait_for(lambda: (t := trace()) and len(t) == 5 and t, 60, "the five events of req-42")
        events = [json.loads(line) for line in lines]
        assert [(e["host"], e["level"]) for e in events] == [
            ("web-1", "info"), ("web-1", "info"), ("web-2", "info"), ("web-2", "warning"), ("web-1", "error")]
        assert all(e["collector"] == "collector-1" and e["host_ip"] == "127.0.0.1" for e in events)

        # Without TLS, or without a token, nobody gets in.
        plain = run_cli("--collector", f"127.0.0.1:{port}", "--token-file", str(secrets / "ops.token"),
                        "search", "--limit", "1")
        assert plain.returncode != 0
        anonymous = run_cli("--collector", f"localhost:{port}", "--ca", str(secrets / "ca.pem"),
                            "search", "--limit", "1")
        assert anonymous.returncode != 0 and "Traceback" not in anonymous.stderr
        # An agent token cannot read.
        agent_reads = run_cli("--collector", f"localhost:{port}", "--ca", str(secrets / "ca.pem"),
                              "--token-file", str(secrets / "web-1.token"), "search", "--limit", "1")
        assert agent_reads.returncode == 1
    finally:
        for daemon in reversed(daemons):
            daemon.stop()
