"""What both daemons share: flags, --check-config, logging, signals, systemd notification.

`run_daemon` owns the process lifecycle; the app object owns the work. The app provides
`async start()`, `async stop()`, `async reload(config)` and `ready() -> (bool, str)`.
Exit codes: 0 clean stop, 1 runtime failure, 2 usage or configuration error, each with one line
on stderr — never a traceback for a user error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol

from common.config import to_plain
from common.errors import ConfigError, FleetlogError
from common.logsetup import setup_logging
from common.sdnotify import notify, watchdog_interval

log = logging.getLogger("fleetlog.daemon")


class DaemonApp(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def reload(self, config: Any) -> None: ...
    def ready(self) -> tuple[bool, str]: ...


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage otherwise)
        sys.stderr.write(f"{self.prog}: {message}\n")
        sys.exit(2)


def run_daemon(prog: str, description: str, load: Callable[[str], Any],
               make_app: Callable[[Any], DaemonApp], argv: list[str] | None = None) -> int:
    parser = _ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help="path to the TOML configuration")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration, print the effective config, exit 0 (valid) or 2")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    if args.check_config:
        json.dump(to_plain(config), sys.stdout, indent=2)
        sys.stdout.write("\n")
        # A valid config whose external parts (the collector's PostgreSQL) cannot be reached is
        # said in one line and exit 1: a runtime condition, not a configuration error.
        check = getattr(config, "check_reachable", None)
        if check is not None:
            try:
                check()
            except FleetlogError as exc:
                sys.stderr.write(f"{prog}: {exc}\n")
                return exc.exit_code
        return 0
    try:
        _apply_logging(config)
    except OSError as exc:
        sys.stderr.write(f"{prog}: log_file: cannot open {config.log_file}: {exc.strerror}\n")
        return 2
    try:
        return asyncio.run(_serve(prog, args.config, load, make_app, config))
    except FleetlogError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 0


async def _serve(prog: str, path: str, load: Callable[[str], Any], make_app: Callable[[Any], DaemonApp],
                 config: Any) -> int:
    # Handlers go in before start: /readyz answers once start is under way, and a SIGTERM that
    # arrives then must mean a clean stop, not the default kill.
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    reloads: asyncio.Queue[None] = asyncio.Queue()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, None)
    app = make_app(config)
    await app.start()
    notify("READY=1")
    tasks = [asyncio.create_task(_reload_loop(prog, path, load, app, reloads))]
    interval = watchdog_interval()
    if interval:
        tasks.append(asyncio.create_task(_watchdog(interval)))
    await stopping.wait()
    notify("STOPPING=1")
    log.info("%s stopping", prog)
    for task in tasks:
        task.cancel()
    await app.stop()
    return 0


def _apply_logging(config: Any) -> None:
    setup_logging(config.log_level, config.log_file, config.log_format, config.log_rotate_daily,
                  config.log_rotate_max)


async def _reload_loop(prog: str, path: str, load: Callable[[str], Any], app: DaemonApp,
                       reloads: asyncio.Queue[None]) -> None:
    while True:
        await reloads.get()
        notify("RELOADING=1")
        try:
            config = load(path)
            await app.reload(config)
            _apply_logging(config)
            log.info("%s reloaded %s", prog, path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
        except OSError as exc:
            log.error("reload: log_file: cannot open %s: %s; logging unchanged", config.log_file, exc.strerror)
        notify("READY=1")


async def _watchdog(interval: float) -> None:
    """Keep-alives come from the event loop itself, so a stalled loop stops them."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
