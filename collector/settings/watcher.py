"""Keeps this collector's running configuration in step with the settings in the store: polls the
version counter about every second (one small read), and when it moved, reads the entries,
builds collector.toml + entries (effective.py) and hands the result to `apply` (CollectorApp's
reload paths: forwarders, classifier, retention, tokens). A set that does not build is logged and
skipped: the running configuration stays. Also writes back when tokens were last used."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.settings import effective
from fleetlog.collector.store.settings_rows import SettingsRow, SettingsStore
from fleetlog.common.errors import FleetlogError

log = logging.getLogger("fleetlog.collector.settings")

POLL_SECONDS = 1.0
USES_EVERY = 10          # polls between reads of the cluster's token uses


class SettingsWatcher:
    def __init__(self, store: SettingsStore, file_config: CollectorConfig, file_tokens: Callable[[], set[str]],
                 apply: Callable[[effective.Effective], Awaitable[None]],
                 take_uses: Callable[[], dict[str, int]] = dict, poll: float = POLL_SECONDS):
        self.store = store
        self.file_config = file_config
        self.file_tokens = file_tokens
        self.apply = apply
        self.take_uses = take_uses
        self.poll = poll
        self.version = -1
        self.rows: list[SettingsRow] = []
        self.effective = effective.Effective(file_config, ())
        self.uses: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[Any] | None = None
        self._polls = 0
        self._failing = False        # the store did not answer the last poll (logged once per outage)

    def load(self) -> effective.Effective:
        """Blocking, at start: the entries as they are now (a set that does not build: the file's
        configuration alone, and an error line)."""
        version, rows = self.store.rows()
        self._take(version, rows)
        try:
            self.uses = self.store.token_uses()
        except FleetlogError as exc:
            log.warning("settings: cannot read token uses: %s", exc)
        return self.effective

    def _take(self, version: int, rows: list[SettingsRow]) -> bool:
        self.version = version
        built = self._build(version, rows)
        if built is None:
            return False
        self.rows, self.effective = rows, built
        return True

    def _build(self, version: int, rows: list[SettingsRow]) -> effective.Effective | None:
        try:
            return effective.build(self.file_config, rows, self.file_tokens())
        except FleetlogError as exc:
            log.error("settings version %d does not build, keeping the running configuration: %s", version, exc)
            return None

    async def refresh(self, force: bool = False) -> None:
        """Apply the store's settings if their version moved (or `force`: the file changed). The
        rows and configuration the layer answers from change only once `apply` took them."""
        async with self._lock:
            version = await asyncio.to_thread(self.store.version)
            if version == self.version and not force:
                return
            version, rows = await asyncio.to_thread(self.store.rows)
            self.version = version      # a set that fails is not retried until the next change
            built = self._build(version, rows)
            if built is None:
                return
            try:
                await self.apply(built)
            except FleetlogError as exc:
                log.error("settings version %d could not be applied, keeping the running configuration: %s",
                          version, exc)
                return
            self.rows, self.effective = rows, built
            log.info("settings version %d applied", version)

    async def reload_file(self, file_config: CollectorConfig) -> None:
        """SIGHUP: collector.toml changed; rebuild with the store's entries."""
        self.file_config = file_config
        await self.refresh(force=True)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="settings-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        uses = self.take_uses()
        if uses:
            try:
                await asyncio.to_thread(self.store.touch_tokens, uses)
            except FleetlogError as exc:
                log.warning("settings: cannot record token uses: %s", exc)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.refresh()
                uses = self.take_uses()
                if uses:
                    self.uses.update({k: max(v, self.uses.get(k, 0)) for k, v in uses.items()})
                    await asyncio.to_thread(self.store.touch_tokens, uses)
                self._polls += 1
                if self._polls % USES_EVERY == 0:
                    self.uses = await asyncio.to_thread(self.store.token_uses)
                if self._failing:
                    log.warning("settings: the store answers again")
                    self._failing = False
            except FleetlogError as exc:      # the database is down: the running configuration stays
                if not self._failing:
                    log.warning("settings: cannot poll the store (keeping the running configuration): %s", exc)
                    self._failing = True
