"""Per-source event filters (SPEC §2, §4.5): min_level, include and exclude by field + wildcard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetlog.common.wildcard import wildcard_match


@dataclass(frozen=True)
class EventFilter:
    include: Sequence[Any] = ()   # FieldPattern-like: .field, .pattern
    exclude: Sequence[Any] = ()

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def keep(self, values: dict[str, str]) -> bool:
        """Included when any include pattern matches (or there are none), and no exclude does."""
        if self.include and not any(wildcard_match(p.pattern, values.get(p.field, "")) for p in self.include):
            return False
        return not any(wildcard_match(p.pattern, values.get(p.field, "")) for p in self.exclude)
