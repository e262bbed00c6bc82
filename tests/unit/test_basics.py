import math
import pathlib
import subprocess
import sys

import pytest

from fleetlog.common.levels import Level, parse_level
from fleetlog.common.units import format_duration, parse_duration, parse_size
from fleetlog.common.wildcard import wildcard_match

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, level", [
    ("fatal", Level.EMERGENCY), ("PANIC", Level.EMERGENCY), ("emerg", Level.EMERGENCY), ("crit", Level.CRITICAL),
    ("err", Level.ERROR), ("Warn", Level.WARNING), ("informational", Level.INFO), ("information", Level.INFO),
    ("trace", Level.DEBUG), ("notice", Level.NOTICE), (3, Level.ERROR), ("5", Level.NOTICE),
])
def test_level_aliases(name, level):
    assert parse_level(name) == level


def test_unknown_level():
    with pytest.raises(ValueError, match="unknown level 'loud'"):
        parse_level("loud")
    with pytest.raises(ValueError):
        parse_level(8)


def test_units():
    assert parse_size("64KiB") == 65536 and parse_size("256MiB") == 256 * 1048576 and parse_size(10) == 10
    assert parse_duration("500ms") == 0.5 and parse_duration("15m") == 900 and parse_duration("1y") == 365 * 86400
    assert math.isinf(parse_duration("indefinite"))
    assert format_duration(90 * 86400) == "90d" and format_duration(0.2) == "200ms"
    with pytest.raises(ValueError):
        parse_size("12 parsecs")


def test_wildcards():
    assert wildcard_match("admin*", "admin-bob") and not wildcard_match("admin*", "bob-admin")
    assert wildcard_match("*.service", "sshd.service") and wildcard_match("a?b", "a?b")
    assert not wildcard_match("a?b", "axb")  # only * is special


def test_generated_stubs_are_up_to_date(tmp_path):
    """The committed common/pb stubs must equal what `make proto` generates from proto/."""
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), str(tmp_path)], check=True, cwd=ROOT)
    committed = ROOT / "common" / "pb"
    for fresh in tmp_path.rglob("*.py*"):
        rel = fresh.relative_to(tmp_path)
        assert (committed / rel).read_text() == fresh.read_text(), f"{rel} is stale: run `make proto`"


def test_event_ids_of_a_source_are_its_event_ids():
    import hashlib

    from fleetlog.common.ids import event_id, event_ids_of
    of = event_ids_of("web-1", "file:/var/log/app.log")
    # contract §4.2's id, spelled out: BLAKE2b-128 of "node NUL source_key NUL position".
    reference = [hashlib.blake2b(f"web-1\x00file:/var/log/app.log\x00{p}".encode(), digest_size=16).hexdigest()
                 for p in (0, 1, 120, 2**63 - 1)]
    assert [of(p) for p in (0, 1, 120, 2**63 - 1)] == reference
    assert [event_id("web-1", "file:/var/log/app.log", p) for p in (0, 1, 120, 2**63 - 1)] == reference
    assert of(5) != event_ids_of("web-2", "file:/var/log/app.log")(5)
