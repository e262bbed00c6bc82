"""The syslog receiver (contract §10) with real senders: util-linux `logger` over UDP and TCP (octet
counting and LF framing), and a real rsyslog forwarding with omfwd over TCP (RFC 5424, octet
counted), TLS (gtls, client certificate required) and UDP (RFC 3164), into one relay agent that
ships to a real collector. Asserts the exact events stored; then hostile peers (a broken octet
count, a connection that hangs up mid-frame, an over-long message) against the same agent.

One agent and one collector for the module; the tests run in file order."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from fleetlog.agent.sources.syslog import MAX_PENDING
from tests.certs import TestCA
from tests.harness import (
    Cluster,
    committed_events,
    free_port,
    metric_value,
    relay_cluster,
    search_json,
    wait_for,
    write_toml,
)

LOGGER = shutil.which("logger") or "/usr/bin/logger"     # util-linux (bsdutils): the Makefile installs it
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


class Relay:
    def __init__(self, cluster: Cluster, folder):
        self.ports = {name: free_port() for name in ("udp-in", "tcp-in", "tls-in", "small", "limited")}
        ca = TestCA(folder / "ca")
        self.ca = ca
        self.server = ca.issue("relay-1", server=True)
        self.client = ca.issue("switch-7")         # the rsyslog sender's certificate name
        self.collector = cluster.collector()
        listen = {name: f"127.0.0.1:{port}" for name, port in self.ports.items()}
        self.agent = cluster.agent("relay-1", [self.collector], [
            {"type": "syslog", "name": "udp-in", "protocol": "udp", "listen": listen["udp-in"]},
            {"type": "syslog", "name": "tcp-in", "protocol": "tcp", "listen": listen["tcp-in"],
             "namespace": "network", "log_type": "network"},
            {"type": "syslog", "name": "tls-in", "protocol": "tls", "listen": listen["tls-in"],
             "tls": {"cert": self.server.cert, "key": self.server.key, "ca": self.server.ca}},
            {"type": "syslog", "name": "small", "protocol": "tcp", "listen": listen["small"],
             "max_message_bytes": 100},
            {"type": "syslog", "name": "limited", "protocol": "tcp", "listen": listen["limited"],
             "idle_timeout": "2s", "max_connections": 2},
        ])
        wait_for(lambda: all(f"syslog listener {name} on" in self.agent.log() for name in self.ports), 20,
                 "the syslog listeners")

    def events(self, source: str, count: int) -> list[dict]:
        seen: list[dict] = []

        def stored() -> list[dict] | None:
            seen[:] = search_json(self.collector, "--source", f"syslog:{source}", "--namespace", "*")
            return seen if len(seen) >= count else None
        try:
            found = wait_for(stored, 30, f"{count} events from syslog:{source}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; have {len(seen)}: {[e['message'] for e in seen][:20]}\n"
                                 f"{self.agent.log()}") from None
        assert len(found) == count, found
        return found

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.agent.metrics(), name, labels)


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    with relay_cluster(tmp_path_factory.mktemp("syslog-relay"), Relay) as relay:
        yield relay


def _logger(*args: str, lines: list[str]) -> None:
    done = subprocess.run([LOGGER, *args], check=False, input="".join(line + "\n" for line in lines), capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 0, done.stderr


def _by_message(events: list[dict]) -> dict[str, dict]:
    return {e["message"]: e for e in events}


def test_logger_over_udp_and_tcp_with_both_framings(relay):
    common = ["--server", "127.0.0.1", "--id=4242", "--msgid", "ORDER", "--sd-id", "shop@32473",
              "--sd-param", 'user="alice"', "--sd-param", 'cart="7"']
    udp = [f"udp line {i}" for i in range(50)]
    octet = [f"octet line {i}" for i in range(50)]
    lf = [f"lf line {i} with \"quotes\" and ünïcode" for i in range(50)]
    senders = [
        subprocess.Popen([LOGGER, "--udp", "--port", str(relay.ports["udp-in"]), "-t", "billing",
                          "-p", "local3.warning", *common], stdin=subprocess.PIPE, text=True),
        subprocess.Popen([LOGGER, "--tcp", "--octet-count", "--port", str(relay.ports["tcp-in"]), "-t", "router",
                          "-p", "daemon.err", *common], stdin=subprocess.PIPE, text=True),
        subprocess.Popen([LOGGER, "--tcp", "--rfc3164", "--server", "127.0.0.1", "--port", str(relay.ports["tcp-in"]), "-t", "legacy",
                          "-p", "auth.info", "--id=77"], stdin=subprocess.PIPE, text=True),
    ]
    for sender, lines in zip(senders, (udp, octet, lf)):
        assert sender.stdin is not None
        sender.stdin.write("".join(line + "\n" for line in lines))
        sender.stdin.close()
    for sender in senders:
        assert sender.wait(20) == 0

    got = _by_message(relay.events("udp-in", 50))
    assert set(got) == set(udp)
    for event in got.values():
        assert event["host"] == "127.0.0.1"
        assert (event["app"], event["pid"], event["level"]) == ("billing", 4242, "warning")
        assert event["namespace"] == "default" and event["log_type"] == "system"
        assert event["user"] == "alice"
        assert event["fields"]["facility"] == "local3"
        assert event["fields"]["msgid"] == "ORDER"
        assert event["fields"]["shop@32473"] == {"cart": "7"}
        assert event["fields"]["relay"] == "relay-1"
        assert event["fields"]["claimed_host"] == socket.gethostname()

    tcp = relay.events("tcp-in", 100)
    got = _by_message(tcp)
    assert set(got) == set(octet) | set(lf)
    for message in octet:
        event = got[message]
        assert (event["host"], event["app"], event["pid"], event["level"]) == ("127.0.0.1", "router", 4242, "error")
        assert (event["namespace"], event["log_type"]) == ("network", "network")
        assert event["fields"]["facility"] == "daemon"
    for message in lf:
        event = got[message]
        assert (event["host"], event["app"], event["pid"], event["level"]) == ("127.0.0.1", "legacy", 77, "info")
        assert event["fields"]["facility"] == "auth"
        assert event["fields"]["relay"] == "relay-1"
    # Each sender's lines keep their order (a syslog listener numbers what it receives).
    assert [e["message"] for e in tcp if e["app"] == "router"] == octet
    assert relay.metric("fleetlog_agent_receiver_events_received_total", listener="udp-in") == 50
    assert relay.metric("fleetlog_agent_receiver_events_received_total", listener="tcp-in") == 100


def _rsyslog_config(folder, relay: Relay, socket_path) -> str:
    return f'''
global(workDirectory="{folder / "work"}"
       DefaultNetstreamDriverCAFile="{relay.client.ca}"
       DefaultNetstreamDriverCertFile="{relay.client.cert}"
       DefaultNetstreamDriverKeyFile="{relay.client.key}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket_path}" RateLimit.Interval="0" UseSysTimeStamp="off")
action(type="omfwd" target="127.0.0.1" port="{relay.ports["tcp-in"]}" protocol="tcp"
       template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted")
action(type="omfwd" target="127.0.0.1" port="{relay.ports["tls-in"]}" protocol="tcp"
       template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"
       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
       StreamDriverPermittedPeers="relay-1")
action(type="omfwd" target="127.0.0.1" port="{relay.ports["udp-in"]}" protocol="udp"
       template="RSYSLOG_TraditionalForwardFormat")
'''


def test_rsyslog_omfwd_over_tcp_tls_and_udp(relay, tmp_path):
    (tmp_path / "work").mkdir()
    socket_path = tmp_path / "log.sock"
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(_rsyslog_config(tmp_path, relay, socket_path))
    with open(tmp_path / "rsyslogd.log", "wb") as out:
        rsyslog = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: socket_path.exists() or rsyslog.poll() is not None, 15, "rsyslog's socket")
        assert rsyslog.poll() is None, (tmp_path / "rsyslogd.log").read_text()
        lines = [f"relayed {i} [brackets] \"q\" ä" for i in range(40)]
        _logger("--socket", str(socket_path), "-t", "payments", "-p", "local0.notice", "--id=99", lines=lines)
        tcp = [e for e in relay.events("tcp-in", 140) if e["app"] == "payments"]
        tls = relay.events("tls-in", 40)
        udp = [e for e in relay.events("udp-in", 90) if e["app"] == "payments"]
        for name, events in (("tcp", tcp), ("tls", tls), ("udp", udp)):
            assert [e["message"] for e in events] == lines, name
            for event in events:
                assert (event["app"], event["pid"], event["level"]) == ("payments", 99, "notice"), name
                assert event["fields"]["facility"] == "local0", name
                assert event["fields"]["relay"] == "relay-1", name
                assert event["fields"]["claimed_host"] == socket.gethostname(), name
        assert {e["host"] for e in tcp} == {e["host"] for e in udp} == {"127.0.0.1"}
        assert {e["host"] for e in tls} == {"switch-7"}     # the client certificate's name
        # What one relay carried, and what one sender sent, as docs/receivers.md searches them.
        carried = search_json(relay.collector, "--where", 'fields=%"relay":"relay-1"%', "--namespace", "*")
        assert len(carried) == 90 + 140 + 40
        assert {e["source"] for e in search_json(relay.collector, "--host", "switch-7")} == {"syslog:tls-in"}
    finally:
        rsyslog.send_signal(signal.SIGTERM)
        try:
            rsyslog.wait(15)
        except subprocess.TimeoutExpired:
            rsyslog.kill()
            rsyslog.wait(5)


def _send(port: int, data: bytes, close: bool = True) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(data)
    if close:
        conn.close()
    return conn


def test_hostile_peers_are_bounded_and_counted(relay):
    port = relay.ports["small"]
    long_message = "x" * 500
    _send(port, f"<14>1 - h app - - - {long_message}\n<14>1 - h app - - - after the long one\n".encode())
    complete = b"<14>1 - h app - - - complete"
    _send(port, b"%d %s14 <14>1 - h ap" % (len(complete), complete))      # hangs up mid-frame
    _send(port, b"abc def\n")                                          # LF framing, no priority
    _send(port, b"5 <14>xzz 9 bad count")                               # the octet count breaks after one
    events = relay.events("small", 5)
    by_message = {e["message"]: e for e in events}
    cut = next(e for e in events if e["message"].startswith("xxx"))
    assert cut["truncated"] is True and cut["message"] == "x" * (100 - len("<14>1 - h app - - - "))
    assert set(by_message) == {cut["message"], "after the long one", "complete", "abc def", "x"}
    assert by_message["after the long one"]["truncated"] is False
    assert by_message["abc def"]["level"] == "notice" and by_message["abc def"]["fields"]["facility"] == "user"

    def counted() -> bool:
        m = relay.metric
        return (m("fleetlog_agent_receiver_malformed_total", listener="small", reason="too_long") == 1
                and m("fleetlog_agent_receiver_malformed_total", listener="small", reason="cut_frame") == 1
                and m("fleetlog_agent_receiver_malformed_total", listener="small", reason="no_priority") == 1
                and m("fleetlog_agent_receiver_refused_total", listener="small", reason="bad_octet_count") == 1)
    wait_for(counted, 10, "the malformed frames counted")

    _send(port, b"<11>1 - h app - - - still here\n")
    assert "still here" in {e["message"] for e in relay.events("small", 6)}


def test_tls_needs_a_client_certificate_when_ca_is_set(relay):
    context = ssl.create_default_context(cafile=relay.server.ca)
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", relay.ports["tls-in"]), timeout=5) as raw:
        try:
            with context.wrap_socket(raw) as conn:     # no client certificate
                conn.sendall(b"<14>1 - - app - - - never stored\n")
                conn.recv(10)
        except (ssl.SSLError, OSError):
            pass
    wait_for(lambda: relay.metric("fleetlog_agent_receiver_refused_total", listener="tls-in",
                                  reason="tls_handshake") == 1, 10, "the handshake refused and counted")
    assert "never stored" not in {e["message"] for e in relay.events("tls-in", 40)}


def test_connections_are_bounded_and_idle_ones_closed(relay):
    port = relay.ports["limited"]
    idle = [_send(port, b"", close=False) for _ in range(2)]
    wait_for(lambda: relay.metric("fleetlog_agent_receiver_connections", listener="limited") == 2, 10,
             "two open connections")
    third = _send(port, b"", close=False)
    third.settimeout(5)
    assert third.recv(10) == b""          # refused: closed at once
    third.close()
    assert relay.metric("fleetlog_agent_receiver_refused_total", listener="limited",
                        reason="too_many_connections") == 1
    started = time.monotonic()
    for conn in idle:
        conn.settimeout(10)
        assert conn.recv(10) == b""       # closed by the relay after idle_timeout (2 s)
        conn.close()
    assert time.monotonic() - started < 8
    wait_for(lambda: relay.metric("fleetlog_agent_receiver_refused_total", listener="limited",
                                  reason="idle_timeout") == 2, 30, "the idle connections counted")
    _send(port, b"<11>1 - h app - - - still here\n")
    assert [e["message"] for e in relay.events("limited", 1)] == ["still here"]


def test_a_reload_rebinds_the_listeners(relay):
    """SIGHUP with a changed listener: every listener stops and binds again (UDP too), and the
    change applies."""
    config = relay.agent.config
    for source in config["sources"]:
        if source["name"] == "udp-in":
            source["log_type"] = "network"
    write_toml(relay.agent.config_path, config)
    relay.agent.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: 5 source(s) now running" in relay.agent.log(), 20, "the reload")
    wait_for(lambda: relay.agent.log().count("syslog listener udp-in on") == 2, 20, "udp-in listening again")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<12>after the reload", ("127.0.0.1", relay.ports["udp-in"]))
    after = [e for e in relay.events("udp-in", 91) if e["message"] == "after the reload"]
    assert [(e["log_type"], e["level"]) for e in after] == [("network", "warning")]
    _send(relay.ports["tcp-in"], b"<12>tcp after the reload\n")
    assert "tcp after the reload" in {e["message"] for e in relay.events("tcp-in", 141)}


def test_a_full_spool_stops_tcp_and_tls_reading_and_counts_udp_drops(cluster, tmp_path):
    """Backpressure: with the collector away and the spool full, the relay stops reading TCP and
    TLS (the senders' sends block) and drops UDP datagrams, counted. When the collector comes,
    every TCP and TLS message the senders handed over is stored, once."""
    collector = cluster.collector("collector-2", start=False)
    tcp_port, udp_port, tls_port = free_port(), free_port(), free_port()
    server = TestCA(tmp_path / "ca").issue("relay-2", server=True)
    agent = cluster.agent("relay-2", [collector], [
        {"type": "syslog", "name": "bp-tcp", "protocol": "tcp", "listen": f"127.0.0.1:{tcp_port}"},
        {"type": "syslog", "name": "bp-udp", "protocol": "udp", "listen": f"127.0.0.1:{udp_port}"},
        {"type": "syslog", "name": "bp-tls", "protocol": "tls", "listen": f"127.0.0.1:{tls_port}",
         "tls": {"cert": server.cert, "key": server.key}},
    ], spool={"max_bytes": "1MiB"}, batch={"max_bytes": "256KiB", "compression": "none"})
    wait_for(lambda: all(f"syslog listener bp-{kind} on" in agent.log() for kind in ("udp", "tcp", "tls")),
             20, "the listeners")

    def frame(i: int) -> bytes:
        return b"<14>1 - - app - - - %06d " % i + b"x" * 1000 + b"\n"
    size = len(frame(0))
    stream = b"".join(frame(i) for i in range(60_000))
    conn = socket.create_connection(("127.0.0.1", tcp_port), timeout=5)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    conn.settimeout(2)
    sent = 0
    with pytest.raises(TimeoutError):
        while sent < len(stream):
            sent += conn.send(stream[sent:sent + 65536])
    # The relay stopped reading: what it holds is bounded (queue, spool and socket buffers).
    assert sent < 40 * 1024 * 1024, sent

    # UDP: the listener's queue takes MAX_PENDING messages while the spool is full, then drops and
    # counts. Sent in bursts the relay takes in before the next (the kernel would drop unseen otherwise).
    datagrams = MAX_PENDING + 200

    def taken() -> float:
        text = agent.metrics()
        return sum(metric_value(text, f"fleetlog_agent_receiver_events_{kind}_total", labels) for kind, labels in (
            ("received", {"listener": "bp-udp"}), ("dropped", {"listener": "bp-udp", "reason": "queue_full"})))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for start in range(0, datagrams, 500):
            end = min(start + 500, datagrams)
            for i in range(start, end):
                udp.sendto(b"<14>udp %d" % i, ("127.0.0.1", udp_port))
            wait_for(lambda end=end: taken() >= end, 10, "the relay taking the datagrams")
    assert metric_value(agent.metrics(), "fleetlog_agent_receiver_events_dropped_total",
                        {"listener": "bp-udp", "reason": "queue_full"}) == 200

    # TLS (octet counting, as RFC 5425 has it): read until the listener's queue is full, then not.
    # A TLS write that timed out must be retried with the same bytes before anything else.
    client = ssl.create_default_context(cafile=server.ca)
    tls = client.wrap_socket(socket.create_connection(("127.0.0.1", tls_port), timeout=10), server_hostname="localhost")
    tls.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    tls.settimeout(2)

    def tls_frame(i: int) -> bytes:
        message = b"<14>1 - - app - - - tls %06d " % i + b"y" * 1000
        return b"%d %s" % (len(message), message)
    tls_size = len(tls_frame(0))
    tls_stream = b"".join(tls_frame(i) for i in range(60_000))
    tls_sent, blocked = 0, b""
    with pytest.raises(TimeoutError):
        while tls_sent < len(tls_stream):
            blocked = tls_stream[tls_sent:tls_sent + 65536]
            tls_sent += tls.send(blocked)
    # It stopped reading: what it took is what its queue holds, far from the 63 MB offered.
    assert tls_sent < 40 * 1024 * 1024 and metric_value(
        agent.metrics(), "fleetlog_agent_receiver_events_received_total", {"listener": "bp-tls"}) <= MAX_PENDING

    collector.start().wait_ready()
    tls.settimeout(30)
    tls_sent += tls.send(blocked)
    tls_rest = -tls_sent % tls_size
    tls.sendall(tls_stream[tls_sent:tls_sent + tls_rest])
    tls_frames = (tls_sent + tls_rest) // tls_size
    # Closed only once all is read: closing a socket with unread input (the server's TLS 1.3 session
    # tickets) sends a reset, and the relay's kernel drops what the relay had not read yet.
    tls.shutdown(socket.SHUT_WR)
    wait_for(lambda: metric_value(agent.metrics(), "fleetlog_agent_receiver_events_received_total",
                                  {"listener": "bp-tls"}) >= tls_frames, 45, "the relay reading the TLS stream")
    tls.close()
    conn.settimeout(30)
    rest = -sent % size                 # finish the frame the blocked send had begun
    conn.sendall(stream[sent:sent + rest])
    conn.close()
    frames = (sent + rest) // size + tls_frames
    db = collector.config_path.parent / "data" / "events.db"
    try:
        wait_for(lambda: committed_events(db, "127.0.0.1") >= frames, 45, f"{frames} events stored")
    except AssertionError:
        raise AssertionError(f"{committed_events(db, '127.0.0.1')} of {frames}\n{agent.log()}\n{collector.log()}\n"
                             + "\n".join(line for line in agent.metrics().splitlines() if "bp-" in line
                                         and "_created" not in line or "spool" in line)) from None
    try:
        wait_for(lambda: committed_events(db, "127.0.0.1") >= frames + MAX_PENDING, 45, "the queued UDP messages stored")
    except AssertionError:
        raise AssertionError(f"{committed_events(db, '127.0.0.1')} of {frames} + {MAX_PENDING}, tls {tls_frames}\n"
                             + "\n".join(line for line in agent.metrics().splitlines() if "bp-" in line
                                         and "_created" not in line or "spool" in line)) from None
    assert committed_events(db, "127.0.0.1") == frames + MAX_PENDING
    received = {listener: metric_value(agent.metrics(), "fleetlog_agent_receiver_events_received_total",
                                       {"listener": listener}) for listener in ("bp-tcp", "bp-tls")}
    assert received == {"bp-tcp": frames - tls_frames, "bp-tls": tls_frames}
