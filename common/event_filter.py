"""Include/exclude filters on event fields, shared by the agent's sources and the collector's
forwarders: `include = [{ field = "user", pattern = "admin*" }]`, `*` wildcards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fleetlog.common.wildcard import wildcard_match


@dataclass(frozen=True)
class FieldPattern:
    """A filter on one event field: `{ field = "user", pattern = "admin*" }`."""

    field: str
    pattern: str


@dataclass(frozen=True)
class EventFilter:
    include: tuple[FieldPattern, ...] = ()
    exclude: tuple[FieldPattern, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def keep(self, value_of: Callable[[str], str | None]) -> bool:
        """Kept when any include pattern matches (or there are none), and no exclude does;
        `value_of(field)` is the event's field as text (None or "" when it has none)."""
        if self.include and not any(wildcard_match(p.pattern, value_of(p.field)) for p in self.include):
            return False
        return not any(wildcard_match(p.pattern, value_of(p.field)) for p in self.exclude)
