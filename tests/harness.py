"""Test harness: real daemons as processes on 127.0.0.1 with free ports and temp dirs.

`Cluster` starts collectors and agents from config dicts, knows only the processes it started,
and stops them (SIGTERM, then SIGKILL after a deadline). Everything waits by polling with a
deadline — no fixed sleeps.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import tomli_w

ROOT = pathlib.Path(__file__).resolve().parent.parent


_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 1024


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1, below the kernel's ephemeral range when there is
    room: a port bind(0) gives is ephemeral, and an outgoing connection made before the daemon
    listens (an agent's to its collector) could take it (seen: a relay's listener refused with
    "address already in use" for 20 s). Never the same port twice in one test run."""
    start = _ephemeral_start()
    if start > 11_000:
        for _ in range(200):
            port = random.randrange(10_000, start)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def assert_connections_bounded(port: int, limit: int, open_now: Callable[[], float],
                               refused: Callable[[], float], first_bytes: bytes = b"") -> None:
    """An HTTP receiver's connection bound, from outside: `limit` connections held open (the first
    sending `first_bytes`, e.g. a request head that never ends), one more closed at once and
    counted (`refused()` goes to 1), and every held one closed by the listener's idle_timeout."""
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(limit)]
    try:
        wait_for(lambda: open_now() == limit, 10, f"{limit} connections open")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            assert extra.recv(100) == b""                 # closed at once: one over max_connections
        assert refused() == 1
        if first_bytes:
            held[0].sendall(first_bytes)
        for conn in held:                                 # idle_timeout: the listener closes them
            assert conn.recv(100) == b""
        wait_for(lambda: open_now() == 0, 10, "the idle connections closed")
    finally:
        for conn in held:
            conn.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; return its value or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 — polled conditions may fail until ready
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("NOTIFY_SOCKET", None)
    return e


def write_toml(path: pathlib.Path, data: dict[str, Any]) -> pathlib.Path:
    path.write_text(tomli_w.dumps(data))
    return path


def run_cli(*args: str, timeout: float = 60, input: str | None = None, extra_env: dict | None = None
            ) -> subprocess.CompletedProcess[str]:
    e = env()
    if extra_env:
        e.update(extra_env)
    return subprocess.run([sys.executable, "-m", "fleetlog.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT, input=input, check=False)


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part)
        found = {k: v.strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in (labels or {}).items()):
            total += float(value)
    return total


@dataclass
class Daemon:
    kind: str
    config_path: pathlib.Path
    config: dict[str, Any]
    log_path: pathlib.Path
    process: subprocess.Popen | None = None
    port: int = 0
    metrics_port: int = 0
    prefix: list[str] = field(default_factory=list)   # e.g. setpriv, to run with fewer privileges

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, extra_env: dict | None = None) -> Daemon:
        e = env()
        if extra_env:
            e.update(extra_env)
        with open(self.log_path, "ab") as log:   # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen([*self.prefix, sys.executable, "-m", f"fleetlog.{self.kind}", "--config", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT, env=e, cwd=ROOT)
        return self

    def wait_ready(self, timeout: float = 30.0) -> Daemon:
        def ready() -> bool:
            if self.process and self.process.poll() is not None:
                raise AssertionError(f"{self.kind} exited with {self.process.returncode}:\n{self.log()}")
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2) as response:
                return response.status == 200
        wait_for(ready, timeout, f"{self.kind} ready")
        return self

    def metrics(self) -> str:
        return metrics_text(self.metrics_port)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return metric_value(self.metrics(), name, labels)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@dataclass
class Cluster:
    tmp: pathlib.Path
    daemons: list[Daemon] = field(default_factory=list)

    def collector(self, name: str = "collector-1", start: bool = True, **overrides: Any) -> Daemon:
        port, metrics_port = free_port(), free_port()
        config: dict[str, Any] = {
            "node_name": name, "listen": f"127.0.0.1:{port}", "data_dir": str(self.tmp / name / "data"),
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        }
        _merge(config, overrides)
        return self._daemon("collector", name, config, port, metrics_port, start)

    def agent(self, name: str, collectors: list[Daemon] | list[str], sources: list[dict[str, Any]],
              start: bool = True, **overrides: Any) -> Daemon:
        metrics_port = free_port()
        config: dict[str, Any] = {
            "node_name": name, "state_dir": str(self.tmp / name / "state"),
            "collectors": [c.address if isinstance(c, Daemon) else c for c in collectors],
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
            "batch": {"max_wait": "50ms"},
            "sources": sources,
        }
        _merge(config, overrides)
        return self._daemon("agent", name, config, 0, metrics_port, start)

    def _daemon(self, kind: str, name: str, config: dict[str, Any], port: int, metrics_port: int,
                start: bool) -> Daemon:
        folder = self.tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        path = write_toml(folder / f"{kind}.toml", config)
        daemon = Daemon(kind, path, config, folder / f"{kind}.log", port=port, metrics_port=metrics_port)
        self.daemons.append(daemon)
        if start:
            daemon.start()
            if kind == "collector":
                daemon.wait_ready()
        return daemon

    def rewrite(self, daemon: Daemon, **overrides: Any) -> None:
        _merge(daemon.config, overrides)
        write_toml(daemon.config_path, daemon.config)

    def stop_all(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def search_json(collector: Daemon, *args: str) -> list[dict[str, Any]]:
    """`fleetlog search ARGS` as events. Every search is itself stored, as an audit event whose
    message names its filters: poll with a filter the audit event cannot match (--host of the
    agent, --namespace, --log-type), or the second poll finds the first one's audit event."""
    result = run_cli("--collector", collector.address, "search", "--format", "json", "--limit", "0", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def searched_exactly(collector: Daemon, count: int, *args: str, context: Callable[[], str] = lambda: "",
                     timeout: float = 30) -> list[dict[str, Any]]:
    """The events `fleetlog search ARGS` finds, once it finds `count` of them (within `timeout`);
    exactly `count`, or the assertion names what was found (and `context()`, e.g. a daemon's log)."""
    seen: list[dict[str, Any]] = []

    def enough() -> list[dict[str, Any]] | None:
        seen[:] = search_json(collector, *args)
        return seen if len(seen) >= count else None
    try:
        wait_for(enough, timeout, f"{count} events {args}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; have {len(seen)}\n{context()}".rstrip()) from None
    assert len(seen) == count, [e["message"] for e in seen]
    return seen


def write_lines(path: pathlib.Path, lines: list[str], mode: str = "a") -> None:
    with open(path, mode) as handle:
        handle.write("".join(line + "\n" for line in lines))


def committed_events(db: pathlib.Path, host: str) -> int:
    """Events of `host` committed in the SQLite store whose main file is `db`: every partition,
    up to the committed head (a count a writer still running cannot make torn; works while the
    collector is down). Blocks count from their skip columns (a block is one host's, and wholly
    committed or not at all); a partition not yet converted from the row model counts rows.
    StorageError while the collector is creating the store."""
    import sqlite3

    from fleetlog.collector.store.partitions import partition_path
    from fleetlog.collector.store.sqlite import SqliteReader

    reader = SqliteReader(str(db))
    try:
        head, parts = reader.snapshot()
    finally:
        reader.close()
    total = 0
    for part in parts:
        path = partition_path(db, part.name)
        if not path.exists():
            continue
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "blocks" in tables:
                total += conn.execute("SELECT coalesce(sum(count), 0) FROM blocks WHERE host = ? AND min_seq <= ?",
                                      (host, head)).fetchone()[0]
            if "events" in tables:
                total += conn.execute("SELECT count(*) FROM events WHERE host = ? AND seq <= ?",
                                      (host, head)).fetchone()[0]
        finally:
            conn.close()
    return total


def tar_members(path: pathlib.Path | str) -> dict[str, bytes]:
    """The files of a .tar.gz (a bundle) by name."""
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def write_tar(path: pathlib.Path | str, files: dict[str, bytes]) -> None:
    """A .tar.gz holding `files` (an edited or forged bundle)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def relay_cluster(folder: pathlib.Path, make: Callable[[Cluster, pathlib.Path], Any]) -> Iterator[Any]:
    """A relay agent and its collector for a module of receiver tests (`make` starts them and
    returns an object with `.agent`), stopped at the end. Hostile peers are counted, never a
    traceback: the relay's log must then hold no traceback and no ERROR line."""
    cluster = Cluster(folder)
    relay = None
    try:
        relay = make(cluster, folder)
        yield relay
    finally:
        cluster.stop_all()
    text = relay.agent.log_path.read_text(errors="replace") if relay else ""
    assert "Traceback" not in text and "ERROR" not in text, text[-5000:]
