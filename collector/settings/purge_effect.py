"""What a retention change would do, for the page's confirmation (`PUT .../namespaces/NAME?dry_run=1`):
how many stored events the next purge would remove under the new retention — the namespace's
events older than its tier's new retention (for the defaults `*`: those of every namespace without
its own retention for that tier). Counted over the store's readers (one histogram bucket per tier),
so it costs what a count of the console's chart costs."""

from __future__ import annotations

import math
from collections.abc import Callable

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.filters import FilterSpec, build_filter_spec
from fleetlog.collector.settings.entries import DEFAULTS
from fleetlog.common.timefmt import now_us

TIERS = ("general", "security")
Histogram = Callable[[FilterSpec, int, int, int], list[tuple[int, int, int]]]


def count_older(histogram: Histogram, namespace: str | None, tier: str, cutoff_us: int) -> int:
    """Blocking: events of `namespace` (None: every one) and `tier` whose time is before `cutoff_us`."""
    if cutoff_us <= 0:
        return 0
    raw = {"where": f"tier={tier}"}
    if namespace is not None:
        raw["namespace"] = namespace
    return sum(n for _, _, n in histogram(build_filter_spec(raw), 0, cutoff_us, 1))


def next_purge_removes(config: CollectorConfig, name: str, histogram: Histogram) -> int:
    """Blocking: the events the next purge would remove from `name` under `config`'s retention."""
    now = now_us()
    total = 0
    for tier in TIERS:
        if name == DEFAULTS:
            seconds = getattr(config.retention, tier)
            if math.isinf(seconds):
                continue
            cutoff = now - int(seconds * 1_000_000)
            own = [ns for ns, r in config.retention.namespaces.items() if getattr(r, tier) is not None]
            total += count_older(histogram, None, tier, cutoff) - sum(
                count_older(histogram, ns, tier, cutoff) for ns in own)
            continue
        override = config.retention.namespaces.get(name)
        seconds = getattr(override, tier) if override is not None and getattr(override, tier) is not None else \
            getattr(config.retention, tier)
        if not math.isinf(seconds):
            total += count_older(histogram, name, tier, now - int(seconds * 1_000_000))
    return total
