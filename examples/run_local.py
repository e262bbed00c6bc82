"""`make run`: a collector and an agent on this machine, with the embedded SQLite store under
./var and the sample logs of examples/logs. Prints how to search; Ctrl-C stops both."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
COLLECTOR_PORT, COLLECTOR_METRICS, AGENT_METRICS, WEB_PORT = 7433, 9433, 9434, 8433

COLLECTOR_TOML = f"""\
node_name = "collector-1"
listen = "127.0.0.1:{COLLECTOR_PORT}"
data_dir = "{VAR / 'collector'}"
[metrics]
listen = "127.0.0.1:{COLLECTOR_METRICS}"
[web]
listen = "127.0.0.1:{WEB_PORT}"
"""

AGENT_TOML = f"""\
node_name = "web-1"
state_dir = "{VAR / 'agent'}"
collectors = ["127.0.0.1:{COLLECTOR_PORT}"]
[metrics]
listen = "127.0.0.1:{AGENT_METRICS}"
[[sources]]
type = "file"
paths = ["{ROOT / 'examples' / 'logs'}/*.log", "{VAR / 'demo'}/*.log"]
log_type = "application"
"""


def wait_ready(port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"make run: the {name} exited with code {process.returncode}; see {VAR / (name + '.log')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"make run: the {name} did not become ready in 30 s; see {VAR / (name + '.log')}")


def main() -> None:
    VAR.mkdir(exist_ok=True)
    (VAR / "demo").mkdir(exist_ok=True)   # lines you append here are shipped too (the sample logs stay untouched)
    (VAR / "collector.toml").write_text(COLLECTOR_TOML)
    (VAR / "agent.toml").write_text(AGENT_TOML)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    processes = []
    for name in ("collector", "agent"):
        with open(VAR / f"{name}.log", "ab") as log:   # the daemon keeps its own copy of the descriptor
            processes.append(subprocess.Popen([sys.executable, "-m", f"fleetlog.{name}", "--config", str(VAR / f"{name}.toml")],
                                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
        wait_ready(COLLECTOR_METRICS if name == "collector" else AGENT_METRICS, processes[-1], name)
    fleetlog = f"{ROOT / '.venv' / 'bin' / 'fleetlog'}"
    print(f"""
fleetlog is running: collector on 127.0.0.1:{COLLECTOR_PORT}, agent web-1 tailing examples/logs/*.log
  store    {VAR / 'collector' / 'events.db'}   logs  {VAR}/collector.log, {VAR}/agent.log
  console  http://127.0.0.1:{WEB_PORT}/events   (no tokens_file here: loopback-only, no sign-in)
  metrics  http://127.0.0.1:{COLLECTOR_METRICS}/metrics   http://127.0.0.1:{AGENT_METRICS}/metrics

Try, in another terminal:
  {fleetlog} search --limit 20
  {fleetlog} trace req-7f3a
  {fleetlog} search --user alice --min-level warning
  {fleetlog} search --message '"password incorrect"' --format json
  {fleetlog} search --follow          (then: echo "$(date -u +%FT%TZ) ERROR req=r1 user=bob it broke" >> var/demo/app.log)
  {fleetlog} status

Ctrl-C stops both.""", flush=True)
    stop = False

    def request_stop(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stop and all(p.poll() is None for p in processes):
        time.sleep(0.2)
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    print("stopped.")


if __name__ == "__main__":
    main()
