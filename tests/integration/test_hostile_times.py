"""Hostile event times (issue 27, item 7): a batch with the years 1 and 9999 and 1,500 distinct
days is stored once, each event exactly once, with times the collector can live with — the
received time where the sent one is out of bounds or needs one partition too many, the sent time
kept in fields.original_time and the reason in fields.time_adjusted — and it creates a bounded,
exact number of partition files; a newest-first view starts with the real newest event."""

from __future__ import annotations

import json

from fleetlog.common.timefmt import format_us, now_us
from tests.harness import Cluster, search_json
from tests.hostile_peer import batch, chunk, exchange, hello, hostile_times_chunk, run

DISTINCT_DAYS = 1500
MAX_BATCH_PERIODS = 32      # [ingest] max_batch_periods by default
ADJUSTED = "fleetlog_collector_events_time_adjusted_total"


def general_partitions(collector) -> set[str]:
    folder = collector.config_path.parent / "data" / "partitions"
    return {p.name for p in folder.glob("general-*.db")}


def test_a_batch_of_hostile_times_is_stored_once_with_bounded_times_and_partitions(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        # max_batch_periods left at its default (32): what every collector gets.
        collector = cluster.collector(storage={"writer_shards": 1})
        before = general_partitions(collector)
        now = now_us()
        hostile = hostile_times_chunk(now, DISTINCT_DAYS)
        sent = list(hostile.time_us)
        replies, code, details = run(exchange(collector.address, [hello("hostile"), batch(1, [hostile])]))
        assert code is None, (code, details)
        assert [(r.batch_id, r.stored, r.error) for r in replies] == [(1, len(sent), "")]
        acked = now_us()

        # Today's partition and the 32 newest of the 1,500 days: exactly 33 new files.
        created = general_partitions(collector) - before
        assert len(created) == MAX_BATCH_PERIODS + 1, sorted(created)

        stored = search_json(collector, "--source", "file:/hostile-times.log", "--order", "asc")
        by_message = {e["message"]: e for e in stored}
        assert len(stored) == len(by_message) == len(sent)        # each event exactly once
        kept, adjusted = {}, {}
        for i, time_us in enumerate(sent):
            event = by_message[f"hostile {i}"]
            fields = event.get("fields") or {}
            if "time_adjusted" in fields:
                adjusted[i] = fields["time_adjusted"]
                assert fields["original_time"] == format_us(time_us)
                assert format_us(now) <= event["time"] <= format_us(acked)
            else:
                kept[i] = event["time"]
                assert event["time"] == format_us(time_us)
        assert adjusted[0] == "too_old" and adjusted[1] == "too_new"
        # The newest 32 days keep their times; every older day got the received time.
        assert sorted(kept) == list(range(2, 2 + MAX_BATCH_PERIODS))
        assert set(adjusted) == set(range(len(sent))) - set(kept)
        assert {r for i, r in adjusted.items() if i >= 2} == {"too_many_periods"}
        assert collector.metric(ADJUSTED, {"reason": "too_old"}) == 1
        assert collector.metric(ADJUSTED, {"reason": "too_new"}) == 1
        assert collector.metric(ADJUSTED, {"reason": "too_many_periods"}) == DISTINCT_DAYS - MAX_BATCH_PERIODS

        # A real event that comes after: first in a newest-first view, not the year 9999.
        real = chunk(1, source="file:/real.log", message="real newest")
        real.time_us[0] = acked + 1_000_000
        replies, code, _ = run(exchange(collector.address, [hello("web-1"), batch(1, [real])]))
        assert code is None and [r.stored for r in replies] == [1]
        newest = search_json(collector, "--log-type", "application", "--order", "desc", "--limit", "3")
        assert newest[0]["message"] == "real newest 0"
        assert newest[0]["time"] == format_us(acked + 1_000_000)
        assert all(e["time"] <= format_us(acked + 1_000_000) for e in newest)

        # The agents' fields are searchable: every adjusted event is found by its flag.
        found = search_json(collector, "--where", 'fields=%"time_adjusted"%')
        assert len(found) == len(adjusted)
        assert all(json.dumps(e["fields"]).count("original_time") == 1 for e in found)
    finally:
        cluster.stop_all()
