"""A block's payload opened column by column, so a search builds rows only for the events that
may match (late materialisation).

blocks.decode_block builds every row of a block: about 1.5 µs an event, most of it Python
objects for columns nobody asked about. A search for a user, a request id or a word needs one
column first: its values are decoded (a split of one string, at C speed), the events whose
value may match are found, and only those become rows. Finding them in a string column is a
substring search over the column's text joined (C speed too): an event equal to `bob`, or whose
message holds the word `timeout`, holds that text. The payload format is blocks.py's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fleetlog.collector.store import ROW_COLUMNS
from fleetlog.collector.store.blocks import decode_column, fold, open_payload, pick_column

# Events of a block kept by a search below one in this many: their values are picked out of
# the columns' sections rather than every value decoded.
SPARSE = 16


class BlockColumns:
    """The columns of one payload, each decoded when first asked for."""

    def __init__(self, data: bytes):
        opened = open_payload(data)        # the frame, header, runs and links checked (BlockError)
        self.count = opened.count
        self.runs = opened.runs
        self.specs: dict[str, Any] = opened.specs
        self.sections = opened.sections
        self._opened = opened
        self._columns: dict[str, list[Any]] = {}

    def column(self, name: str) -> list[Any]:
        values = self._columns.get(name)
        if values is None:
            values = self._columns[name] = self._opened.seqs if name == "seq" else decode_column(self._opened, name)
        return values

    def values(self, name: str, indexes: Sequence[int]) -> list[Any]:
        """Column `name`'s values of events `indexes`, in the order given."""
        return _in_order(indexes, lambda ascending: self._values(name, ascending))

    def _values(self, name: str, ascending: list[int]) -> list[Any]:
        """Values of events `ascending` (distinct, ascending): picked out of the column's section
        when they are few and it is not decoded yet, else from the decoded column."""
        decoded = self._columns.get(name)
        if decoded is None and len(ascending) * SPARSE < self.count:
            return self._opened.seqs_of(ascending) if name == "seq" else pick_column(self._opened, name, ascending)
        decoded = self.column(name)
        return [decoded[i] for i in ascending]

    def rows(self, indexes: Sequence[int] | None = None) -> list[list[Any]]:
        """Rows (ROW_COLUMNS order, `hash` as decode_block gives it) of these events, in the
        order given; all of them, in seq order, by default."""
        if indexes is None:
            columns = [self.column(name) for name in ROW_COLUMNS[:-1]]
            columns.append(self._opened.links)
            return [list(row) for row in zip(*columns)]

        def rows_of(ascending: list[int]) -> list[list[Any]]:
            columns = [self._values(name, ascending) for name in ROW_COLUMNS[:-1]]
            columns.append(self._opened.links_of(ascending))
            return [list(row) for row in zip(*columns)]
        return [list(row) for row in _in_order(indexes, rows_of)] if _shuffled(indexes) else rows_of(list(indexes))

    def where(self, name: str, test: Callable[[Any], bool], among: Iterable[int] | None = None) -> list[int]:
        """Events (of `among`, default all) whose `name` value passes `test`."""
        values = self.column(name)
        return [i for i in (range(self.count) if among is None else among) if test(values[i])]

    def containing(self, name: str, needles: Sequence[str], folded: bool = False, whole: bool = False,
                   among: Sequence[int] | None = None, lowered: bool = False) -> list[int]:
        """Events (of `among`, default all) whose value in string column `name` holds one of
        `needles` (`whole`: is one of them; `folded`: its blocks.fold does, `lowered`: its
        str.lower() does, needles already folded or lowered); a None value holds nothing.
        Searched in the column's stored text, all values joined by NUL, without decoding it,
        where that can be done exactly (for `folded` and `lowered`: an ASCII text)."""
        chosen = range(self.count) if among is None else among
        folded = folded or lowered

        def holds(value: str | None) -> bool:
            if value is None:
                return False
            text = (value.lower() if lowered else fold(value)) if folded else value
            return text in needles if whole else any(needle in text for needle in needles)
        spec = self.specs.get(name, {})
        if "c" in spec:
            return list(chosen) if holds(spec["c"]) else []
        joined: bytes | None = self.sections[spec["s"]] if "s" in spec else None
        if joined is None or (folded and not joined.isascii()):  # folding may change lengths
            values = self.column(name)
            return [i for i in chosen if holds(values[i])]
        found = _found(joined.lower() if folded else joined, needles, whole)
        if among is not None:
            return [i for i in among if i in found]
        return sorted(found)


def _found(joined: bytes, needles: Sequence[str], whole: bool) -> set[int]:
    """Indexes of the NUL-separated values of `joined` that hold a needle (`whole`: equal one)."""
    hay = b"\x00" + joined + b"\x00" if whole else joined
    found: set[int] = set()
    for needle in needles:
        if "\x00" in needle:
            continue    # no value of a column stored as joined text holds a NUL
        data = needle.encode("utf-8", "surrogatepass")
        if whole:
            data = b"\x00" + data + b"\x00"
        pos = search = 1 if whole else 0    # pos: where value `index` starts in hay
        index = 0
        while (start := hay.find(data, search - (1 if whole else 0))) >= 0:
            inside = start + 1 if whole else start
            index += hay.count(b"\x00", pos, inside)
            found.add(index)
            end = hay.find(b"\x00", inside + (len(data) - 2 if whole else 0))
            if end < 0:
                break
            pos = search = end + 1
            index += 1
    return found


def _shuffled(indexes: Sequence[int]) -> bool:
    """Not distinct and ascending."""
    return any(b <= a for a, b in itertools.pairwise(indexes))


def _in_order(indexes: Sequence[int], of_ascending: Callable[[list[int]], list[Any]]) -> list[Any]:
    """of_ascending(the distinct indexes, ascending), handed back in the order of `indexes`."""
    if not _shuffled(indexes):
        return of_ascending(list(indexes))
    ascending = sorted(set(indexes))
    found = dict(zip(ascending, of_ascending(ascending)))
    return [found[i] for i in indexes]
