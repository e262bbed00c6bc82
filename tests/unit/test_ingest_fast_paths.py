"""The ingest path's shortcuts give the answers of what they replace: the fields_json check calls
the JSON decoder's scanner directly, and only for the texts the C grammar check does not certify
as objects; tiers are looked up once per distinct (action, app)."""

from __future__ import annotations

import json
import random

import pytest

from fleetlog.collector.classify import Classifier
from fleetlog.collector.config import CollectorConfig, RetentionConfig, TierRule
from fleetlog.collector.ingest import _is_json_object, _relayed_fields, _uncertain_objects

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


# Near misses of the C check's grammar: numbers, escapes, literals, nesting, whitespace, non-ASCII.
MORE = ['{"a":-0}', '{"a":-}', '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":1e}', '{"a":1E+5}', '{"a":-1.5e-3}',
        '{"a":"\\u12G4"}', '{"a":"\\x"}', '{"a":"\\/"}', '{"a":"\t"}', '{"a":"\x7f"}', '{"a":tru}',
        '{"a":true,"b":false,"c":null}', '{"a":[1,2,]}', '{"a":1,}', '{,}', '{"a" :1 , "b": [ ] }',
        '\ufeff{}', '{"a":"b"}\u00a0', '{"a":' * 70 + '1' + '}' * 70, '{"a":' * 60 + '1' + '}' * 60,
        '{"a":[]}', '{"a":{}}', '{"":""}', '{"a":"\\"}', '{"a":"\\\\"}', '{"a":1}\n\r\t ', '{}}']


@pytest.mark.parametrize("text", TEXTS + MORE, ids=range(len(TEXTS + MORE)))
def test_the_c_check_certifies_only_objects(text):
    """What the C check does not list, json.loads takes as a dict; what it lists is decided by
    json.loads (the check never says "no" on its own)."""
    listed = set(_uncertain_objects([text]))
    if text and not listed:
        assert _reference(text)
    if not text:
        assert not listed


def test_the_c_check_certifies_the_usual_objects():
    """The shortcut is taken: the agent's fields (and any plain object) need no json.loads."""
    usual = ['{"seq":"000000000"}', '{"a":1,"b":[true,false,null],"c":{"d":"e\\n\\u00e9"}}', ' {"a":-1.5e3} ',
             '{"é":"✓"}', '{"a":' * 60 + '1' + '}' * 60, '']
    assert _uncertain_objects(usual) == []
    assert _uncertain_objects(['{}', '[]', '', '{"a":NaN}', '{"a":1}x']) == [1, 3, 4]


def test_the_c_check_agrees_with_json_loads_on_mutated_objects():
    rng = random.Random(30)
    seeds = ['{"a":1,"b":[true,false,null],"c":{"d":"e\\n\\u00e9"},"f":-1.5e3}', '{"seq":"000000001"}', '{}']
    alphabet = '{}[]",:.-+eE0123456789 \t\n\\/untrfalsé\x00\x1f'
    texts = []
    for _ in range(20_000):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            choice = rng.random()
            if choice < 0.4 and text:
                del text[min(at, len(text) - 1)]
            elif choice < 0.8:
                text.insert(at, rng.choice(alphabet))
            elif text:
                text[min(at, len(text) - 1)] = rng.choice(alphabet)
        texts.append("".join(text))
    listed = set(_uncertain_objects(texts))
    for i, text in enumerate(texts):
        if i not in listed:
            assert text == "" or _reference(text), text


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
    logins = classifier.tiers(log_type="application", namespace="default", source="file:/a", actions=["login"] * 3,
                              apps=["web"] * 3)
    assert logins == ["security"] * 3
    assert classifier.tiers(log_type="audit", namespace="default", source="file:/a", actions=[""] * 3,
                            apps=["vault", "web", "vault"]) == ["security", "general", "security"]


def test_a_chunk_without_events_beside_one_with_events():
    """prepare_chunks' shortcut for chunks wholly above the threshold also takes an empty chunk
    (found by make fuzz: max() of no levels)."""
    from fleetlog.collector.ingest import Origin, prepare_batch
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

    full = pb.Chunk(source="file:/a", source_key="a", position=[1, 2], time_us=[1_764_686_245_000_000] * 2,
                    level=bytes([6, 7]), message=["x", "y"], request_id=["", ""], user=["", ""], action=["", ""],
                    app=["", ""], pid=[0, 0], fields_json=['{"a":1}', ""], flags=bytes(2))
    batch = pb.Batch(batch_id=1, chunks=[pb.Chunk(source="file:/empty"), full])
    prepared = prepare_batch(batch, Origin("node-1", "127.0.0.1"), Classifier(CollectorConfig(node_name="c1")))
    assert prepared.received == 2 and len(prepared.events) == 1
    kept = len(prepared.events[0])
    assert list(prepared.events[0].message) == ["x", "y"][:kept] and prepared.dropped_below_level == 2 - kept
    assert prepared.events[0].fields_json[0] == '{"a":1}'



RELAYED = ['', '{}', ' { } ', '{"facility":"local0"}', '{"a":1,"b":[1,{"c":null}]}', '{"relay":"forged"}',
           '{"x":"relay"}', '{"claimed_host":"h"}', '{"r\\u0065lay":"forged"}', '{"é":"✓"}', '{"a":1}\n',
           '{"a":true}', '{"a":1.5e3}', '{"a" : "b" }', '{"a":{}}']


def test_relay_fields_appended_read_back_as_the_full_rewrite():
    """Appending the relay's fields to the text reads back as loads + update + dumps, key order
    too, and is that text exactly for compact input."""
    for claim in ("", "sender", 'sw"1é'):
        got = _relayed_fields(RELAYED, [claim] * len(RELAYED), "sender", "relay-1")
        for text, appended in zip(RELAYED, got):
            fields = json.loads(text) if text.strip() else {}
            fields["relay"] = "relay-1"
            if claim and claim != "sender":
                fields["claimed_host"] = claim
            assert json.loads(appended) == fields and list(json.loads(appended)) == list(fields), text
            if not text or text == json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")):
                assert appended == json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def test_relay_fields_in_c_are_the_python_texts(monkeypatch):
    """The C loop gives the Python loop's texts, for mixed claims within a chunk (the sender's own
    name, none, non-ASCII, quotes) and texts it hands back to json (non-ASCII, escapes, names)."""
    from fleetlog.collector import ingest
    if ingest._native_relayed is None:
        raise AssertionError("the C extension is not built (make install builds it)")
    texts = RELAYED * 4
    claims = (["", "sender", "sw-1", "sw-1", 'sw"1é', "sw-2"] * len(texts))[:len(texts)]
    for relay in ("relay-1", "relais-é"):
        native = _relayed_fields(texts, claims, "sender", relay)
        monkeypatch.setattr(ingest, "_native_relayed", None)
        python = _relayed_fields(texts, claims, "sender", relay)
        monkeypatch.undo()
        assert native == python
    out, fallbacks = ingest._native_relayed(['{"a":1}', '{"é":1}', ""], ["", "", "x"], "h", '"relay":"r"',
                                            ingest._claim_part)
    assert out == ['{"a":1,"relay":"r"}', None, '{"relay":"r","claimed_host":"x"}'] and fallbacks == [1]


def test_prepared_events_carry_the_ids_the_writer_would_derive():
    """The intake makes each event's id (contract §4.2) from the stored host and source key, a
    relayed event's too (its sender as host, the relay's key), so the writer need not."""
    from fleetlog.collector.ingest import Origin, prepare_batch, relayed_source_key
    from fleetlog.common.ids import event_ids_of
    from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

    def chunk(**extra):
        return pb.Chunk(source="syslog:edge", source_key="edge", position=[0, 7, 2**40],
                        time_us=[1_764_686_245_000_000] * 3, level=bytes([6] * 3), message=["a", "b", "c"],
                        request_id=[""] * 3, user=[""] * 3, action=[""] * 3, app=[""] * 3, pid=[0] * 3,
                        fields_json=[""] * 3, flags=bytes(3), **extra)
    batch = pb.Batch(batch_id=1, chunks=[chunk(), chunk(relayed_host="10.0.0.9")])
    own, relayed = prepare_batch(batch, Origin("relay-1", "127.0.0.1"),
                                 Classifier(CollectorConfig(node_name="c1"))).events
    assert list(own.ids) == [event_ids_of("relay-1", "edge")(p) for p in (0, 7, 2**40)]
    assert list(relayed.ids) == [event_ids_of("10.0.0.9", relayed_source_key("relay-1", "edge"))(p)
                                 for p in (0, 7, 2**40)]
