"""Who may relay (contract §4.1, §10): with a tokens_file, only an agent whose entry says
`relay = true` may send events it received from other senders. Real daemons: one collector, a
relay agent allowed and one not, each with a syslog TCP listener fed by a socket. The refused
agent's batch is refused whole, audited and counted, the agent says why in one log line, and its
events stay in its spool: once its entry allows relaying (collector restarted), they arrive, once."""

from __future__ import annotations

import hashlib
import secrets
import socket

from tests.harness import free_port, metric_value, search_json, wait_for, write_toml


def _send(port: int, lines: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"".join(lines))


def test_only_agents_allowed_to_relay_may_send_relayed_events(cluster, tmp_path):
    tokens: dict[str, str] = {}
    for name in ("relay-ok", "relay-no", "root"):
        tokens[name] = secrets.token_urlsafe(24)
        (tmp_path / f"{name}.token").write_text(tokens[name] + "\n")

    def tokens_toml(relay_no_allowed: bool) -> str:
        def entry(name: str, role: str, relay: bool) -> dict:
            return {"name": name, "sha256": hashlib.sha256(tokens[name].encode()).hexdigest(), "role": role,
                    "relay": relay}
        return str(write_toml(tmp_path / "tokens.toml", {"tokens": [
            entry("relay-ok", "agent", True), entry("relay-no", "agent", relay_no_allowed),
            entry("root", "admin", False)]}))

    collector = cluster.collector(tokens_file=tokens_toml(False))
    ports = {name: free_port() for name in ("relay-ok", "relay-no")}
    agents = {name: cluster.agent(name, [collector], [
        {"type": "syslog", "name": "in", "protocol": "tcp", "listen": f"127.0.0.1:{port}"}],
        token_file=str(tmp_path / f"{name}.token")) for name, port in ports.items()}
    for agent in agents.values():
        wait_for(lambda agent=agent: "syslog listener in on" in agent.log(), 20, "the listener")
    root = str(tmp_path / "root.token")

    for name, port in ports.items():
        _send(port, [b"<14>1 - sw-1 app - - - %s line %d\n" % (name.encode(), i) for i in range(3)])

    def stored(name: str) -> list[dict]:
        return [e for e in search_json(collector, "--source", "syslog:in", "--token-file", root)
                if e["fields"]["relay"] == name]
    allowed = wait_for(lambda: len(stored("relay-ok")) == 3 and stored("relay-ok"), 30, "relay-ok's events")
    assert sorted(e["message"] for e in allowed) == [f"relay-ok line {i}" for i in range(3)]
    assert {e["host"] for e in allowed} == {"127.0.0.1"}

    # relay-no: refused whole, counted, audited, said once in the agent's log; its events wait.
    wait_for(lambda: collector.metric("fleetlog_collector_requests_rejected_total", {"reason": "relay_denied"}) >= 1,
             30, "the relay refusal counted")
    denial = ("denied relay for relay-no (agent): relay-no may not relay events of other senders "
              "(relay = true in its tokens_file entry allows it)")
    wait_for(lambda: denial in [d["message"] for d in search_json(
        collector, "--action", "audit/denied", "--token-file", root)], 20, "the refusal audited")
    agent = agents["relay-no"]
    wait_for(lambda: "refused this agent" in agent.log(), 20, "the agent saying why")
    said = [line for line in agent.log().splitlines() if "refused this agent" in line]
    assert len(said) == 1 and "relay-no may not relay events of other senders" in said[0], said
    assert "Traceback" not in agent.log()
    assert stored("relay-no") == []
    assert metric_value(agent.metrics(), "fleetlog_agent_spool_events") == 3

    # Allowed now: the spooled events arrive, once.
    collector.stop()
    tokens_toml(True)
    collector.start().wait_ready()
    arrived = wait_for(lambda: len(stored("relay-no")) >= 3 and stored("relay-no"), 40, "relay-no's spooled events")
    assert sorted(e["message"] for e in arrived) == [f"relay-no line {i}" for i in range(3)]
    wait_for(lambda: metric_value(agent.metrics(), "fleetlog_agent_spool_events") == 0, 20, "the spool emptied")
