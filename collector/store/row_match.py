"""A search filter evaluated in Python: on a block's decoded rows, and on its header to skip it.

The meaning is the row model's SQL (tests/unit/row_model_sql.py, the oracle its test holds it to), reproduced corner by corner:

- value filters (`--user a,b*`): exact values, or `*` wildcards matched like SQLite GLOB
  (case-sensitive; `?` and `[` literal); NULL matches nothing;
- message keywords: words as blocks.tokens sees them (folded case and accents), a keyword with
  several words (`abc-123`) a phrase of consecutive words; a trailing `*` makes the last word a
  prefix. A keyword with a word character (Python's `\\w`, underscore included) whose text holds
  no word at all (`_`, `__`) matched nothing in FTS5, and still matches nothing;
- a keyword that is not all word characters (`user@x`), and every phrase, must also occur
  literally, compared like SQLite LIKE: ASCII letters case-insensitively, other characters exactly;
- `--where field=pattern`: LIKE with `%` as the only wildcard, on the column as SQLite renders
  it as text (integers in decimal, `time` as SQLite's strftime text, `level` as its name);
- SQLite's LIKE and GLOB read a text only up to its first NUL character; so do these.

Checks run cheapest first, the caller's namespace scope before anything else: a pattern the
user typed never runs on another namespace's rows (its running time would tell their content).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from fleetlog.collector.filters import FilterSpec, TextMatch, WhereCondition, compile_message_regex
from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import (
    bloom_holds_any,
    bloom_may_hold,
    fold,
    item_hashes,
    request_key,
    tokens,
    user_key,
)
from fleetlog.collector.store.sqlite_blocks import BlockHeader
from fleetlog.common.levels import LEVEL_NAMES
from fleetlog.common.wildcard import compile_wildcard

Row = Sequence[Any]
RowTest = Callable[[Row], bool]
ValueTest = Callable[[Any], bool]

_COLUMN = {name: i for i, name in enumerate(ROW_COLUMNS)}
SEQ, ORIGIN, TIME, RECEIVED_AT = (_COLUMN[c] for c in ("seq", "origin", "time", "received_at"))
LEVEL, NAMESPACE, MESSAGE = _COLUMN["level"], _COLUMN["namespace"], _COLUMN["message"]

# Columns a `--where` can test on a block's header or summary without opening it.
_HEADER_COLUMNS = ("namespace", "host")
_VALUE_FILTERS = ("log_type", "source", "namespace", "app", "action")


def _c_text(value: str) -> str:
    """The part of a text SQLite's LIKE and GLOB compare: up to the first NUL."""
    return value.partition("\x00")[0] if "\x00" in value else value


def _text_test(match: TextMatch) -> ValueTest:
    exact = frozenset(match.exact)
    if not match.wildcards:
        return exact.__contains__          # None is in no set of texts
    globs = [compile_wildcard(pattern).match for pattern in match.wildcards]

    def test(value: Any) -> bool:
        if value is None:
            return False
        if value in exact:
            return True
        text = _c_text(value)
        for glob in globs:
            if glob(text):
                return True
        return False
    return test


def _like_test(pattern: str) -> ValueTest:
    """`column LIKE pattern` with `%` the only wildcard, on a value as SQLite renders it."""
    regex = re.compile(".*".join(re.escape(part) for part in pattern.split("%")),
                       re.IGNORECASE | re.ASCII | re.DOTALL)

    def test(value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, str):
            value = str(int(value))
        return regex.fullmatch(_c_text(value)) is not None
    return test


def _substring_test(text: str) -> ValueTest:
    """`message LIKE '%text%'` with text literal."""
    search = re.compile(re.escape(text), re.IGNORECASE | re.ASCII).search
    return lambda message: search(_c_text(message)) is not None


def _c_div(a: int, b: int) -> int:
    """Integer division as SQLite does it: truncated toward zero."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count from 1970-01-01, proleptic Gregorian (year 0 = 1 BC)."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, doy - (153 * mp + 2) // 5 + 1


def sqlite_time_text(us: int) -> str | None:
    """What the row model's SQL made of a time for LIKE: strftime of the seconds truncated toward
    zero, then '.' and the last six characters of '000000' || (us % 1000000), the remainder taking
    the sign of `us` — so a time before 1970 that is not a whole second reads a second late with
    its fraction from 1,000,000 (or, below 100,000 µs, a '-' inside). None beyond the years SQLite
    formats (julian day 0 to 9999-12-31)."""
    seconds = _c_div(us, 1_000_000)
    if not -210_866_760_000 <= seconds < 253_402_300_800:
        return None
    days, second = divmod(seconds, 86400)
    year, month, day = _civil(days)
    fraction = ("000000" + str(us - seconds * 1_000_000))[-6:]
    return (f"{year:04d}-{month:02d}-{day:02d} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
            f".{fraction}")


def _where_test(condition: WhereCondition) -> RowTest:
    like = _like_test(condition.like)
    if condition.field in ("time", "received_at"):
        index = TIME if condition.field == "time" else RECEIVED_AT
        return lambda row: like(sqlite_time_text(row[index]))
    if condition.field == "level":
        return lambda row: like(_level_name(row[LEVEL]))
    index = _COLUMN[condition.field]
    return lambda row: like(row[index])


def _starts_with(text: str | None, prefix: str) -> bool:
    """`text LIKE 'prefix%'` for a prefix of digits and separators (the `--date` one)."""
    return text is not None and text.startswith(prefix)


def _level_name(level: int) -> str | None:
    return LEVEL_NAMES[level] if 0 <= level < len(LEVEL_NAMES) else None


# -- message keywords -------------------------------------------------------------------------------

_WORD_CHAR = re.compile(r"\w")          # what the row model sent to FTS5 at all
_ALL_WORD = re.compile(r"\w+")          # what it does not also check literally
_NOT_TOKEN_AFTER = r"(?![^\W_])"       # blocks.tokens: a word is a run of [^\W_]


class _Terms:
    """The message keywords and phrases of a filter: the word sequences each needs (in folded
    text), the texts each needs literally, and the words a block's bloom must hold."""

    def __init__(self, keywords: Sequence[str], phrases: Sequence[str]):
        self.impossible = False
        self.word_patterns: list[tuple[str, re.Pattern[str]]] = []   # (first word, pattern)
        self.literals: list[str] = []
        self.bloom_words: set[str] = set()
        for keyword in keywords:
            prefix = keyword.endswith("*")
            core = keyword.rstrip("*") if prefix else keyword
            self._words(core, prefix)
            if not _ALL_WORD.fullmatch(core):
                self.literals.append(core)
        for phrase in phrases:
            self._words(phrase, False)
            self.literals.append(phrase)

    def _words(self, text: str, prefix: bool) -> None:
        if not _WORD_CHAR.search(text):
            return
        words = tokens(text)
        if not words:
            self.impossible = True     # FTS5 matches no row for a phrase of no words
            return
        # The first word, then the look back at what precedes it: a pattern that starts with its
        # literal lets the regex engine scan for it (5 times faster than a leading look-behind).
        first = re.escape(words[0])
        pattern = (first + f"(?<![^\\W_]{first})" + "".join(r"[\W_]+" + re.escape(w) for w in words[1:])
                   + ("" if prefix else _NOT_TOKEN_AFTER))
        self.word_patterns.append((words[0], re.compile(pattern)))
        self.bloom_words.update(words[:-1] if prefix else words)

    def row_test(self) -> RowTest:
        if self.impossible:
            return lambda row: False
        searches = [(first, pattern.search) for first, pattern in self.word_patterns]
        literals = [_substring_test(text) for text in self.literals]

        def test(row: Row) -> bool:
            message = row[MESSAGE]
            if searches:
                folded = fold(message)
                for first, search in searches:
                    if first not in folded or search(folded) is None:
                        return False
            for literal in literals:
                if not literal(message):
                    return False
            return True
        return test


# -- rows -------------------------------------------------------------------------------------------

def _column_test(index: int, test: ValueTest) -> RowTest:
    return lambda row: test(row[index])


def _bounds_tests(spec: FilterSpec) -> list[RowTest]:
    """seq, time and level: integer comparisons."""
    tests: list[RowTest] = []
    if spec.after_seq:
        after_seq = spec.after_seq
        tests.append(lambda row: row[SEQ] > after_seq)
    if spec.since_us is not None:
        since = spec.since_us
        tests.append(lambda row: row[TIME] >= since)
    if spec.until_us is not None:
        until = spec.until_us
        tests.append(lambda row: row[TIME] <= until)
    if spec.date_range is not None:
        (start, end), prefix = spec.date_range, spec.date_prefix or ""
        tests.append(lambda row: start <= row[TIME] < end and _starts_with(sqlite_time_text(row[TIME]), prefix))
    if spec.before_key is not None:
        before_time, before_seq = spec.before_key[0], spec.before_key[1]
        tests.append(lambda row: row[TIME] < before_time or (row[TIME] == before_time and row[SEQ] < before_seq))
    if spec.after_key is not None:
        after_time, after_seq_key = spec.after_key[0], spec.after_key[1]
        tests.append(lambda row: row[TIME] > after_time or (row[TIME] == after_time and row[SEQ] > after_seq_key))
    if spec.max_level is not None:
        max_level = spec.max_level
        tests.append(lambda row: row[LEVEL] <= max_level)
    if spec.levels:
        levels = frozenset(spec.levels)
        tests.append(lambda row: row[LEVEL] in levels)
    return tests


def row_predicate(spec: FilterSpec, origin_ids: list[int] | None) -> RowTest:
    """A test of one row (ROW_COLUMNS order) that holds exactly when the row model's SQL for
    `spec` selected it. `origin_ids`: the host filter resolved to origins (None: no host filter,
    whatever spec.host says). Rows must have their ids (blocks.fill_ids) when a `--where` names
    `id` (needs_ids)."""
    if spec.allowed_namespaces is not None and not spec.allowed_namespaces:
        return lambda row: False
    tests: list[RowTest] = []
    if spec.allowed_namespaces is not None:
        tests.append(_column_test(NAMESPACE, frozenset(spec.allowed_namespaces).__contains__))
    tests += _bounds_tests(spec)
    if origin_ids is not None:
        tests.append(_column_test(ORIGIN, frozenset(origin_ids).__contains__))
    for name in ("request_id", "user", *_VALUE_FILTERS):
        match: TextMatch | None = getattr(spec, name)
        if match is not None:
            tests.append(_column_test(_COLUMN[name], _text_test(match)))
    if spec.keywords or spec.phrases:
        tests.append(_Terms(spec.keywords, spec.phrases).row_test())
    if spec.message_regex:
        found_in = compile_message_regex(spec.message_regex).found_in
        tests.append(lambda row: row[MESSAGE] is not None and found_in(row[MESSAGE]))
    tests += [_where_test(condition) for condition in spec.where]
    if not tests:
        return lambda row: True
    if len(tests) == 1:
        return tests[0]

    def predicate(row: Row) -> bool:
        for test in tests:
            if not test(row):
                return False
        return True
    return predicate


def needs_ids(spec: FilterSpec) -> bool:
    """Whether row_predicate reads the rows' event ids (a `--where id=...`)."""
    return any(condition.field == "id" for condition in spec.where)


# -- blocks -----------------------------------------------------------------------------------------

class _BlockTests:
    """What a filter needs of a block's header, summary and bloom, compiled once."""

    def __init__(self, spec: FilterSpec):
        self.spec = spec
        self.scope = None if spec.allowed_namespaces is None else frozenset(spec.allowed_namespaces)
        self.namespace = _text_test(spec.namespace) if spec.namespace is not None else None
        self.summary: list[tuple[str, ValueTest]] = [
            (name, _text_test(match)) for name in ("log_type", "source", "app", "action")
            if (match := getattr(spec, name)) is not None]
        self.header_where: list[tuple[str, ValueTest]] = []
        self.level_where: list[ValueTest] = []
        for condition in spec.where:
            if condition.field in _HEADER_COLUMNS:
                self.header_where.append((condition.field, _like_test(condition.like)))
            elif condition.field == "level":
                self.level_where.append(_like_test(condition.like))
            elif condition.field in ("app", "log_type", "source", "action", "tier", "collector"):
                self.summary.append((condition.field, _like_test(condition.like)))
        terms = _Terms(spec.keywords, spec.phrases)
        self.impossible = terms.impossible
        self.bloom_items = sorted(terms.bloom_words)
        self.bloom_any: list[list[str]] = []     # each list: at least one of these must be held
        for match, key in ((spec.request_id, request_key), (spec.user, user_key)):
            if match is not None and not match.wildcards:
                self.bloom_any.append([key(value) for value in match.exact])
        # The same items hashed once, for the request-id and user filters of block_keys.
        self.request_pairs = _key_pairs(spec.request_id, request_key)
        self.user_pairs = _key_pairs(spec.user, user_key)

    def may_match(self, header: BlockHeader, origin_hosts: set[str] | None,
                  bloom_of: Callable[[], bytes | None], keys_checked: bool) -> bool:
        spec = self.spec
        if self.scope is not None and header.namespace not in self.scope:
            return False
        if self.impossible or not _span_may_match(spec, header):
            return False
        if origin_hosts is not None and header.host not in origin_hosts:
            return False
        if self.namespace is not None and not self.namespace(header.namespace):
            return False
        if not all(test(getattr(header, name)) for name, test in self.header_where):
            return False
        if not all(any(test(name) for name in LEVEL_NAMES[max(header.min_level, 0):]) for test in self.level_where):
            return False
        if self.summary:
            summary = json.loads(header.summary)
            for name, test in self.summary:
                values = summary.get(name)
                if values is not None and not any(test(value) for value in values):
                    return False
        if self.bloom_items or (self.bloom_any and not keys_checked):
            bloom = bloom_of()
            if bloom is None:
                return True
            if not all(bloom_may_hold(bloom, item) for item in self.bloom_items):
                return False
            if not keys_checked and not all(any(bloom_may_hold(bloom, item) for item in items)
                                            for items in self.bloom_any):
                return False
        return True


def _key_pairs(match: TextMatch | None, key: Callable[[str], str]) -> list[tuple[int, int]] | None:
    """item_hashes of a filter's exact values; None when it has none to look up (no filter, or
    a wildcard, which no filter holds)."""
    if match is None or match.wildcards:
        return None
    return [item_hashes(key(value)) for value in match.exact]


def _span_may_match(spec: FilterSpec, header: BlockHeader) -> bool:
    """The seq, time and level bounds against the block's."""
    if spec.after_seq and header.max_seq <= spec.after_seq:
        return False
    if spec.since_us is not None and header.max_time < spec.since_us:
        return False
    if spec.until_us is not None and header.min_time > spec.until_us:
        return False
    if spec.date_range is not None and (header.max_time < spec.date_range[0] or header.min_time >= spec.date_range[1]):
        return False
    if spec.before_key is not None:
        time, seq = spec.before_key[0], spec.before_key[1]
        if header.min_time > time or (header.min_time == time and header.min_seq >= seq):
            return False
    if spec.after_key is not None:
        time, seq = spec.after_key[0], spec.after_key[1]
        if header.max_time < time or (header.max_time == time and header.max_seq <= seq):
            return False
    if spec.max_level is not None and header.min_level > spec.max_level:
        return False
    return not spec.levels or max(spec.levels) >= header.min_level


_last_compiled: tuple[FilterSpec, _BlockTests] | None = None


def block_may_match(spec: FilterSpec, header: BlockHeader, origin_hosts: set[str] | None,
                    bloom_of: Callable[[], bytes | None], keys_checked: bool = False) -> bool:
    """False only when no row of the block can match `spec`: by its seq, time and level bounds,
    its stream (namespace, host), the distinct values of its summary, and its bloom filter
    (read through `bloom_of` only when the filter has words to look up, or request ids or users
    when not `keys_checked`: a block written before block_keys holds them there; None from it:
    the block is gone, and the caller finds out on reading it). `origin_hosts`: the host names
    the host filter resolved to (None: no host filter). `keys_checked`: keys_may_match said
    yes already."""
    return _compiled(spec).may_match(header, origin_hosts, bloom_of, keys_checked)


def key_lookups(spec: FilterSpec) -> tuple[list[tuple[int, int]] | None, list[tuple[int, int]] | None]:
    """The item_hashes of the exact request ids and of the exact users `spec` looks for, each
    None when it does not look for such (a wildcard value is not in a filter)."""
    tests = _compiled(spec)
    return tests.request_pairs, tests.user_pairs


def keys_may_match(spec: FilterSpec, requests: bytes | None, users: bytes | None) -> bool:
    """False only when a block's request-id and user filters (block_keys; None: not read, as the
    spec does not look in it) hold none of the request ids, or none of the users, `spec` asks for."""
    tests = _compiled(spec)
    if tests.request_pairs is not None and requests is not None and not bloom_holds_any(requests, tests.request_pairs):
        return False
    return not (tests.user_pairs is not None and users is not None and not bloom_holds_any(users, tests.user_pairs))


def _compiled(spec: FilterSpec) -> _BlockTests:
    global _last_compiled
    compiled = _last_compiled
    if compiled is None or compiled[0] is not spec:
        compiled = _last_compiled = (spec, _BlockTests(spec))
    return compiled[1]
