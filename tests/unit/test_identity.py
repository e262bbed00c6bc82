"""Listen policy, tokens_file validation and origin claims, as plain functions."""

from __future__ import annotations

import json

import pytest

from fleetlog.collector.classify import Classifier
from fleetlog.collector.config import CollectorConfig, LevelsConfig, ServerTlsConfig
from fleetlog.collector.identity import Authenticator, TokenEntry, load_tokens
from fleetlog.collector.ingest import BadBatch, Origin, RelayRefused, prepare_batch
from fleetlog.collector.preflight import check_listen_policy
from fleetlog.common.errors import ConfigError
from fleetlog.common.levels import Level
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb


@pytest.mark.parametrize("listen", ["127.0.0.1:7433", "[::1]:7433", "localhost:7433", "127.0.0.9:1"])
def test_loopback_is_always_allowed(listen):
    check_listen_policy(CollectorConfig(listen=listen))


@pytest.mark.parametrize("extra", [{"insecure": True}, {"tokens_file": "t.toml"},
                                   {"tls": ServerTlsConfig(cert="c", key="k")}])
def test_beyond_loopback_needs_tls_tokens_or_insecure(extra):
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0:7433 without TLS or tokens_file"):
        check_listen_policy(CollectorConfig(listen="0.0.0.0:7433"))
    check_listen_policy(CollectorConfig(listen="0.0.0.0:7433", **extra))


def test_tokens_file_holds_hashes_not_tokens(tmp_path):
    path = tmp_path / "tokens.toml"
    path.write_text('[[tokens]]\nname = "web-1"\nsha256 = "hunter2"\nrole = "agent"\n')
    with pytest.raises(ConfigError) as err:
        load_tokens(str(path))
    assert str(err.value) == ("tokens.toml: tokens[0].sha256: expected the 64 hex digits of the token's "
                              "SHA-256, not the token itself")
    path.write_text(f'[[tokens]]\nname = "web-1"\nsha256 = "{"ab" * 32}"\nrole = "superuser"\n')
    with pytest.raises(ConfigError, match=r"tokens\[0\]\.role"):
        load_tokens(str(path))


def _chunk(namespace: str, levels: list[int], claims: list[str] | None = None) -> pb.Chunk:
    n = len(levels)
    return pb.Chunk(source="file:/a.log", source_key="a", namespace=namespace, log_type="application",
                    position=list(range(n)), time_us=[1] * n, level=bytes(levels), message=[f"m{i}" for i in range(n)],
                    request_id=[""] * n, user=[""] * n, action=[""] * n, app=[""] * n, pid=[0] * n,
                    fields_json=['{"k":"v"}'] + [""] * (n - 1), flags=bytes(n), claimed_host=claims or [])


def test_claims_thresholds_and_namespace_limits():
    classifier = Classifier(CollectorConfig(levels=LevelsConfig(default=Level.WARNING,
                                                                namespaces={"debugging": Level.DEBUG})))
    origin = Origin(host="web-1", host_ip="10.0.0.1", namespaces=("default", "debugging"), claimed="db-9")
    batch = pb.Batch(batch_id=1, chunks=[
        _chunk("default", [3, 6, 4], claims=["db-1", "", "web-1"]),   # error, info (dropped), warning
        _chunk("debugging", [7]),
        _chunk("payments", [3, 3]),                                    # not this node's namespace
    ])
    prepared = prepare_batch(batch, origin, classifier)
    assert (prepared.received, prepared.dropped_below_level, prepared.denied) == (6, 1, 2)
    assert prepared.denied_namespaces == {"payments"}
    default, debugging = prepared.events
    assert (default.host, default.host_ip, list(default.message)) == ("web-1", "10.0.0.1", ["m0", "m2"])
    # A payload claim wins over the hello's; a payload naming the true host is no claim.
    assert [json.loads(f) if f else {} for f in default.fields_json] == [{"k": "v", "claimed_host": "db-1"}, {}]
    assert [json.loads(f) for f in debugging.fields_json] == [{"k": "v", "claimed_host": "db-9"}]


def test_a_relayed_chunk_is_stored_under_its_sender_with_the_relay_recorded():
    """Contract §10: the relay names the sender (peer address or certificate name); the collector
    records the authenticated relay over anything the payload said, and a differing claim."""
    classifier = Classifier(CollectorConfig())
    origin = Origin(host="relay-1", host_ip="10.0.0.2", claimed="relay-1")
    chunk = _chunk("default", [3, 6], claims=["sw-core-1", "10.9.9.9"])
    chunk.relayed_host = "10.9.9.9"
    chunk.fields_json[0] = '{"k":"v","relay":"forged"}'
    plain = _chunk("default", [6])
    prepared = prepare_batch(pb.Batch(batch_id=1, chunks=[chunk, plain]), origin, classifier)
    relayed, own = prepared.events
    assert (relayed.host, relayed.host_ip) == ("10.9.9.9", "10.0.0.2")
    assert [json.loads(f) for f in relayed.fields_json] == [
        {"k": "v", "relay": "relay-1", "claimed_host": "sw-core-1"}, {"relay": "relay-1"}]
    assert own.host == "relay-1" and list(own.fields_json) == ['{"k":"v"}']
    # The relayed source is the relay's own: no node's source has its key.
    assert (relayed.source_key, own.source_key) == (f"relay\x00relay-1\x00{chunk.source_key or chunk.source}",
                                                    plain.source_key or plain.source)
    chunk.relayed_host = "x" * 256
    with pytest.raises(BadBatch, match="relayed_host"):
        prepare_batch(pb.Batch(batch_id=2, chunks=[chunk]), origin, classifier)


def test_a_relay_naming_a_node_cannot_make_its_events_duplicates(tmp_path):
    """A relay that says its sender is node web-1, with web-1's source key and positions, stores
    beside web-1's events, never instead of them: its source is keyed by the relay."""
    from fleetlog.collector.store.sqlite import SqliteStore
    classifier = Classifier(CollectorConfig())
    own = _chunk("default", [6, 6])
    forged = _chunk("default", [6, 6])
    forged.relayed_host = "web-1"
    store = SqliteStore(str(tmp_path / "events.db"), "normal", collector="c1")
    try:
        relayed = prepare_batch(pb.Batch(batch_id=1, chunks=[forged]), Origin("relay-1", "10.0.0.2"), classifier)
        [result] = store.store_batch(relayed.events, 1_700_000_000_000_000)
        assert (result.stored, result.duplicates) == (2, 0)
        node = prepare_batch(pb.Batch(batch_id=1, chunks=[own]), Origin("web-1", "10.0.0.1"), classifier)
        [result] = store.store_batch(node.events, 1_700_000_000_000_000)
        assert (result.stored, result.duplicates) == (2, 0)
    finally:
        store.close()
    for text in ("a\x00b",):
        bad = _chunk("default", [6])
        bad.source_key = text
        with pytest.raises(BadBatch, match="NUL"):
            prepare_batch(pb.Batch(batch_id=3, chunks=[bad]), Origin("web-1", "10.0.0.1"), classifier)


def test_who_may_relay(tmp_path):
    """Relaying takes `relay = true` on a tokens_file entry (default false); a client certificate
    without an entry may not; with neither tokens nor mTLS (loopback trust) it stays allowed."""
    path = tmp_path / "tokens.toml"
    path.write_text(f'[[tokens]]\nname = "relay-1"\nsha256 = "{"ab" * 32}"\nrole = "agent"\nrelay = true\n'
                    f'[[tokens]]\nname = "web-1"\nsha256 = "{"cd" * 32}"\nrole = "agent"\n')
    tokens = load_tokens(str(path))
    assert {e.name: e.relay for e in tokens.values()} == {"relay-1": True, "web-1": False}
    auth = Authenticator(tokens, mtls=True)
    assert auth.certificate_caller("relay-1", "10.0.0.2").may_relay
    assert not auth.certificate_caller("web-1", "10.0.0.3").may_relay
    assert not auth.certificate_caller("switch-7", "10.0.0.4").may_relay      # a certificate, no entry
    assert not Authenticator(None, mtls=True).certificate_caller("relay-1", "10.0.0.2").may_relay
    path.write_text(f'[[tokens]]\nname = "alice"\nsha256 = "{"ab" * 32}"\nrole = "auditor"\nrelay = true\n')
    with pytest.raises(ConfigError, match=r"tokens\[0\]\.relay: only an agent relays events; role 'auditor' sends none"):
        load_tokens(str(path))


def test_a_relayed_chunk_from_an_agent_that_may_not_relay_refuses_the_batch():
    classifier = Classifier(CollectorConfig())
    chunk = _chunk("default", [6])
    chunk.relayed_host = "10.9.9.9"
    batch = pb.Batch(batch_id=1, chunks=[_chunk("default", [6]), chunk])
    with pytest.raises(RelayRefused, match="web-1 may not relay events of other senders"):
        prepare_batch(batch, Origin(host="web-1", host_ip="10.0.0.3", may_relay=False), classifier)
    own = prepare_batch(pb.Batch(batch_id=2, chunks=[_chunk("default", [6])]),
                        Origin(host="web-1", host_ip="10.0.0.3", may_relay=False), classifier)
    assert [e.host for e in own.events] == ["web-1"]


def test_a_token_is_found_by_its_digest_among_many(tmp_path):
    """tokens_file (any case of hex) and 1,000 stored tokens: each token finds its own entry, a
    token one character off finds none."""
    import hashlib

    def digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()
    path = tmp_path / "tokens.toml"
    path.write_text(f'[[tokens]]\nname = "web-1"\nsha256 = "{digest("web-secret").upper()}"\nrole = "agent"\n')
    auth = Authenticator(load_tokens(str(path)), mtls=False)
    stored = tuple(TokenEntry(name=f"reader-{i}", sha256=digest(f"secret-{i}"), role="auditor") for i in range(1000))
    auth.set_stored_tokens(stored)
    assert auth.token_caller("web-secret", "10.0.0.1").name == "web-1"
    assert [auth.token_caller(f"secret-{i}", "10.0.0.2").name for i in (0, 517, 999)] == \
        ["reader-0", "reader-517", "reader-999"]
    assert auth.refusal([("authorization", "Bearer secret-1000")]) == "unknown token"
    assert auth.refusal([("authorization", "Bearer secret-999")]) is None
