"""What both backends keep of the settings managed live (collector/settings/): rows of
(kind, name) with a JSON body, a version counter bumped by every change, and when each token was
last used. The backends' modules (sqlite_settings.py, pg_settings.py) implement SettingsStore."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from fleetlog.common.errors import StorageError


class SettingsRow(NamedTuple):
    kind: str
    name: str
    body: str           # JSON, collector.toml's key names
    created_at: int     # µs since the epoch
    changed_at: int
    changed_by: str
    changed_via: str


class SettingsConflict(StorageError):
    """A create found the entry there already, or an update/delete found it gone (another
    caller's change came first)."""


class SettingsStore(Protocol):
    def version(self) -> int:
        """The change counter: cheap, polled about every second by each collector."""

    def rows(self) -> tuple[int, list[SettingsRow]]:
        """The version and every row, read in one transaction."""

    def change(self, kind: str, name: str, body: str | None, who: str, via: str, now_us: int,
               exists: bool) -> int:
        """Create (exists=False) or replace/delete (exists=True; body None deletes) one row and
        bump the version, in one transaction; the new version. SettingsConflict when the row's
        presence is not as `exists` says."""

    def touch_tokens(self, used: dict[str, int]) -> None:
        """Record tokens' last use (name -> µs), keeping the newest; no version change."""

    def token_uses(self) -> dict[str, int]: ...

    def close(self) -> None: ...
