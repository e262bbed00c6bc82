"""Alerts from the event log (contract §11): rules over the committed events, counted in sliding
windows as the events are committed, delivered to Prometheus Alertmanager.

- rules.py: the `[alerting]` section and its rules, validated at start and at reload;
- matching.py: a rule's filters as a test of one stored row, and the index that spares an event
  the rules it cannot match;
- counts.py: per (rule, group) counts in a sliding window of buckets;
- evaluator.py: the thread that reads committed events after its cursor under the lease, counts
  them and decides every evaluation_interval what fires and what resolves;
- alertmanager.py: the Alertmanager v2 client (POST /api/v2/alerts to every URL).
"""
