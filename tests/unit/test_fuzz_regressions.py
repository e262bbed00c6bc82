"""Every input the fuzzers found a bug with (tests/fuzz/regressions/<target>/) and every seed
(tests/fuzz/corpus/<target>/), replayed through its target in the normal suite: a fixed bug
stays fixed without running `make fuzz`."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from tests.fuzz.targets import TARGETS

FUZZ = pathlib.Path(__file__).resolve().parents[1] / "fuzz"
CASES = sorted((folder.name, path) for kind in ("regressions", "corpus")
               for folder in (FUZZ / kind).glob("*/") for path in folder.iterdir() if path.is_file())


def test_every_target_has_seeds():
    assert {target for target, _ in CASES} >= set(TARGETS)


@pytest.mark.parametrize(("target", "path"), [(t, p) for t, p in CASES],
                         ids=[f"{p.parent.parent.name}/{t}/{p.name}" for t, p in CASES])
def test_replay(target, path):
    TARGETS[target](path.read_bytes())


def test_the_targets_leave_no_temporary_folder_behind(tmp_path):
    """Every seed of every target replayed in a process of its own, with TMPDIR pointing at an
    empty folder: when that process has ended, the folder is empty again."""
    script = ("import pathlib, sys\n"
              "from tests.fuzz.targets import TARGETS\n"
              "for folder in sorted(pathlib.Path(sys.argv[1]).iterdir()):\n"
              "    for path in sorted(folder.iterdir()):\n"
              "        TARGETS[folder.name](path.read_bytes())\n")
    done = subprocess.run([sys.executable, "-c", script, str(FUZZ / "corpus")], capture_output=True, text=True,
                          timeout=120, cwd=FUZZ.parents[1], env={**os.environ, "TMPDIR": str(tmp_path)},
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


def test_a_nul_character_in_a_filter_is_a_usage_error_not_a_storage_error():
    from fleetlog.collector.filters import build_filter_spec
    from fleetlog.common.errors import UsageError
    with pytest.raises(UsageError, match="--message: contains a NUL character"):
        build_filter_spec({"message": "a\x00b"})


def test_times_before_the_year_1000_are_rfc3339_and_syslog_can_write_them():
    from fleetlog.collector.forward.rfc3164 import format_rfc3164
    from fleetlog.collector.forward.rfc5424 import format_rfc5424
    from fleetlog.collector.ingest import MAX_TIME_US, MIN_TIME_US
    from fleetlog.common.timefmt import format_us, parse_rfc3339_us
    assert format_us(MIN_TIME_US) == "0001-01-01T00:00:00.000000Z"
    assert format_us(MAX_TIME_US) == "9999-12-31T23:59:59.999999Z"
    assert parse_rfc3339_us(format_us(MIN_TIME_US)) == MIN_TIME_US
    event = {"time": format_us(31_536_000_000_000 * -1900), "level": "info", "host": "h", "message": "m"}
    assert format_rfc5424(event, 1, "app").startswith("<14>1 0071-04-06T00:00:00.000000Z h app ")
    assert format_rfc3164(event, 1, "app").startswith("<14>")


def test_a_bundle_manifest_with_counts_of_another_shape_is_a_verification_error(tmp_path):
    import json

    from fleetlog.common.errors import VerificationError
    from fleetlog.common.verify_bundle import verify_bundle
    from tests.fuzz.bundle_seed import seed_members
    from tests.fuzz.targets import _tar
    members = dict(seed_members())
    manifest = json.loads(members["manifest.json"])
    manifest["counts"] = [3]
    members["manifest.json"] = json.dumps(manifest).encode()
    (tmp_path / "b.tar.gz").write_bytes(_tar(members))
    with pytest.raises(VerificationError, match="manifest.json counts None events"):
        verify_bundle(str(tmp_path / "b.tar.gz"))


@pytest.mark.parametrize("key", ["log_type", "user", "host", "source", "namespace", "app", "action"])
def test_a_list_filter_without_any_value_is_a_usage_error(key):
    from fleetlog.collector.filters import build_filter_spec
    from fleetlog.common.errors import UsageError
    with pytest.raises(UsageError, match=f"--{key.replace('_', '-')}: no value in ', ,'"):
        build_filter_spec({key: ", ,"})


def test_a_relative_time_too_far_back_is_a_usage_error():
    from fleetlog.collector.filters import build_filter_spec
    from fleetlog.common.errors import UsageError
    with pytest.raises(UsageError, match="--until: '11111111111111111m' reaches back before the year 1"):
        build_filter_spec({"until": "11111111111111111m"})
    assert build_filter_spec({"since": "3650d"}, now=1_700_000_000_000_000).since_us == (
        1_700_000_000_000_000 - 3650 * 86400 * 1_000_000)
