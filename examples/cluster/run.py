"""Two collectors on one PostgreSQL and two agents, on this machine (examples/cluster/README.md).

    python examples/cluster/run.py [--dsn DSN] [--base DIR] [--free-ports] [--check]

Without --dsn a throwaway PostgreSQL server is started under BASE/postgres (the same helper the
tests use). --check: wait until every sample line is searchable through both collectors, print
the cluster's status, stop everything, exit 0 (or 1 naming what did not happen).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT / "examples" / "cluster"
NODES = {"web-1": ["col-a", "col-b"], "web-2": ["col-b", "col-a"]}   # home collector first


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ports(free: bool) -> dict[str, int]:
    fixed = {"col-a": 7531, "col-b": 7532, "col-a-metrics": 9531, "col-b-metrics": 9532,
             "web-1-metrics": 9541, "web-2-metrics": 9542}
    return {name: _free_port() for name in fixed} if free else fixed


def _collector_toml(name: str, base: pathlib.Path, ports: dict[str, int]) -> str:
    return f"""\
# {name}: one of two collectors sharing one PostgreSQL store (same dsn_file, own node_name).
node_name = "{name}"
listen = "127.0.0.1:{ports[name]}"
data_dir = "{base / name}"        # its signing key; the events live in PostgreSQL
[storage]
backend = "postgresql"
dsn_file = "{base / 'dsn'}"
[metrics]
listen = "127.0.0.1:{ports[name + '-metrics']}"
"""


def _agent_toml(node: str, base: pathlib.Path, ports: dict[str, int]) -> str:
    collectors = ", ".join(f'"127.0.0.1:{ports[c]}"' for c in NODES[node])
    return f"""\
node_name = "{node}"
state_dir = "{base / node}"
collectors = [{collectors}]     # home collector first, the other one on failover
[metrics]
listen = "127.0.0.1:{ports[node + '-metrics']}"
[[sources]]
type = "file"
paths = ["{EXAMPLE / 'logs' / node}/*.log"]
log_type = "application"
"""


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _fleetlog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetlog.cli.main", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)


def _sample_lines() -> int:
    return sum(len(p.read_text().splitlines()) for p in (EXAMPLE / "logs").glob("*/*.log"))


def _check(ports: dict[str, int]) -> str | None:
    """Wait until both collectors show every sample line; None when they do, else what is missing."""
    expected = _sample_lines()
    deadline = time.monotonic() + 60
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        for name in ("col-a", "col-b"):
            result = _fleetlog("--collector", f"127.0.0.1:{ports[name]}", "search", "--host", "web-*",
                               "--format", "json", "--limit", "0")
            counts[name] = len(result.stdout.splitlines()) if result.returncode == 0 else -1
        if all(n == expected for n in counts.values()):
            # Each collector records the nodes it serves at its next heartbeat (every 2 s): wait
            # until col-b's status lists both agents before showing it.
            status = _fleetlog("--collector", f"127.0.0.1:{ports['col-b']}", "status")
            listed = {line.split()[0] for line in status.stdout.splitlines() if line.startswith("web-")}
            if not {"web-1", "web-2"} <= listed and time.monotonic() < deadline - 1:
                time.sleep(0.3)
                continue
            print(status.stdout, end="")
            trace = _fleetlog("--collector", f"127.0.0.1:{ports['col-a']}", "trace", "c-100", "--format", "json")
            hosts = sorted({json.loads(line)["host"] for line in trace.stdout.splitlines()})
            print(f"trace c-100 through col-a: steps from {', '.join(hosts)}")
            return None
        time.sleep(0.3)
    return f"expected {expected} events through each collector, found {counts}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="an existing PostgreSQL database (default: start a throwaway server)")
    parser.add_argument("--base", default=str(ROOT / "var" / "cluster"), help="configs, state and logs")
    parser.add_argument("--free-ports", action="store_true", help="pick free ports instead of 7531/7532/...")
    parser.add_argument("--check", action="store_true", help="run the tour unattended, then stop")
    args = parser.parse_args()
    base = pathlib.Path(args.base).resolve()
    base.mkdir(parents=True, exist_ok=True)
    ports = _ports(args.free_ports)
    server = None
    dsn = args.dsn
    if not dsn:
        from tests.pg import PgServer
        server = PgServer()
        server.start()
        dsn = server.create_database()
    (base / "dsn").write_text(dsn + "\n")
    os.chmod(base / "dsn", 0o600)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    processes: list[subprocess.Popen] = []
    try:
        for name, kind, text in [("col-a", "collector", _collector_toml("col-a", base, ports)),
                                 ("col-b", "collector", _collector_toml("col-b", base, ports)),
                                 ("web-1", "agent", _agent_toml("web-1", base, ports)),
                                 ("web-2", "agent", _agent_toml("web-2", base, ports))]:
            (base / f"{name}.toml").write_text(text)
            with open(base / f"{name}.log", "ab") as log:
                processes.append(subprocess.Popen([sys.executable, "-m", f"fleetlog.{kind}", "--config", str(base / f"{name}.toml")],
                                                  stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
            deadline = time.monotonic() + 60
            while not _ready(ports[f"{name}-metrics"]):
                if processes[-1].poll() is not None or time.monotonic() > deadline:
                    print(f"cluster example: {name} did not start; see {base / (name + '.log')}", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            print(f"{name} ready (pid {processes[-1].pid})", flush=True)
        if args.check:
            problem = _check(ports)
            if problem:
                print(f"cluster example: {problem}", file=sys.stderr)
                return 1
            return 0
        print(f"\nTry: .venv/bin/fleetlog --collector 127.0.0.1:{ports['col-a']} trace c-100\n"
              f"     .venv/bin/fleetlog --collector 127.0.0.1:{ports['col-b']} status\n"
              f"Configs and logs in {base}. Ctrl-C stops everything.", flush=True)
        stop = False

        def request_stop(signum, frame):
            nonlocal stop
            stop = True
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        while not stop:
            time.sleep(0.2)
        return 0
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if server is not None:
            server.close()


if __name__ == "__main__":
    sys.exit(main())
