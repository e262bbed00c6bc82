"""deploy/systemd units: contract §6 directives, and `systemd-analyze verify` finds nothing to say.

The units name the installed binaries (/usr/local/bin); the test verifies copies that point at this
checkout's console scripts, since verify checks that ExecStart is executable."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.harness import ROOT

UNITS = ROOT / "deploy" / "systemd"
BIN = pathlib.Path(sys.executable).parent


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("daemon", ["collector", "agent"])
def test_unit_has_what_spec_asks(daemon):
    unit = _directives((UNITS / f"fleetlog-{daemon}.service").read_text())
    assert unit["Type"] == ["notify"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["WatchdogSec"] == ["30s"]
    assert unit["StateDirectory"] == [f"fleetlog-{daemon}"]
    assert unit["User"] == ["fleetlog" if daemon == "collector" else "fleetlog-agent"]
    assert unit["ExecStart"] == [f"/usr/local/bin/fleetlog-{daemon} --config /etc/fleetlog/{daemon}.toml"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}.items():
        assert unit[key] == [value], key
    assert unit["ProtectHome"] == (["yes"] if daemon == "collector" else ["read-only"])
    if daemon == "agent":
        assert unit["SupplementaryGroups"] == ["systemd-journal adm"]


def test_systemd_analyze_verify_passes_without_a_warning(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is installed by `make system-deps`"
    for daemon in ("collector", "agent"):
        text = (UNITS / f"fleetlog-{daemon}.service").read_text()
        script = BIN / f"fleetlog-{daemon}"
        assert script.exists(), script
        (tmp_path / f"fleetlog-{daemon}.service").write_text(
            text.replace(f"/usr/local/bin/fleetlog-{daemon}", str(script)))
    result = subprocess.run(["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr + result.stdout


def test_verify_would_catch_a_broken_unit(tmp_path):
    """The check above is meaningful: a misspelt value makes verify speak."""
    text = (UNITS / "fleetlog-agent.service").read_text()
    bad = tmp_path / "fleetlog-agent.service"
    bad.write_text(text.replace("/usr/local/bin/fleetlog-agent", str(BIN / "fleetlog-agent"))
                   .replace("Type=notify", "Type=notifyy"))
    result = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert "notifyy" in result.stderr
