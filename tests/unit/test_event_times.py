"""The bound on event times a peer may set (collector/event_times.py, issue 27 item 7)."""

from __future__ import annotations

import json

import pytest

from fleetlog.collector.config import CollectorConfig, IngestConfig, StorageConfig
from fleetlog.collector.event_times import TimePolicy, bound_times
from fleetlog.collector.store import IncomingEvents
from fleetlog.common.config import FieldError
from fleetlog.common.timefmt import format_us

NOW = 1_796_000_000_123_456          # the received time
DAY = 86400 * 1_000_000
HOUR = 3600 * 1_000_000
POLICY = TimePolicy(max_event_age=30 * 86400.0, max_future_skew=3600.0, max_batch_periods=3)


def events(times: list[int], fields: list[str] | None = None) -> IncomingEvents:
    n = len(times)
    return IncomingEvents(host="web-1", host_ip="127.0.0.1", source_key="k", source="file:/a.log",
                          namespace="default", log_type="application", position=list(range(n)),
                          time_us=list(times), level=bytes([6] * n), message=["m"] * n, request_id=[""] * n,
                          user=[""] * n, action=[""] * n, app=[""] * n, pid=[0] * n,
                          fields_json=fields or [""] * n, flags=bytes(n), tier=["general"] * n)


def test_the_edges_are_kept_and_one_microsecond_beyond_is_adjusted():
    oldest, newest = NOW - 30 * DAY, NOW + HOUR
    batch = [events([oldest, oldest - 1, newest, newest + 1])]
    adjusted = bound_times(batch, POLICY.bounds(NOW))
    assert adjusted == {"too_old": 1, "too_new": 1}
    assert batch[0].time_us == [oldest, NOW, newest, NOW]
    assert [json.loads(f) if f else None for f in batch[0].fields_json] == [
        None, {"original_time": format_us(oldest - 1), "time_adjusted": "too_old"},
        None, {"original_time": format_us(newest + 1), "time_adjusted": "too_new"}]


def test_the_peers_fields_stay_and_its_own_original_time_is_overwritten():
    batch = [events([NOW + 2 * HOUR], ['{"k":"v","original_time":"forged","time_adjusted":"no"}'])]
    bound_times(batch, POLICY.bounds(NOW))
    assert json.loads(batch[0].fields_json[0]) == {
        "k": "v", "original_time": format_us(NOW + 2 * HOUR), "time_adjusted": "too_new"}


def test_a_batch_keeps_the_current_period_and_the_newest_others_up_to_the_limit():
    # Five past days over two chunks, and today: today and the 3 newest past days keep their times.
    days = [NOW - k * DAY for k in range(1, 6)]
    batch = [events([NOW - 1, days[4], days[0]]), events([days[1], days[2], days[3], days[4]])]
    adjusted = bound_times(batch, POLICY.bounds(NOW))
    assert adjusted == {"too_many_periods": 3}
    assert batch[0].time_us == [NOW - 1, NOW, days[0]]
    assert batch[1].time_us == [days[1], days[2], NOW, NOW]
    assert json.loads(batch[1].fields_json[2]) == {"original_time": format_us(days[3]),
                                                   "time_adjusted": "too_many_periods"}


def test_a_batch_within_every_bound_is_left_as_it_came():
    days = [NOW - k * DAY for k in range(4)]
    batch = [events(days)]
    assert bound_times(batch, POLICY.bounds(NOW)) == {}
    assert batch[0].time_us == days and batch[0].fields_json == [""] * 4


def test_year_one_is_too_old_even_when_retention_is_indefinite():
    policy = TimePolicy(max_event_age=float("inf"))
    batch = [events([-62_135_596_800_000_000, -1, 0, NOW])]
    assert bound_times(batch, policy.bounds(NOW)) == {"too_old": 2}
    assert batch[0].time_us == [NOW, NOW, 0, NOW]


def test_the_policy_comes_from_the_ingest_section_and_the_partition_period():
    config = CollectorConfig(ingest=IngestConfig(max_event_age=86400.0 * 7, max_future_skew=60.0,
                                                 max_batch_periods=5),
                             storage=StorageConfig(partition_period=3600.0))
    assert TimePolicy.of(config) == TimePolicy(7 * 86400.0, 60.0, 5, 3600.0)
    assert CollectorConfig().ingest.max_future_skew == 3600.0


@pytest.mark.parametrize(("key", "value", "words"), [
    ("max_event_age", 3600.0, "at least 1d"),
    ("max_future_skew", 8 * 86400.0, "between 0s and 7d"),
    ("max_batch_periods", 0, "at least 1"),
])
def test_out_of_range_settings_are_refused_by_name(key, value, words):
    with pytest.raises(FieldError) as caught:
        IngestConfig(**{key: value}).validate()
    assert words in str(caught.value)
