"""The alert evaluator: one thread that reads committed events in order (as a forwarder does:
a cursor per chain, one lease holder per cluster, so counts cover every collector's events and an
alert fires once per cluster), counts the matching ones per (rule, group) in sliding windows, and
every evaluation_interval decides what fires and what resolves.

An alert is a rule and one group's values. It is *pending* from the evaluation that first sees
its count at or above the threshold, *firing* once it has stayed there for the rule's `for`, and
*resolved* at the first evaluation that sees its count below the threshold again. Firing and
resolved alerts are sent to every Alertmanager by a sender thread of their own (an unreachable
one never holds up counting); firing ones again every resend_delay, with an
endsAt a few resend delays ahead (as Prometheus does), so an Alertmanager that lost them learns
them again and one that no longer hears of them resolves them itself.

The cursor is saved in the store (the forwarders' cursor table or file, under the name
EVALUATOR_NAME) about once a second, so a restart or a takeover by another collector reads on
from there, not from the beginning; counts are in memory, so events counted before that cursor
are not counted again (docs/alerting.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fleetlog.collector.alerting.alertmanager import Alert, Receiver
from fleetlog.collector.alerting.counts import RuleCounts
from fleetlog.collector.alerting.matching import COLUMN, CompiledRule, RuleIndex
from fleetlog.collector.alerting.rules import EVALUATOR_NAME, AlertingConfig
from fleetlog.collector.internal import InternalEvent
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.store import Backend, Cursor, EventReader
from fleetlog.common.errors import FleetlogError
from fleetlog.common.levels import LEVEL_NAMES, Level
from fleetlog.common.timefmt import format_us

log = logging.getLogger("fleetlog.collector.alerting")


_TIME, _RECEIVED = COLUMN["time"], COLUMN["received_at"]
_LEVEL = COLUMN["level"]

# record(events): store the evaluator's own events (alert/firing, alert/resolved).
Recorder = Callable[[list[InternalEvent]], None]


@dataclass
class ActiveAlert:
    rule: CompiledRule
    group: tuple[str, ...]
    labels: dict[str, str]
    pending_since: float
    count: int
    firing_since: float = 0.0          # 0: pending
    last_sent: float = 0.0


def iso(seconds: float) -> str:
    return format_us(int(seconds * 1_000_000))


class Evaluator:
    batch_events = 5000
    save_interval = 1.0

    def __init__(self, config: AlertingConfig, backend: Backend, metrics: CollectorMetrics, record: Recorder,
                 node_name: Callable[[], str], console_url: str):
        self.backend, self.metrics, self.record = backend, metrics, record
        self.node_name, self.console_url = node_name, console_url.rstrip("/")
        self.lease = backend.lease(EVALUATOR_NAME)
        self.cursor_store = backend.cursor_store(EVALUATOR_NAME)
        self.state = "starting"
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()      # the configuration and the alerts, between the thread and status()
        self._configure(config)
        self._thread = threading.Thread(target=self._run, name="alert-evaluator", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="alert-sender", daemon=True)
        self._send_wake = threading.Event()
        self._started = False

    def _configure(self, config: AlertingConfig) -> None:
        self.config = config
        self.index = RuleIndex(config.rules)
        self.counts = [RuleCounts(c.rule.window, config.max_groups_per_rule) for c in self.index.rules]
        self.active: dict[tuple[int, tuple[str, ...]], ActiveAlert] = {}
        self.receivers = [Receiver(url) for url in config.alertmanager_urls]
        self._dropped = [self.metrics.alert_groups_dropped.labels(c.rule.name) for c in self.index.rules]
        self.metrics.alerts_firing.set(0)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (once: a reload that brings the first rules starts it)."""
        if not self._started:
            self._started = True
            self._thread.start()
            self._sender.start()

    def reload(self, config: AlertingConfig, console_url: str) -> None:
        """New rules: a rule left exactly as it was keeps its counts and its alerts; the alerts
        of a rule changed or removed are resolved (and sent so)."""
        self.console_url = console_url.rstrip("/")
        if config == self.config:
            return
        with self._lock:
            old_counts = {c.rule.key(): counts for c, counts in zip(self.index.rules, self.counts)}
            old_alerts = list(self.active.values())
            receivers = self.receivers
            self._configure(config)
            kept = {c.rule.key(): c for c in self.index.rules if c.rule.key() in old_counts}
            for key, compiled in kept.items():
                self.counts[compiled.index] = old_counts[key]
            now = time.time()
            for alert in old_alerts:
                same = kept.get(alert.rule.rule.key())
                if same is not None:
                    alert.rule = same
                    self.active[(same.index, alert.group)] = alert
                elif alert.firing_since:
                    self._resolve(alert, now, 0, reason="its rule was changed or removed")
            # What the old Alertmanagers had not accepted yet goes to the new list too.
            for receiver in receivers:
                for new in self.receivers:
                    new.queue(receiver.pending())

    def stop(self, timeout: float = 5.5) -> None:
        self._stopping.set()
        self.wake.set()
        self._send_wake.set()
        deadline = time.monotonic() + timeout
        for thread in (self._thread, self._sender):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        self.metrics.alert_evaluator_active.set(0)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        reader: EventReader | None = None
        cursor: Cursor = {}
        saved: Cursor | None = None        # None: not holding the lease
        saved_at = 0.0
        next_evaluation = time.monotonic()
        try:
            while not self._stopping.is_set():
                try:
                    reader = reader or self.backend.reader()
                    self.wake.clear()
                    if not self._holds_lease(saved is not None):
                        saved = None
                        self.wake.wait(1.0)
                        continue
                    if saved is None:
                        # Just taken: on from the cursor the last holder saved (or from now).
                        cursor = self.cursor_store.load() or reader.heads()
                        saved = dict(cursor)
                    pages = reader.read_after(cursor, None, self.batch_events)
                    if pages:
                        with self._lock:
                            self._count(pages)
                        cursor = {**cursor, **{chain: rows[-1][0] for chain, rows in pages}}
                    if cursor != saved and time.monotonic() - saved_at >= self.save_interval:
                        self.cursor_store.save(cursor)
                        saved, saved_at = dict(cursor), time.monotonic()
                    if time.monotonic() >= next_evaluation:
                        self.evaluate()
                        next_evaluation = time.monotonic() + self.config.evaluation_interval
                    if not pages:
                        self.wake.wait(max(0.0, min(1.0, next_evaluation - time.monotonic())))
                except (FleetlogError, OSError) as exc:
                    log.error("alert evaluator: %s; retrying", exc)
                    self.state = f"failing: {exc}"
                    if reader is not None:
                        reader.close()
                        reader = None
                    self._stopping.wait(1.0)
            if saved is not None and cursor != saved:
                self.cursor_store.save(cursor)
        except Exception:  # a bug must not end alerting silently
            log.exception("alert evaluator stopped by an unexpected error")
            self.state = "crashed"
        finally:
            if reader is not None:
                reader.close()
            self.lease.release()

    def _holds_lease(self, held_before: bool) -> bool:
        """Whether this collector evaluates now; one that just lost the lease forgets its counts
        and alerts (the new holder decides from here on)."""
        if self.lease.held():
            self.state = "evaluating"
            self.metrics.alert_evaluator_active.set(1)
            return True
        if held_before:
            with self._lock:
                self._configure(self.config)
        self.state = "standby: another collector evaluates the rules"
        self.metrics.alert_evaluator_active.set(0)
        return False

    def _count(self, pages: list[tuple[str, list[Any]]]) -> None:
        now = time.time()
        matches = self.index.matches
        counts, dropped = self.counts, self._dropped
        events = 0
        for _chain, rows in pages:
            events += len(rows)
            for row in rows:
                matched = matches(row)
                if not matched:
                    continue
                time_s = min(row[_TIME], row[_RECEIVED]) / 1e6
                for compiled in matched:
                    group = tuple(_label_value(row[i], i) for i in compiled.group_columns)
                    if not counts[compiled.index].add(group, time_s, now):
                        dropped[compiled.index].inc()
        self.metrics.alert_events_evaluated.inc(events)

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(self) -> None:
        """Decide what fires and what resolves; the sender thread then sends it."""
        started = time.perf_counter()
        now = time.time()
        with self._lock:
            for compiled, counts in zip(self.index.rules, self.counts):
                counts.expire(now)
                threshold = compiled.rule.threshold
                for group, group_counts in counts.groups.items():
                    if group_counts.total >= threshold:
                        self._above(compiled, group, group_counts.total, now)
            for key, alert in list(self.active.items()):
                count = self.counts[alert.rule.index].count(alert.group)
                if count < alert.rule.rule.threshold:
                    del self.active[key]
                    if alert.firing_since:
                        self._resolve(alert, now, count)
                    continue
                alert.count = count
                if not alert.firing_since and now - alert.pending_since >= alert.rule.rule.for_:
                    self._fire(alert, now)
                elif alert.firing_since and now - alert.last_sent >= self.config.resend_delay:
                    self._send(alert, now)
            self.metrics.alerts_firing.set(sum(1 for a in self.active.values() if a.firing_since))
        self.metrics.alert_evaluation_seconds.observe(time.perf_counter() - started)
        self.metrics.alert_last_evaluation.set(now)
        self._send_wake.set()

    def _send_loop(self) -> None:
        """The sender thread: deliver after each evaluation (and retry every second while an
        Alertmanager has alerts waiting), so a slow or unreachable one never holds up counting."""
        while not self._stopping.is_set():
            self._send_wake.wait(1.0)
            self._send_wake.clear()
            try:
                self.deliver()
            except Exception:  # a bug must not end delivery silently
                log.exception("alert delivery failed unexpectedly")

    def deliver(self) -> None:
        """Send what waits for each Alertmanager, one after the other."""
        with self._lock:
            receivers = list(self.receivers)
        for receiver in receivers:
            if self._stopping.is_set() and receiver.failures:
                continue     # stopping: no new wait on one already failing
            try:
                accepted = receiver.deliver()
                if accepted:
                    self.metrics.alert_notifications.labels(receiver.label).inc(accepted)
                if receiver.failures:
                    log.warning("alertmanager %s: accepting alerts again after %d failed attempts",
                                receiver.label, receiver.failures)
                receiver.failures = 0
            except OSError as exc:
                self.metrics.alert_notifications_failed.labels(receiver.label).inc()
                receiver.failures += 1
                receiver.last_error, receiver.last_error_at = str(exc), time.time()
                if receiver.failures == 1:
                    log.error("alertmanager %s: %s; retrying every second", receiver.label, exc)

    def _above(self, compiled: CompiledRule, group: tuple[str, ...], count: int, now: float) -> None:
        key = (compiled.index, group)
        if key in self.active:
            return
        labels = {name: value for name, value in zip(compiled.rule.group_by, group)}
        labels.update(alertname=compiled.rule.name, severity=compiled.rule.severity, collector=self.node_name())
        self.active[key] = ActiveAlert(compiled, group, labels, pending_since=now, count=count)

    def _fire(self, alert: ActiveAlert, now: float) -> None:
        alert.firing_since = now
        rule = alert.rule.rule
        summary = self._summary(alert)
        log.warning("alert %s firing: %s", rule.name, summary)
        self.record([InternalEvent("alert/firing", f"alert {rule.name} firing: {summary}", level=Level.WARNING,
                                   fields={"alertname": rule.name, "labels": alert.labels, "count": alert.count,
                                           "threshold": rule.threshold, "window": rule.window,
                                           "summary": summary})])
        self._send(alert, now)

    def _resolve(self, alert: ActiveAlert, now: float, count: int, reason: str = "") -> None:
        rule = alert.rule.rule
        because = f" ({reason})" if reason else ""
        log.info("alert %s resolved%s", rule.name, because)
        self.record([InternalEvent("alert/resolved", f"alert {rule.name} resolved{because}: {self._summary(alert)}",
                                   level=Level.NOTICE,
                                   fields={"alertname": rule.name, "labels": alert.labels, "count": count,
                                           "threshold": rule.threshold,
                                           "firing_since": iso(alert.firing_since)})])
        self._queue(self._payload(alert, ends=now, resolved=True))

    def _send(self, alert: ActiveAlert, now: float) -> None:
        alert.last_sent = now
        # endsAt ahead as Prometheus sets it: the alert stays active at Alertmanager while we send.
        ends = now + 4 * max(self.config.resend_delay, self.config.evaluation_interval)
        self._queue(self._payload(alert, ends=ends, resolved=False))

    def _queue(self, payload: Alert) -> None:
        for receiver in self.receivers:
            receiver.queue([payload])

    def _summary(self, alert: ActiveAlert) -> str:
        rule = alert.rule.rule
        return rule.render_summary(dict(zip(rule.group_by, alert.group)), alert.count)

    def _payload(self, alert: ActiveAlert, ends: float, resolved: bool) -> Alert:
        payload: Alert = {"labels": alert.labels, "annotations": {"summary": self._summary(alert)},
                          "startsAt": iso(alert.firing_since), "endsAt": iso(ends), "_resolved": resolved}
        if self.console_url:
            payload["generatorURL"] = self.generator_url(alert)
        return payload

    def generator_url(self, alert: ActiveAlert) -> str:
        """The console's events page with the rule's filters, the group's values and the window."""
        rule = alert.rule.rule
        query = dict(rule.filters)
        for name, value in zip(rule.group_by, alert.group):
            if name == "level":
                query["level"] = value
            elif name in ("user", "host", "namespace", "source", "log_type", "app", "action", "request_id"):
                query[name] = value
        query["since"] = iso(alert.firing_since - rule.window - rule.for_)
        return f"{self.console_url}/events?{urlencode(query)}"

    # -- what status shows ---------------------------------------------------------------------

    def status(self) -> tuple[str, list[tuple[dict[str, str], str, int, float]], list[tuple[str, str, float]]]:
        """(state, [(labels, summary, count, firing since)], [(Alertmanager, last error, its time)])."""
        with self._lock:
            alerts = [(dict(a.labels), self._summary(a), a.count, a.firing_since)
                      for a in self.active.values() if a.firing_since]
            receivers = [(r.label, r.last_error if r.failures else "", r.last_error_at) for r in self.receivers]
        return self.state, sorted(alerts, key=lambda a: (a[0]["alertname"], sorted(a[0].items()))), receivers


def _label_value(value: Any, column: int) -> str:
    """A group_by value as a label value: a level by its name, nothing as ""; bounded in size
    (peers write these values)."""
    if column == _LEVEL:
        return LEVEL_NAMES[value] if isinstance(value, int) and 0 <= value < len(LEVEL_NAMES) else str(value)
    if value is None:
        return ""
    text = str(value)[:256]
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)
