"""Which events a forwarder sends: the five filter keys every forwarder's table has (min_level,
log_types, actions by CRUD category, include/exclude field patterns with `*` wildcards), applied
to presented events."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from fleetlog.common.config import LevelName
from fleetlog.common.event_filter import EventFilter, FieldPattern
from fleetlog.common.levels import LEVEL_NAMES, Level
from fleetlog.common.wildcard import wildcard_match

# Verbs that name each CRUD category. An action is split into words (on punctuation and
# camelCase); the last word that is one of these verbs decides, since actions such as
# `user.password.reset` or `Admin.User.Create` put the verb last.
CRUD_VERBS: dict[str, str] = {}
for _category, _verbs in {
    "create": "create created add added new insert register signup upload post import copy clone note",
    "read": "read get view list search show download export query fetch find open trace follow",
    "update": "update updated edit modify change changed set patch put rename enable disable reset "
              "grant assign move replace save",
    "delete": "delete deleted remove removed destroy purge drop revoke del rm erase unregister",
}.items():
    CRUD_VERBS.update({verb: _category for verb in _verbs.split()})

_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def crud_category(action: str | None) -> str | None:
    """`user.create` -> create, `Admin.EventLog.Note` -> create, `audit/search` -> read;
    None when no word of the action is a known verb."""
    if not action:
        return None
    for word in reversed(_WORDS.findall(action)):
        category = CRUD_VERBS.get(word.lower())
        if category:
            return category
    return None


def field_value(event: dict[str, Any], name: str) -> str:
    """A field as text for pattern matching: top-level contract §3 names, or `fields.KEY`."""
    if name.startswith("fields."):
        value = (event.get("fields") or {}).get(name[7:])
    else:
        value = event.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


@dataclass(frozen=True)
class ForwarderFilters:
    """Flattened into each forwarder's config (`Annotated[ForwarderFilters, Flatten()]`)."""

    min_level: LevelName = Level.DEBUG
    log_types: tuple[str, ...] = ()
    actions: tuple[Literal["create", "read", "update", "delete"], ...] = ()
    include: tuple[FieldPattern, ...] = ()
    exclude: tuple[FieldPattern, ...] = ()

    @functools.cached_property
    def _patterns(self) -> EventFilter:
        return EventFilter(tuple(self.include), tuple(self.exclude))

    def accepts(self, event: dict[str, Any]) -> bool:
        if LEVEL_NAMES.index(event["level"]) > self.min_level:
            return False
        if self.log_types and not any(wildcard_match(p, event.get("log_type")) for p in self.log_types):
            return False
        if self.actions and crud_category(event.get("action")) not in self.actions:
            return False
        return self._patterns.keep(functools.partial(field_value, event))
