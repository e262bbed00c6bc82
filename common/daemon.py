"""What both daemons share: flags, --check-config, logging, signals, systemd notification.

`run_daemon` owns the process lifecycle; the app object owns the work. The app provides
`async start()`, `async stop()`, `async reload(config)`, `ready() -> (bool, str)`, and for a
bounded stop `stop_bound` (seconds) and `stop_progress() -> str`.

A stop always ends: once SIGTERM arrives, a watchdog thread (StopGuard) gives the app's stop and
asyncio's own shutdown `stop_bound` seconds, then logs one error line naming the step that did
not finish and ends the process; a C-level faulthandler timer backs that thread up in case the
interpreter itself is wedged. Both daemons keep what matters on disk before they acknowledge it
(the agent's spool, the collector's committed store), so ending there loses nothing.
Exit codes: 0 clean stop, 1 runtime failure, 2 usage or configuration error, each with one line
on stderr — never a traceback for a user error.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import json
import logging
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from fleetlog.common.config import to_plain
from fleetlog.common.errors import ConfigError, FleetlogError
from fleetlog.common.logsetup import setup_logging
from fleetlog.common.sdnotify import notify, watchdog_interval

log = logging.getLogger("fleetlog.daemon")

DEFAULT_STOP_BOUND = 20.0   # a stop requested before the app exists


class DaemonApp(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def reload(self, config: Any) -> None: ...
    def ready(self) -> tuple[bool, str]: ...
    stop_bound: float
    def stop_progress(self) -> str: ...


class StopGuard:
    """Ends the process if a stop overruns its bound, whatever the event loop is doing."""

    def __init__(self, prog: str, bound: float, progress: Callable[[], str]):
        self.prog, self.bound, self.progress = prog, bound, progress
        self._done = threading.Event()

    def arm(self) -> None:
        threading.Thread(target=self._watch, name="stop-guard", daemon=True).start()
        # Backstop for an interpreter that never lets the thread above run: dump every stack to
        # stderr and exit from C.
        faulthandler.dump_traceback_later(self.bound + 10, exit=True)

    def disarm(self) -> None:
        self._done.set()
        faulthandler.cancel_dump_traceback_later()

    def _watch(self) -> None:
        if self._done.wait(self.bound):
            return
        try:
            step = self.progress()
        except Exception as exc:  # noqa: BLE001 - the exit must happen whatever the app's state
            step = f"unknown ({exc!r})"
        log.error("%s: stop did not finish within %.0f s (%s); exiting anyway", self.prog, self.bound, step)
        logging.shutdown()
        os._exit(1)


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage otherwise)
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
    _raise_open_files_limit()
    guards: list[StopGuard] = []
    try:
        return asyncio.run(_serve(prog, args.config, load, make_app, config, guards))
    except FleetlogError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 0
    finally:
        # Disarmed only here: asyncio.run's own shutdown (cancelling leftover tasks, joining the
        # default executor's threads) happens inside the bound too.
        for guard in guards:
            guard.disarm()


async def _serve(prog: str, path: str, load: Callable[[str], Any], make_app: Callable[[Any], DaemonApp],
                 config: Any, guards: list[StopGuard]) -> int:
    # Handlers go in before start: /readyz answers once start is under way, and a SIGTERM that
    # arrives then must mean a clean stop, not the default kill.
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    reloads: asyncio.Queue[None] = asyncio.Queue()
    app: DaemonApp | None = None

    def request_stop() -> None:
        # The guard is armed at the signal itself, so a start that never finishes is bounded too.
        if stopping.is_set():
            return
        stopping.set()
        bound = app.stop_bound if app is not None else DEFAULT_STOP_BOUND
        progress = app.stop_progress if app is not None else (lambda: "starting")
        guard = StopGuard(prog, bound, progress)
        guards.append(guard)
        guard.arm()

    loop.add_signal_handler(signal.SIGTERM, request_stop)
    loop.add_signal_handler(signal.SIGINT, request_stop)
    loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, None)
    app = make_app(config)
    await app.start()
    _tune_garbage_collector()
    notify("READY=1")
    tasks = [asyncio.create_task(_reload_loop(prog, path, load, app, reloads))]
    interval = watchdog_interval()
    if interval:
        tasks.append(asyncio.create_task(_watchdog(interval)))
    await stopping.wait()
    notify("STOPPING=1")
    log.info("%s stopping (at most %.0f s)", prog, app.stop_bound)
    for task in tasks:
        task.cancel()
    await app.stop()
    return 0


# Young-generation collections after this many new container objects instead of 700. Ingest
# makes and frees tens of thousands of lists and tuples a batch, nearly none in a cycle (reference
# counting frees them), and at 700 the collector spent 8 % of its time in the cycle collector
# (py-spy); at 20,000 the TCP syslog bench's collector CPU a message fell by an eighth.
GC_THRESHOLDS = (20_000, 50, 100)


def _tune_garbage_collector() -> None:
    """Once started: what start-up made (modules, config, the app) is moved out of the cycle
    collector's reach (gc.freeze), so no later collection walks it again, and young collections
    run less often (GC_THRESHOLDS)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _raise_open_files_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (as Go and systemd services commonly do): every
    agent, scrape and CLI call is a descriptor, and 1024 is a small number for a collector with
    a fleet (and with whatever else connects to its ports). Under the systemd units the limits
    are equal (LimitNOFILE=), so setrlimit, which their syscall filter forbids, is never called."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d: %s", soft, exc)


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
