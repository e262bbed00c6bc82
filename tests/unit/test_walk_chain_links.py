"""common/verify.walk_chain over stored links of both lengths: a block keeps four bytes of each
event's link and the whole link at each run's end; PostgreSQL and the row model keep whole links."""

from __future__ import annotations

import pytest

from fleetlog.common import chain
from fleetlog.common.verify import ChainFailures, Report, walk_chain

SEQ = chain.CANONICAL_KEYS.index("seq")


def rows_of(count: int) -> list[list]:
    """`count` chained rows (CANONICAL_KEYS values, then the whole link)."""
    rows, link = [], chain.GENESIS
    for seq in range(1, count + 1):
        values = {key: None for key in chain.CANONICAL_KEYS}
        values.update(seq=seq, id=f"e{seq}", time=seq, received_at=seq, host="web-1", level=6,
                      message=f"line {seq}", tier="general")
        row = [values[key] for key in chain.CANONICAL_KEYS]
        link = chain.extend(link, chain.canonical_values(row))
        rows.append([*row, link])
    return rows


def walked(rows: list[list]) -> tuple[int, int | None]:
    """(events walked, first failing seq)."""
    failures, report = ChainFailures(), Report()
    walk_chain(rows, {}, set(), failures, report)
    return report.events, failures.first.seq if failures.first else None


def test_prefixes_and_whole_links_both_match():
    rows = rows_of(6)
    for row in rows[:2] + rows[3:5]:
        row[-1] = row[-1][:4]            # two runs, 1-3 and 4-6, whole links at their ends
    assert walked(rows) == (6, None)


@pytest.mark.parametrize("stored", [
    lambda link: link[:3],                          # shorter than a block keeps: proves nothing
    lambda link: b"",
    lambda link: bytes([link[0] ^ 1]) + link[1:4],  # a prefix that is not this event's
    lambda link: link[:31] + bytes([link[31] ^ 1]),  # a whole link differing in its last byte
    lambda link: link + b"\x00",                    # longer than a link
])
def test_a_stored_link_that_is_not_a_prefix_of_four_bytes_or_more_is_named(stored):
    rows = rows_of(6)
    rows[3][-1] = stored(rows[3][-1])
    assert walked(rows) == (3, 4)
