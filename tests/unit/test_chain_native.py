"""The writer's chain step in C (common/_chain_native.c) against the reference canonical form.

The import is not guarded: `make test` builds the extension (setup.py; OpenSSL's headers come
with the system packages), and a missing build must fail here rather than pass on the fallback.
"""

import json
import random

import pytest

from fleetlog.common import _chain_native, chain

KEYS = chain.CANONICAL_KEYS
COLUMNS = tuple(range(len(KEYS)))
LINK = len(KEYS)
# Every ASCII character (controls, quote, backslash, DEL), and non-ASCII from 2, 3 and 4 UTF-8 bytes,
# the JavaScript line separators json leaves alone, and the replacement character.
ALPHABET = [chr(c) for c in range(0x80)] + ["é", "ß", "✓", "€", "\u2028", "\u2029", "\ufffd", "😀", "𝄞"]


def _value(rng: random.Random):
    kind = rng.random()
    if kind < 0.15:
        return None
    if kind < 0.35:
        return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**70, rng.randint(-10**15, 10**15)])
    if kind < 0.4:
        return rng.choice([True, False])
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))


def _reference(head: bytes, rows: list[list]) -> tuple[bytes, list[bytes]]:
    links = []
    for row in rows:
        event = dict(zip(KEYS, row))
        head = chain.extend(head, json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
        links.append(head)
    return head, links


def _rows(rng: random.Random, count: int) -> list[list]:
    return [[_value(rng) for _ in KEYS] + [None] for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
def test_links_equal_the_reference_for_any_stored_value(seed):
    rng = random.Random(seed)
    rows = _rows(rng, 5000)  # more than two of the C code's 2,048-row steps
    start = bytes(range(32))
    expected_head, expected_links = _reference(start, rows)
    fallback_rows = [list(row) for row in rows]

    head = _chain_native.link_rows(start, rows, KEYS, COLUMNS, LINK)

    assert head == expected_head
    assert [row[LINK] for row in rows] == expected_links
    assert chain._python_link_rows(start, fallback_rows, COLUMNS, LINK) == expected_head
    assert [row[LINK] for row in fallback_rows] == expected_links


def test_values_repeated_from_row_to_row_are_encoded_per_row():
    """The C code reuses the encoding of a value seen in the row before (same object); a value that
    changes and changes back must still be encoded each time, and one repeated over every row
    (the "x" columns) across the steps the rows are hashed in."""
    a, b, c = "host-a", "host-\"b\"", "hôte-ç"
    rows = [[(a, b, c)[i % 3] if i % 5 else b, i, None] + ["x"] * (len(KEYS) - 3) + [None] for i in range(5000)]
    head = _chain_native.link_rows(chain.GENESIS, rows, KEYS, COLUMNS, LINK)
    assert (head, [row[LINK] for row in rows]) == _reference(chain.GENESIS, [row[:LINK] for row in rows])


def test_the_writer_step_uses_the_store_row_layout():
    """chain.link_rows with the writer's column map links exactly the canonical form of its rows."""
    from fleetlog.collector.store import ROW_COLUMNS
    from fleetlog.collector.store.sqlite_block_purge import CHAIN_COLUMNS

    row = [7, 1, 120, "ab" * 16, 1_700_000_000_000_000, 1_700_000_000_500_000, "web-1", "10.0.0.5", "c1", "default",
           "file:/var/log/auth.log", "audit", "sshd", 4242, 5, "req-1", "alice", "login", 'msg "quoted" ✓', '{"k":"v"}',
           "security", 0, None]
    link = ROW_COLUMNS.index("hash")
    event = {name: row[index] for name, index in zip(KEYS, CHAIN_COLUMNS)}
    head = chain.link_rows(chain.GENESIS, [row], CHAIN_COLUMNS, link)
    assert head == row[link] == chain.extend(chain.GENESIS, chain.canonical_bytes(event))
    assert chain.NATIVE


@pytest.mark.parametrize("bad, error", [(1.5, TypeError), (b"bytes", TypeError), ("lone \ud800 surrogate", UnicodeEncodeError)])
def test_a_value_without_a_canonical_form_changes_no_row(bad, error):
    rows = _rows(random.Random(1), 300)
    rows[299][5] = bad  # in the second block: the first block's links are computed by then
    with pytest.raises(error):
        _chain_native.link_rows(chain.GENESIS, rows, KEYS, COLUMNS, LINK)
    assert all(row[LINK] is None for row in rows)


def test_no_rows_leave_the_head_as_it_was():
    head = bytes(range(32))
    assert _chain_native.link_rows(head, [], KEYS, COLUMNS, LINK) == head


@pytest.mark.parametrize("head, rows, error", [
    (b"short", [], ValueError),
    (bytes(32), [(1, 2)], TypeError),            # tuples cannot take the link
    (bytes(32), [[1, 2]], TypeError),            # no link column
])
def test_misuse_is_an_exception_not_a_crash(head, rows, error):
    with pytest.raises(error):
        _chain_native.link_rows(head, rows, KEYS, COLUMNS, LINK)


def test_more_keys_than_a_repeat_mask_holds_is_refused():
    keys = tuple(f"k{i:02d}" for i in range(65))
    with pytest.raises(ValueError):
        _chain_native.link_rows(bytes(32), [[0] * 66], keys, tuple(range(65)), 65)


def _table(rows: list[list]) -> list[list]:
    """The rows kept by column, as the writer keeps a transaction's events."""
    return [list(column) for column in zip(*rows)]


@pytest.mark.parametrize("seed", range(3))
def test_a_table_by_column_links_as_its_rows_do(seed):
    rows = _rows(random.Random(seed), 9000)  # more than four of the C code's 2,048-row steps
    start = bytes(range(32))
    expected_head, expected_links = _reference(start, rows)
    table, fallback = _table(rows), _table(rows)

    assert _chain_native.link_columns(start, table, KEYS, COLUMNS, LINK) == expected_head
    assert table[LINK] == expected_links
    assert chain._python_link_columns(start, fallback, COLUMNS, LINK) == expected_head
    assert fallback[LINK] == expected_links


@pytest.mark.parametrize("bad, error", [(1.5, TypeError), ("lone \ud800 surrogate", UnicodeEncodeError)])
def test_a_table_value_without_a_canonical_form_changes_no_link(bad, error):
    table = _table(_rows(random.Random(2), 5000))
    table[5][4999] = bad     # in the second step
    with pytest.raises(error):
        _chain_native.link_columns(chain.GENESIS, table, KEYS, COLUMNS, LINK)
    assert all(link is None for link in table[LINK])


@pytest.mark.parametrize("table", [
    [],                                           # no columns
    [[1]] * LINK,                                 # no link column
    [[1, 2]] * LINK + [[None]],                   # columns longer than the link column
    [[1]] * (LINK - 1) + [(1,), [None]],          # a column that is not a list
])
def test_a_misshapen_table_is_an_exception_not_a_crash(table):
    with pytest.raises(TypeError):
        _chain_native.link_columns(bytes(32), table, KEYS, COLUMNS, LINK)
    assert _chain_native.link_columns(bytes(32), [[]] * (LINK + 1), KEYS, COLUMNS, LINK) == bytes(32)
