"""examples/cluster as a user runs it (one command), unattended: two collectors on a throwaway
PostgreSQL, two agents; every sample line is searchable through both collectors."""

from __future__ import annotations

import subprocess
import sys

from tests.harness import ROOT, env

EXAMPLE = ROOT / "examples" / "cluster"


def test_cluster_example_runs_with_one_command(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE / "run.py"), "--base", str(tmp_path), "--free-ports",
                           "--check"], capture_output=True, text=True, timeout=170, env=env(), cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trace c-100 through col-a: steps from web-1, web-2" in done.stdout
    status = done.stdout
    assert "col-a" in status and "col-b" in status
    assert [line.split()[:3] for line in status.splitlines() if line.startswith("web-") and "ready" not in line] == [
        ["web-1", "127.0.0.1", "col-a"], ["web-2", "127.0.0.1", "col-b"]]
