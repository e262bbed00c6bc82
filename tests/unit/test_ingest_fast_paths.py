"""The ingest path's shortcuts give the answers of what they replace: the fields_json check calls
the JSON decoder's scanner directly, and tiers are looked up once per distinct (action, app)."""

from __future__ import annotations

import json

import pytest

from fleetlog.collector.classify import Classifier
from fleetlog.collector.config import CollectorConfig, RetentionConfig, TierRule
from fleetlog.collector.ingest import _is_json_object

TEXTS = ['{}', '{"a":1}', ' {"a":1} ', '{"a":1}\n', '\t{}', '{"a":1}x', '{"a":1}{}', '[]', '1', '"s"', 'null',
         '{"a":NaN}', '{"a":Infinity}', '{"a"}', '{', '', ' ', '{"a":"\\ud800"}', '{"é":"✓"}',
         '{"a":' * 100_000 + '1' + '}' * 100_000, '{"a":[' + '[' * 5000 + ']' * 5000 + ']}', '\x00{}']


def _reference(text: str) -> bool:
    try:
        return type(json.loads(text)) is dict
    except (ValueError, RecursionError):
        return False


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_the_fields_check_answers_as_json_loads(text):
    assert _is_json_object(text) == _reference(text)


def test_tiers_per_event_follow_the_rules_for_each_action_and_app():
    config = CollectorConfig(node_name="c1", retention=RetentionConfig(rules=(
        TierRule(tier="security", action=("login",)), TierRule(tier="security", app=("vault",), log_type=("audit",)))))
    classifier = Classifier(config)
    actions = ["", "login", "", "logout", "login"]
    apps = ["", "", "vault", "", "vault"]
    tiers = classifier.tiers(log_type="application", namespace="default", source="file:/a", actions=actions, apps=apps)
    assert tiers == ["general", "security", "general", "general", "security"]
    audit = classifier.tiers(log_type="audit", namespace="default", source="file:/a", actions=actions, apps=apps)
    assert audit == ["general", "security", "security", "general", "security"]
    same = classifier.tiers(log_type="application", namespace="default", source="file:/a", actions=[""] * 3,
                            apps=[""] * 3)
    assert same == ["general"] * 3
