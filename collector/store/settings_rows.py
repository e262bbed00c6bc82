"""What both backends keep of the settings managed live (collector/settings/): rows of
(kind, name) with a JSON body, a version counter bumped by every change, and when each token was
last used. The backends' modules (sqlite_settings.py, pg_settings.py) implement SettingsStore."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

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


def write_change(execute: Callable[..., Any], mark: str, kind: str, name: str, body: str | None, who: str,
                 via: str, now_us: int, exists: bool) -> int:
    """The statements of one SettingsStore.change, inside the caller's transaction (`execute` is
    the connection's, `mark` its driver's placeholder); the new version."""
    def run(sql: str, *params: Any) -> Any:
        return execute(sql.replace("?", mark), params)
    found = run("SELECT 1 FROM settings WHERE kind = ? AND name = ?", kind, name).fetchone()
    if bool(found) != exists:
        raise SettingsConflict(f"{kind} {name!r} {'does not exist' if exists else 'exists already'}")
    if body is None:
        run("DELETE FROM settings WHERE kind = ? AND name = ?", kind, name)
    elif exists:
        run("UPDATE settings SET body = ?, changed_at = ?, changed_by = ?, changed_via = ? WHERE kind = ? AND name = ?",
            body, now_us, who, via, kind, name)
    else:
        run("INSERT INTO settings VALUES (?, ?, ?, ?, ?, ?, ?)", kind, name, body, now_us, now_us, who, via)
    return int(run("UPDATE settings_version SET version = version + 1 WHERE id = 1 RETURNING version").fetchone()[0])
