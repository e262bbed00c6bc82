"""`fleetlog support-bundle`: what someone helping with a problem needs, in one file (contract §6).

`fleetlog_support_YYYY-MM-DD-HHMMSS.tar.gz` holds the daemons' configs (as written and as in
effect), their recent logs, the collector's status and view of the cluster (nodes, last seen), the
agents' /readyz and /metrics, network settings, disk usage, processes and package versions. Every
text passes through common/masking.py first; token, key and certificate files are never read,
only named. A part that cannot be collected (collector down, no journalctl) is recorded in
manifest.json with the reason, and the bundle is still written: it is most needed when things
are broken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.metadata
import io
import json
import os
import pathlib
import platform
import re
import shutil
import socket
import subprocess
import tarfile
import urllib.request
from collections.abc import Callable
from typing import Any

from fleetlog.common.config import to_plain
from fleetlog.common.errors import ConfigError, FleetlogError, UsageError
from fleetlog.common.masking import mask_text

DEFAULT_CONFIGS = ("/etc/fleetlog/collector.toml", "/etc/fleetlog/agent.toml")
LOG_TAIL_BYTES = 4 * 1024 * 1024
PACKAGES = ("fleetlog", "grpcio", "protobuf", "cryptography", "sqlite-utils", "prometheus-client",
            "zstandard", "xlsxwriter", "fpdf2")
DEBIAN_PACKAGES = ("systemd", "rsyslog", "rsyslog-gnutls", "systemd-journal-remote", "python3")
COMMANDS = {
    "network/addresses.txt": ["ip", "-brief", "address"],
    "network/routes.txt": ["ip", "route"],
    "network/listening.txt": ["ss", "-ltnu"],
    "system/processes.txt": ["ps", "-eo", "pid,user,rss,pcpu,etime,args"],
    "system/disk.txt": ["df", "-h"],
    "logs/journal.txt": ["journalctl", "--no-pager", "-n", "5000", "-u", "fleetlog-collector",
                         "-u", "fleetlog-agent"],
}


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("support-bundle", parents=parents,
                                   help="system information for troubleshooting, secrets masked")
    parser.add_argument("--out", metavar="DIR", default=".", help="directory for the bundle (default: .)")
    parser.add_argument("--config", metavar="FILE", action="append", default=None,
                        help="a collector.toml or agent.toml to include (repeatable; default: "
                             "/etc/fleetlog/collector.toml and agent.toml when present)")
    parser.set_defaults(handler=run_support_bundle)


class Bundle:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.problems: dict[str, str] = {}

    def add_text(self, name: str, text: str, mask: Callable[[str], str] = mask_text) -> None:
        self.files[name] = mask(text).encode()

    def add_json(self, name: str, data: Any, mask: Callable[[str], str] = mask_text) -> None:
        self.add_text(name, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", mask)

    def attempt(self, name: str, collect: Callable[[], None]) -> None:
        """Run one collection step; a failure is recorded, never fatal."""
        try:
            collect()
        except (OSError, FleetlogError, ValueError, subprocess.SubprocessError) as exc:
            self.problems[name] = str(exc) or type(exc).__name__


# `token_file = "/etc/fleetlog/agent.token"`: a path, which support needs to see, not a secret
# (contract §2: secrets are referenced by file path; the files themselves are never read here).
_PATH_SETTING = re.compile(r'^\s*"?\w*_file"?\s*[=:]\s*"[^"]*",?\s*$')


def mask_config(text: str) -> str:
    return "".join(line if _PATH_SETTING.match(line) else mask_text(line) for line in text.splitlines(True))


def _load(path: str) -> tuple[str, Any]:
    """(kind, effective config) of a collector.toml or agent.toml, trying the kind its name suggests first."""
    from fleetlog.agent.config import load_agent_config
    from fleetlog.collector.config import load_collector_config

    loaders = [("collector", load_collector_config), ("agent", load_agent_config)]
    if "agent" in pathlib.Path(path).name:
        loaders.reverse()
    errors = []
    for kind, load in loaders:
        try:
            return kind, load(path)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0])


def _tail(path: str) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - LOG_TAIL_BYTES))
        return handle.read().decode("utf-8", errors="replace")


def _directory_usage(path: str) -> dict[str, Any]:
    total = sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())
    usage = shutil.disk_usage(path)
    return {"path": path, "bytes_used_by_fleetlog": total, "filesystem_total": usage.total,
            "filesystem_free": usage.free}


def _http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode("utf-8", errors="replace")


def _add_config(bundle: Bundle, index: int, path: str) -> None:
    label = f"config/{index}-{pathlib.Path(path).name}"
    bundle.add_text(label, pathlib.Path(path).read_text(errors="replace"), mask_config)
    kind, config = _load(path)
    bundle.add_json(f"{label}.effective.json", to_plain(config), mask_config)

    def add_log() -> None:
        if config.log_file:
            bundle.add_text(f"logs/{kind}-{index}.log", _tail(config.log_file))
    bundle.attempt(f"{label}: log_file", add_log)
    directory = config.data_dir if kind == "collector" else config.state_dir
    bundle.attempt(f"{label}: disk usage", lambda: bundle.add_json(f"system/disk-{kind}-{index}.json",
                                                                   _directory_usage(directory)))
    if kind == "agent":
        listen = config.metrics.listen
        bundle.attempt(f"{label}: agent /metrics", lambda: bundle.add_text(
            f"status/agent-{index}-metrics.txt", _http(f"http://{listen}/metrics")))
        bundle.attempt(f"{label}: agent /readyz", lambda: bundle.add_text(
            f"status/agent-{index}-readyz.txt", _http(f"http://{listen}/readyz")))


def _collector_status(bundle: Bundle, args: argparse.Namespace) -> None:
    from google.protobuf.json_format import MessageToDict

    from fleetlog.cli.client import Connection
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

    conn = Connection.from_args(args)
    with conn.channel() as channel:
        status = conn.query(channel).Status(pb.StatusRequest(), metadata=conn.metadata, timeout=10)
    bundle.add_json("status/collector.json", MessageToDict(status, preserving_proto_field_name=True))


def _versions() -> dict[str, Any]:
    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    if shutil.which("dpkg-query"):
        result = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *DEBIAN_PACKAGES],
                                capture_output=True, text=True, timeout=30, check=False)
        versions["debian"] = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return versions


def _add_command(bundle: Bundle, name: str, argv: list[str]) -> None:
    bundle.add_text(name, _command(argv))


def _command(argv: list[str]) -> str:
    if not shutil.which(argv[0]):
        raise OSError(f"{argv[0]} is not installed")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return result.stdout + (f"\n[{' '.join(argv)}: exit {result.returncode}] {result.stderr}"
                            if result.returncode else "")


def _collector_settings(bundle: Bundle, args: argparse.Namespace) -> None:
    """The settings managed live (docs/settings.md): part of the effective configuration that no
    file holds. Tokens are listed without secrets or hashes, as the collector answers them."""
    from fleetlog.cli.settings import settings_request
    for kind in ("forwarders", "namespaces", "alerts"):
        bundle.add_json(f"status/settings-{kind}.json", settings_request(args, "list", kind))
    # Names, roles, namespaces and times only; masking the text would take `"tokens": [` for a secret.
    bundle.add_json("status/settings-tokens.json", settings_request(args, "list", "tokens"), mask=str)


def run_support_bundle(args: argparse.Namespace) -> int:
    out = pathlib.Path(args.out)
    if not out.is_dir():
        raise UsageError(f"--out: {args.out} is not a directory")
    configs = args.config or [p for p in DEFAULT_CONFIGS if os.path.exists(p)]
    for path in configs:
        if not os.path.isfile(path):
            raise UsageError(f"--config: {path} does not exist")
    now = dt.datetime.now(dt.UTC)
    bundle = Bundle()
    for index, path in enumerate(configs, 1):
        bundle.attempt(f"config {path}", functools.partial(_add_config, bundle, index, path))
    bundle.attempt("collector status", lambda: _collector_status(bundle, args))
    bundle.attempt("collector settings", lambda: _collector_settings(bundle, args))
    bundle.attempt("versions", lambda: bundle.add_json("system/versions.json", _versions()))
    for name, argv in COMMANDS.items():
        bundle.attempt(name, functools.partial(_add_command, bundle, name, argv))
    manifest = {"created": now.isoformat(timespec="seconds"), "host": socket.gethostname(),
                "configs": configs, "files": sorted(bundle.files), "not_collected": bundle.problems,
                "masking": "common/masking.py: password/secret/token/api_key values, Authorization "
                           "credentials and private key blocks are replaced by ***"}
    bundle.add_json("manifest.json", manifest)

    target = out / f"fleetlog_support_{now:%Y-%m-%d-%H%M%S}.tar.gz"
    folder = target.name[:-len(".tar.gz")]
    with tarfile.open(target, "w:gz") as tar:
        for name, data in sorted(bundle.files.items()):
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o600
            tar.addfile(info, io.BytesIO(data))
    os.chmod(target, 0o600)
    print(f"{target}  ({len(bundle.files)} files"
          + (f"; not collected: {', '.join(sorted(bundle.problems))}" if bundle.problems else "") + ")")
    return 0
