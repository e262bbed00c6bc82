"""A real Prometheus Alertmanager for the tests (Debian's prometheus-alertmanager), on a free
127.0.0.1 port with its storage in a temporary directory and gossip off, whose one receiver is a
webhook this module serves: every notification Alertmanager sends lands in `Webhook.received`.

Alertmanager groups each alert on its own (group_by "..."), waits 100 ms before the first
notification of a group and 1 s between changes, and repeats an unchanged one only after an
hour, so a test counts notifications exactly: one when an alert starts firing, one when it
resolves.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness import free_port, wait_for


class Webhook:
    """An HTTP server that keeps the JSON body of every POST."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook._lock:
                    hook.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self, status: str, **labels: str) -> list[dict[str, Any]]:
        """Every alert of every notification so far with this status and these labels."""
        with self._lock:
            notifications = list(self.received)
        return [alert for n in notifications for alert in n["alerts"]
                if alert["status"] == status and all(alert["labels"].get(k) == v for k, v in labels.items())]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Alertmanager:
    def __init__(self, folder: pathlib.Path, webhook: Webhook, port: int = 0):
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "alertmanager.yml"
        self.config.write_text(json.dumps({   # YAML is a superset of JSON
            "route": {"receiver": "hook", "group_by": ["..."], "group_wait": "100ms",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook.url, "send_resolved": True}]}],
        }))

    def start(self, timeout: float = 30.0) -> Alertmanager:
        with open(self.folder / "alertmanager.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["prometheus-alertmanager", f"--config.file={self.config}", f"--storage.path={self.folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout, "Alertmanager ready")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"alertmanager exited with {self.proc.returncode}:\n{self.log()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)

    def log(self) -> str:
        try:
            return (self.folder / "alertmanager.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: the alerts it holds now."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as answer:
            return list(json.loads(answer.read()))

    def amtool_query(self, *matchers: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["amtool", "alert", "query", f"--alertmanager.url={self.url}", "--output=json",
                               *matchers], capture_output=True, text=True, timeout=30, check=False)

    def stop(self) -> None:
        """Stop only this Alertmanager (SIGTERM, then SIGKILL after 10 s)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
