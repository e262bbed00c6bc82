"""Classification of incoming events: the namespace's minimum level (contract §4.5) and the
retention tier from `retention.rules` (contract §4.6). Plain functions, testable without a server."""

from __future__ import annotations

from collections.abc import Sequence

from fleetlog.collector.config import CollectorConfig, TierRule
from fleetlog.common.wildcard import wildcard_match


def _any(patterns: Sequence[str], value: str) -> bool:
    return any(wildcard_match(p, value) for p in patterns)


def rule_matches(rule: TierRule, *, log_type: str, action: str, namespace: str, source: str, app: str) -> bool:
    """Every non-empty list of the rule must have a pattern matching the event's value."""
    return ((not rule.log_type or _any(rule.log_type, log_type))
            and (not rule.action or _any(rule.action, action))
            and (not rule.namespace or _any(rule.namespace, namespace))
            and (not rule.source or _any(rule.source, source))
            and (not rule.app or _any(rule.app, app)))


class Classifier:
    """Tiers per event, cached per distinct (chunk attributes, action, app): a batch repeats them."""

    def __init__(self, config: CollectorConfig):
        self.config = config
        self._cache: dict[tuple[str, str, str, str, str], str] = {}

    def tier(self, *, log_type: str, action: str, namespace: str, source: str, app: str) -> str:
        key = (log_type, action, namespace, source, app)
        tier = self._cache.get(key)
        if tier is None:
            tier = "general"
            for rule in self.config.retention.rules:
                if rule_matches(rule, log_type=log_type, action=action, namespace=namespace,
                                source=source, app=app):
                    tier = rule.tier
                    break
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = tier
        return tier

    def tiers(self, *, log_type: str, namespace: str, source: str, actions: Sequence[str],
              apps: Sequence[str]) -> list[str]:
        # Looked up once per distinct (action, app) of the chunk: most chunks have one or a few,
        # and most have one action and one app, found by two C passes (no pair made an event).
        if actions and actions.count(actions[0]) == len(actions) and apps.count(apps[0]) == len(apps):
            tier = self.tier(log_type=log_type, action=actions[0], namespace=namespace, source=source, app=apps[0])
            return [tier] * len(actions)
        of = {pair: self.tier(log_type=log_type, action=pair[0], namespace=namespace, source=source, app=pair[1])
              for pair in set(zip(actions, apps))}
        if len(of) == 1:
            return [next(iter(of.values()))] * len(actions)
        return [of[pair] for pair in zip(actions, apps)]

    def threshold(self, namespace: str) -> int:
        return int(self.config.namespace_level(namespace))
