"""The package as a node receives it: the wheel is built from a copy of the sources, installed into
a clean venv with the base dependencies only (what an agent node needs), and that venv's
`fleetlog-agent` ships a log file to a collector run from the development install. The wheel holds
the compiled C extensions and the console's templates; it puts one top-level name, `fleetlog`,
into site-packages, and the agent install pulls none of the other roles' dependencies.

Every step has a time bound, and so has the whole test. pip reads the package index (and its
cache), as `make install` does.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.harness import ROOT, search_json, wait_for, write_lines

# Dependencies of the collector, console, export and postgresql extras: an agent never needs them.
OTHER_ROLES = ("psycopg", "aiohttp", "jinja2", "fpdf", "xlsxwriter", "cryptography", "re2")
EXTENSIONS = ("fleetlog.common._chain_native", "fleetlog.agent._parse_native",
              "fleetlog.collector.store._blocks_native")
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "var", "build", "*.egg-info", "__pycache__", "*.so",
                                     ".pytest_cache", ".ruff_cache", "out")


def outside_env() -> dict[str, str]:
    """The environment without the development install's paths (no PYTHONPATH to the sources)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "NOTIFY_SOCKET")}


def run(command: list[str], timeout: float, cwd: pathlib.Path) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=outside_env(),
                          check=False)
    assert done.returncode == 0, f"{command[:4]} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def build_wheel(tmp: pathlib.Path) -> pathlib.Path:
    """A copy of the sources, so the build writes nothing into the checkout."""
    source, out = tmp / "source", tmp / "dist"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)], 120, tmp)
    [wheel] = out.glob("fleetlog-*.whl")
    return wheel


def dist_info(wheel: pathlib.Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}-{version}.dist-info"


def check_wheel_contents(wheel: pathlib.Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {"fleetlog", dist_info(wheel)}
    for extension in EXTENSIONS:
        path = extension.replace(".", "/")
        assert any(name.startswith(path) and name.endswith(".so") for name in names), extension
    templates = {path.name for path in (ROOT / "collector" / "web" / "templates").glob("*.html")}
    packaged = {name.rsplit("/", 1)[1] for name in names if name.startswith("fleetlog/collector/web/templates/")}
    assert templates and packaged == templates


# Run by the venv's interpreter: what the install put into site-packages and what it can import.
VENV_REPORT = """
import importlib, importlib.util, json, sys, sysconfig
from importlib.metadata import distribution
absent, native = json.loads(sys.argv[1])
site = sysconfig.get_paths()["purelib"]
files = [str(f) for f in distribution("fleetlog").files]
print(json.dumps({
    "top_level": sorted({f.split("/")[0] for f in files if not f.startswith("..")}),
    "importable": [name for name in absent if importlib.util.find_spec(name) is not None],
    "native_in_site": [importlib.import_module(m).__file__.startswith(site) for m in native],
}))
"""


# About 25 s with pip's cache, 45 s without (2 cores); the steps' bounds add up to more, this ends it.
@pytest.mark.timeout(240)
def test_the_wheel_installs_an_agent_that_ships_every_line_once(cluster, tmp_path):
    wheel = build_wheel(tmp_path)
    check_wheel_contents(wheel)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], 60, tmp_path)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", str(wheel)], 120, tmp_path)
    absent = [*OTHER_ROLES, "agent", "collector", "common", "cli"]   # the last four: no top-level source folders
    report = json.loads(run([str(python), "-I", "-c", VENV_REPORT, json.dumps([absent, EXTENSIONS])], 60, tmp_path))
    assert report["top_level"] == sorted(["fleetlog", dist_info(wheel)])
    assert report["importable"] == []
    assert report["native_in_site"] == [True] * len(EXTENSIONS)

    collector = cluster.collector()
    log = tmp_path / "app.log"
    first = [f"2025-12-01T10:00:{i % 60:02d}.{i:06d}Z INFO wheel line {i} user=u{i % 7}" for i in range(600)]
    write_lines(log, first)
    agent = cluster.agent("wheel-1", [collector], [{"type": "file", "paths": [str(log)], "start_at": "beginning"}],
                          start=False)
    with open(agent.log_path, "ab") as output:
        agent.process = subprocess.Popen([str(venv / "bin" / "fleetlog-agent"), "--config", str(agent.config_path)],
                                         stdout=output, stderr=subprocess.STDOUT, env=outside_env(), cwd=tmp_path)
    agent.wait_ready(30)
    later = [f"2025-12-01T10:01:00.{i:06d}Z WARNING wheel line {i} appended" for i in range(600, 1000)]
    write_lines(log, later)

    total = len(first) + len(later)
    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "wheel-1"}) >= total, 60,
             "every line stored")
    assert agent.stop() == 0, agent.log()
    # The base install's CLI searches (gRPC only); what needs an extra says which, in one line.
    fleetlog = str(venv / "bin" / "fleetlog")
    found = subprocess.run([fleetlog, "--collector", collector.address, "search", "--host", "wheel-1", "--format",
                            "json", "--limit", "0"], capture_output=True, text=True, timeout=60, env=outside_env(),
                           cwd=tmp_path, check=False)
    assert found.returncode == 0, found.stderr
    events = [json.loads(line) for line in found.stdout.splitlines() if line.strip()]
    assert events == search_json(collector, "--host", "wheel-1")
    verify = subprocess.run([fleetlog, "verify", "--bundle", str(tmp_path / "none.tar.gz")], capture_output=True,
                            text=True, timeout=60, env=outside_env(), cwd=tmp_path, check=False)
    assert (verify.returncode, verify.stderr) == (1, ("fleetlog verify: needs the 'cli' extra (cryptography not "
                                                     "installed): pip install 'fleetlog[cli]'\n"))
    expected = [line.split("Z ", 1)[1].split(" ", 1)[1] for line in first + later]
    assert sorted(e["message"] for e in events) == sorted(expected)
    assert len(events) == total
