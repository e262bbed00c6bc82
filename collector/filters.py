"""Search filters (contract §1 "Filters"): validated from what the operator typed into a FilterSpec.

Backend-neutral: storage backends compile a FilterSpec into their own query language. Every
problem is a UsageError that says which flag and why — never an empty result.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from fleetlog.common.errors import UsageError
from fleetlog.common.levels import Level, parse_level
from fleetlog.common.timefmt import UTC, datetime_to_us, now_us, parse_rfc3339_us
from fleetlog.common.units import parse_duration
from fleetlog.common.wildcard import split_list

# Bounds on what a reader may send (docs/security.md): a regular expression is matched by RE2,
# in time linear in the text (Python's `re` backtracks: `(a+)+$` against 40 a's and a `!` never
# ends, holding the GIL); its length and every other filter value's are capped.
MAX_REGEX_BYTES = 512
MAX_FILTER_CHARS = 4096

# Columns that the `--where` syntax and `--columns` may name (contract §3).
EVENT_FIELDS = ("seq", "id", "time", "received_at", "host", "host_ip", "collector", "namespace",
                "source", "log_type", "app", "pid", "level", "request_id", "user", "action",
                "message", "fields", "tier", "truncated")

_RELATIVE = re.compile(r"^\d+(\.\d+)?\s*(us|ms|s|m|min|h|d|w|y)$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_PREFIX = re.compile(r"^\d{4}(-\d{1,2}(-\d{1,2}([ T]\d{1,2}(:\d{1,2}(:\d{1,2}(\.\d{0,6})?)?)?)?)?)?$")


_EARLIEST_US = -62_135_596_800_000_000   # 0001-01-01T00:00:00Z
_END_US = 253_402_300_800_000_000        # 10000-01-01T00:00:00Z, just past the last time datetime has


def parse_time_bound(flag: str, text: str, now: int | None = None) -> int:
    """`--since/--until`: RFC 3339, a date (midnight UTC), or relative to now (`15m`, `7d`)."""
    text = text.strip()
    if _RELATIVE.match(text):
        value = (now if now is not None else now_us()) - int(parse_duration(text) * 1_000_000)
        if value < _EARLIEST_US:   # beyond any stored time and SQLite's integers (found by fuzzing)
            raise UsageError(f"{flag}: {text!r} reaches back before the year 1")
        return value
    try:
        if _DATE_ONLY.match(text):
            return datetime_to_us(dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC))
        return parse_rfc3339_us(text)
    except ValueError:
        raise UsageError(f"{flag}: cannot read {text!r} as a time (use RFC 3339 such as "
                         f"2025-12-01T14:30:00Z, a date such as 2025-12-01, or 15m/2h/7d)") from None


def date_prefix_range(text: str) -> tuple[str, int, int]:
    """`--date 2025-12-01 14:3` -> (normalised prefix, start µs, end µs) of the coarse range that
    the complete components of the prefix name (here the hour 14:00-15:00); the backend also
    matches the full prefix against the formatted time."""
    prefix = text.strip().replace("T", " ")
    if not _DATE_PREFIX.match(prefix):
        raise UsageError(f"--date: {text!r} is not a date prefix (such as 2025-12, 2025-12-01 or 2025-12-01 14:3)")
    parts = re.split(r"[- :.]", prefix)
    complete = parts if prefix[-1:].isdigit() and _component_complete(prefix) else parts[:-1]
    units = ["year", "month", "day", "hour", "minute", "second"]
    values = dict(zip(units, (int(p) for p in complete if p)))
    try:
        start = dt.datetime(values.get("year", 1970), values.get("month", 1), values.get("day", 1),
                            values.get("hour", 0), values.get("minute", 0), values.get("second", 0),
                            tzinfo=UTC)
    except ValueError as exc:
        raise UsageError(f"--date: {text!r}: {exc}") from None
    depth = len(values)
    if depth == 0:
        end = dt.datetime(10000 - 1, 12, 31, tzinfo=UTC)
        start = dt.datetime(1, 1, 1, tzinfo=UTC) if not complete else start
        return prefix, datetime_to_us(start), datetime_to_us(end)
    try:
        if depth == 1:
            end = start.replace(year=start.year + 1)
        elif depth == 2:
            end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        else:
            end = start + [dt.timedelta(days=1), dt.timedelta(hours=1), dt.timedelta(minutes=1),
                           dt.timedelta(seconds=1)][depth - 3]
    except (OverflowError, ValueError):
        # The last year, month, day... of 9999: the range ends where datetime does (a 500 before).
        return prefix, datetime_to_us(start), _END_US
    return prefix, datetime_to_us(start), datetime_to_us(end)


def _component_complete(prefix: str) -> bool:
    last = re.split(r"[- :.]", prefix)[-1]
    return len(last) == (4 if len(prefix) <= 4 else 2) and "." not in prefix


@dataclass(frozen=True)
class TextMatch:
    """A value filter: exact values and `*` wildcards, any of which may match."""

    exact: tuple[str, ...] = ()
    wildcards: tuple[str, ...] = ()


def _text_match(value: str, allow_list: bool = True, flag: str = "") -> TextMatch | None:
    if not value:
        return None
    items = split_list(value) if allow_list else [value.strip()]
    if not items:   # `,` alone: no value at all, which used to reach SQL as `()` (found by fuzzing)
        raise UsageError(f"{flag}: no value in {value!r}")
    return TextMatch(exact=tuple(i for i in items if "*" not in i),
                     wildcards=tuple(i for i in items if "*" in i))


@dataclass(frozen=True)
class WhereCondition:
    field: str
    like: str      # SQL LIKE pattern: % any run, _ one character


@dataclass(frozen=True)
class FilterSpec:
    since_us: int | None = None
    until_us: int | None = None
    date_prefix: str | None = None
    date_range: tuple[int, int] | None = None
    max_level: int | None = None                 # --min-level: level value <= this
    levels: tuple[int, ...] = ()
    request_id: TextMatch | None = None
    user: TextMatch | None = None
    host: TextMatch | None = None
    keywords: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    message_regex: str | None = None
    log_type: TextMatch | None = None
    source: TextMatch | None = None
    namespace: TextMatch | None = None
    app: TextMatch | None = None
    action: TextMatch | None = None
    where: tuple[WhereCondition, ...] = ()
    allowed_namespaces: tuple[str, ...] | None = None   # RBAC scope; None = all
    after_seq: int = 0
    # Keyset paging (the console's `_next`): strictly before / after this (time, seq, chain) in
    # the order of searches — (time, seq) on a one-chain store, (time, chain, seq) on a cluster's —
    # so page 10,000 costs what page 1 costs.
    before_key: tuple[int, int, str] | None = None
    after_key: tuple[int, int, str] | None = None
    extra: dict = field(default_factory=dict)


def split_message_terms(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`foo "exact phrase" bar` -> (("foo", "bar"), ("exact phrase",))."""
    phrases = tuple(p for p in re.findall(r'"([^"]*)"', text) if p.strip())
    rest = re.sub(r'"[^"]*"', " ", text)
    if '"' in rest:
        raise UsageError(f"--message: unbalanced double quote in {text!r}")
    return tuple(rest.split()), phrases


def parse_where(text: str) -> tuple[WhereCondition, ...]:
    conditions = []
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, pattern = part.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"--where: {part.strip()!r} is not field=pattern")
        if name not in EVENT_FIELDS:
            raise UsageError(f"--where: unknown field {name!r} (fields: {', '.join(EVENT_FIELDS)})")
        conditions.append(WhereCondition(name, pattern.strip()))
    return tuple(conditions)


class MessageRegex:
    """A compiled `--message-regex`: does it occur in a text? Asks RE2's matcher directly when
    the binding exposes it (about 2 µs a short message, against 5-14 through re2's re-like layer,
    which builds match objects a filter never reads); never captures."""

    def __init__(self, compiled: Any, anchor: Any):
        regexp = getattr(compiled, "_regexp", None)
        self._match = getattr(regexp, "Match", None)
        self._anchor = anchor
        self._compiled = compiled

    def found_in(self, text: str) -> bool:
        if self._match is None or self._anchor is None:
            return self._compiled.search(text) is not None
        data = text.encode("utf-8", "surrogatepass")
        return bool(self._match(self._anchor, data, 0, len(data))[0][0] >= 0)


def compile_message_regex(pattern: str) -> MessageRegex:
    """`--message-regex` compiled by RE2 (linear-time matching; no backreferences or lookaround).
    UsageError for a pattern too long or invalid."""
    import re2  # the collector extra brings it; the CLI never compiles a pattern

    if len(pattern.encode()) > MAX_REGEX_BYTES:
        raise UsageError(f"--message-regex: the pattern is {len(pattern.encode())} bytes long; "
                         f"at most {MAX_REGEX_BYTES} are accepted")
    options = re2.Options()
    options.log_errors = False   # RE2 would also print each refused pattern to stderr
    options.never_capture = True
    try:
        compiled = re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise UsageError(f"--message-regex: invalid regular expression {pattern!r}: {reason} "
                         f"(RE2 syntax: no backreferences or lookaround)") from None
    return MessageRegex(compiled, getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None))


def _level(flag: str, value: str) -> Level:
    try:
        return parse_level(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def build_filter_spec(raw: dict[str, str], *, now: int | None = None) -> FilterSpec:
    """Validate the raw filter strings (keys as in the Filters proto message)."""
    for key, value in raw.items():
        if "\x00" in (value or ""):   # SQLite would cut the query text there (found by fuzzing)
            raise UsageError(f"--{key.replace('_', '-')}: contains a NUL character")
        if len(value or "") > MAX_FILTER_CHARS:
            raise UsageError(f"--{key.replace('_', '-')}: {len(value)} characters long; "
                             f"at most {MAX_FILTER_CHARS} are accepted")
    get = lambda key: (raw.get(key) or "").strip()
    since = parse_time_bound("--since", get("since"), now) if get("since") else None
    until = parse_time_bound("--until", get("until"), now) if get("until") else None
    if since is not None and until is not None and since > until:
        raise UsageError("--since is later than --until")
    prefix, date_range = None, None
    if get("date"):
        prefix, start, end = date_prefix_range(get("date"))
        date_range = (start, end)
    regex = get("message_regex") or None
    if regex is not None:
        compile_message_regex(regex)
    keywords, phrases = split_message_terms(get("message")) if get("message") else ((), ())
    return FilterSpec(
        since_us=since, until_us=until, date_prefix=prefix, date_range=date_range,
        max_level=int(_level("--min-level", get("min_level"))) if get("min_level") else None,
        levels=tuple(int(_level("--level", v)) for v in split_list(get("level"))),
        request_id=_text_match(get("request_id"), allow_list=False, flag="--request-id"),
        user=_text_match(get("user"), flag="--user"), host=_text_match(get("host"), flag="--host"),
        keywords=keywords, phrases=phrases, message_regex=regex,
        log_type=_text_match(get("log_type"), flag="--log-type"), source=_text_match(get("source"), flag="--source"),
        namespace=_text_match(get("namespace"), flag="--namespace"), app=_text_match(get("app"), flag="--app"),
        action=_text_match(get("action"), flag="--action"),
        where=parse_where(get("where")) if get("where") else (),
    )
