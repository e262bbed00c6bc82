"""The journal-upload receiver (contract §10) with the real sender: Debian's systemd-journal-upload
reading journal files the test wrote (systemd-journal-remote), over plain HTTP on loopback and over
HTTPS with client certificates, into a relay agent shipping to a real collector. Asserts the exact
events stored; then hostile peers, and the full-spool answer (503) with a second relay whose
collector is away.

One relay and one collector for the module; the tests run in file order."""

from __future__ import annotations

import http.client
import pathlib
import signal
import socket
import ssl
import struct
import subprocess

import pytest

from tests.certs import TestCA
from tests.harness import (
    Cluster,
    assert_connections_bounded,
    free_port,
    metric_value,
    search_json,
    searched_exactly,
    wait_for,
)
from tests.journal_files import BOOT_ID, JournalFile, entry

UPLOAD = "/usr/lib/systemd/systemd-journal-upload"
START_US = 1_764_685_845_000_000


class Relay:
    def __init__(self, cluster: Cluster, folder: pathlib.Path):
        self.ports = {name: free_port() for name in ("plain", "secure", "bounded")}
        self.ca = TestCA(folder / "ca")
        self.server = self.ca.issue("relay-1", server=True)
        self.node = self.ca.issue("node-7")                 # the uploading node's certificate name
        self.collector = cluster.collector()
        self.agent = cluster.agent("relay-1", [self.collector], [
            {"type": "journal-upload", "name": "plain", "listen": f"127.0.0.1:{self.ports['plain']}"},
            {"type": "journal-upload", "name": "secure", "listen": f"127.0.0.1:{self.ports['secure']}",
             "namespace": "nodes", "log_type": "journal", "max_message_bytes": 200,
             "tls": {"cert": self.server.cert, "key": self.server.key, "ca": self.server.ca}},
            {"type": "journal-upload", "name": "bounded", "listen": f"127.0.0.1:{self.ports['bounded']}",
             "max_connections": 3, "idle_timeout": "2s"},
        ])
        wait_for(lambda: all(f"journal-upload listener {name} on" in self.agent.log() for name in self.ports), 20,
                 "the journal-upload listeners")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("journal-upload")
    cluster = Cluster(folder)
    try:
        yield cluster
    finally:
        cluster.stop_all()
    for daemon in cluster.daemons:
        if daemon.kind == "agent":
            text = daemon.log_path.read_text(errors="replace")
            assert "Traceback" not in text and "ERROR" not in text, text[-5000:]


@pytest.fixture(scope="module")
def relay(cluster, tmp_path_factory):
    return Relay(cluster, tmp_path_factory.mktemp("relay-1"))


def metric(agent, name: str, **labels: str) -> float:
    return metric_value(agent.metrics(), name, labels)


def upload(url: str, journal: pathlib.Path, state: pathlib.Path, *tls: str) -> subprocess.CompletedProcess:
    """systemd-journal-upload as its unit runs it (--save-state), on a journal file, not following."""
    return subprocess.run([UPLOAD, f"--url={url}", f"--file={journal}", f"--save-state={state}", "--follow=no",
                           *tls], capture_output=True, text=True, timeout=60, check=False)


def stored(relay_collector, count: int, *filters: str) -> list[dict]:
    return searched_exactly(relay_collector, count, "--namespace", "*", *filters)


def test_plain_http_on_loopback(relay, tmp_path):
    journal = JournalFile(tmp_path / "node.journal", START_US)
    lines = [entry(f"backup step {i}", unit="backup.service", identifier="backup", priority=6, pid=300 + i,
                   _HOSTNAME="node-3.example") for i in range(40)]
    lines.append(entry(b"first line\nsecond line", unit="backup.service", identifier="backup", priority=3,
                       pid=399, _HOSTNAME="node-3.example"))
    lines.append(entry(b"raw \xff\xfe bytes", unit="backup.service", identifier="backup", priority=4, pid=400,
                       _HOSTNAME="node-3.example", USER_NAME="alice"))
    journal.append(lines)
    done = upload(f"http://127.0.0.1:{relay.ports['plain']}", journal.path, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    assert "LAST_CURSOR=" in (tmp_path / "state").read_text()

    events = {e["message"]: e for e in stored(relay.collector, 42, "--source", "journald:backup.service")}
    assert set(events) == {f"backup step {i}" for i in range(40)} | {"first line\nsecond line",
                                                                      "raw \ufffd\ufffd bytes"}
    for i in range(40):
        event = events[f"backup step {i}"]
        assert (event["host"], event["app"], event["pid"], event["level"]) == ("127.0.0.1", "backup", 300 + i, "info")
        assert event["time"] == _rfc3339(START_US + 1000 * i)
        assert event["namespace"] == "default" and event["log_type"] == "system"
        assert event["fields"]["claimed_host"] == "node-3.example"
        assert event["fields"]["relay"] == "relay-1"
        assert event["fields"]["boot_id"] == BOOT_ID
        assert event["fields"]["cursor"].startswith("s=") and ";i=%x;" % (i + 1) in event["fields"]["cursor"]
    multi = events["first line\nsecond line"]
    assert (multi["level"], multi["pid"]) == ("error", 399)
    raw = events["raw \ufffd\ufffd bytes"]
    assert raw["level"] == "warning" and raw["user"] == "alice" and raw["fields"]["invalid_utf8"] is True
    assert metric(relay.agent, "fleetlog_agent_receiver_events_received_total", listener="plain") == 42

    # Sent again from the start (a lost state file): the relay skips what it has; nothing stored twice.
    done = upload(f"http://127.0.0.1:{relay.ports['plain']}", journal.path, tmp_path / "state2")
    assert done.returncode == 0, done.stderr
    assert metric(relay.agent, "fleetlog_agent_receiver_events_duplicate_total", listener="plain") == 42
    journal.append([entry("after the retry", unit="backup.service", identifier="backup")])
    done = upload(f"http://127.0.0.1:{relay.ports['plain']}", journal.path, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    stored(relay.collector, 43, "--source", "journald:backup.service")


def test_https_with_client_certificates(relay, tmp_path):
    journal = JournalFile(tmp_path / "secure.journal", START_US)
    journal.append([entry(f"audit record {i}", unit="auditd.service", identifier="auditd", priority=5,
                          _HOSTNAME="node-7") for i in range(30)]
                   + [entry("x" * 500, unit="auditd.service", identifier="auditd", priority=2)])
    tls = [f"--key={relay.node.key}", f"--cert={relay.node.cert}", f"--trust={relay.node.ca}"]
    done = upload(f"https://127.0.0.1:{relay.ports['secure']}", journal.path, tmp_path / "state", *tls)
    assert done.returncode == 0, done.stderr

    events = stored(relay.collector, 31, "--source", "journald:auditd.service")
    by_message = {e["message"]: e for e in events}
    for i in range(30):
        event = by_message[f"audit record {i}"]
        assert (event["host"], event["level"], event["app"]) == ("node-7", "notice", "auditd")
        assert (event["namespace"], event["log_type"]) == ("nodes", "journal")
        assert "claimed_host" not in event["fields"]          # the claim matches the certificate's name
        assert event["fields"]["relay"] == "relay-1"
    long = by_message["x" * 200]                                # max_message_bytes = 200
    assert long["truncated"] is True and long["level"] == "critical"
    assert metric(relay.agent, "fleetlog_agent_receiver_malformed_total", listener="secure", reason="too_long") == 1

    # Without a client certificate: the handshake fails, nothing is stored.
    context = ssl.create_default_context(cafile=relay.node.ca)
    with pytest.raises((ssl.SSLError, ConnectionError)), \
            socket.create_connection(("127.0.0.1", relay.ports["secure"]), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        if not conn.recv(100):
            raise ConnectionError("closed")
    assert len(search_json(relay.collector, "--namespace", "*", "--source", "journald:auditd.service")) == 31


def test_following_the_journal_as_the_unit_does(relay, tmp_path):
    """The uploader as its unit runs it: following the journal, one POST for what is new each time."""
    journal = JournalFile(tmp_path / "follow.journal", START_US)
    journal.append([entry("before the start", unit="follow.service", identifier="follow")])
    uploader = subprocess.Popen([UPLOAD, f"--url=http://127.0.0.1:{relay.ports['plain']}", f"--file={journal.path}",
                                 f"--save-state={tmp_path / 'state'}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        stored(relay.collector, 1, "--source", "journald:follow.service")
        for round_ in range(3):
            journal.append([entry(f"round {round_} line {i}", unit="follow.service", identifier="follow")
                            for i in range(5)])
            stored(relay.collector, 1 + 5 * (round_ + 1), "--source", "journald:follow.service")
        assert uploader.poll() is None
    finally:
        uploader.terminate()
        _, errors = uploader.communicate(timeout=20)
    assert "failed" not in errors, errors
    assert "LAST_CURSOR=" in (tmp_path / "state").read_text()


def test_a_reload_listens_again_with_the_new_settings(relay, cluster, tmp_path):
    sources = [dict(source) for source in relay.agent.config["sources"]]
    sources[0]["namespace"] = "reloaded"
    cluster.rewrite(relay.agent, sources=sources)
    relay.agent.process.send_signal(signal.SIGHUP)
    wait_for(lambda: relay.agent.log().count("journal-upload listener plain on") == 2, 20, "the listener again")
    journal = JournalFile(tmp_path / "reload.journal", START_US)
    journal.append([entry("after the reload", unit="reload.service")])
    done = upload(f"http://127.0.0.1:{relay.ports['plain']}", journal.path, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    [event] = stored(relay.collector, 1, "--source", "journald:reload.service")
    assert (event["message"], event["namespace"]) == ("after the reload", "reloaded")


def _post(port: int, body: bytes, content_type: str = "application/vnd.fdo.journal") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", "/upload", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_hostile_uploads_are_answered_and_counted(relay):
    port = relay.ports["plain"]
    cursor = "s=feedfacefeedfacefeedfacefeedface;i=%x;b=%s;m=1;t=1;x=1"
    good = b"__CURSOR=" + (cursor % (1, BOOT_ID)).encode() + b"\nMESSAGE=kept before the junk\n\n"
    status, _ = _post(port, good + b"MESSAGE\n" + struct.pack("<Q", 3) + b"abcXJUNK")
    assert status == 400
    assert metric(relay.agent, "fleetlog_agent_receiver_malformed_total", listener="plain", reason="bad_binary_end") == 1
    assert metric(relay.agent, "fleetlog_agent_receiver_refused_total", listener="plain", reason="bad_stream") == 1

    status, _ = _post(port, b"MESSAGE=no cursor\n\nlower=case\nbad name=x\n" + b"A" * 100 + b"\n\n")
    assert status == 200
    assert metric(relay.agent, "fleetlog_agent_receiver_malformed_total", listener="plain", reason="no_cursor") == 2
    assert metric(relay.agent, "fleetlog_agent_receiver_malformed_total", listener="plain", reason="bad_field_name") == 3

    status, _ = _post(port, b"MESSAGE=half an entry\n__CURSOR=" + (cursor % (2, BOOT_ID)).encode() + b"\n")
    assert status == 200
    assert metric(relay.agent, "fleetlog_agent_receiver_malformed_total", listener="plain", reason="cut_entry") == 1

    # A sender that hangs up in the middle of its chunked body.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"POST /upload HTTP/1.1\r\nHost: relay\r\nContent-Type: application/vnd.fdo.journal\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n10\r\nMESSAGE=hung up")
    wait_for(lambda: metric(relay.agent, "fleetlog_agent_receiver_malformed_total", listener="plain",
                            reason="cut_entry") == 2, 10, "the cut upload counted")
    wait_for(lambda: metric(relay.agent, "fleetlog_agent_receiver_connections", listener="plain") == 0, 10,
             "the upload ended")
    assert metric(relay.agent, "fleetlog_agent_receiver_refused_total", listener="plain", reason="cut_upload") == 1

    # Not HTTP at all, and the wrong method: answered by the HTTP layer, never an error in the log.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01 not http\r\n\r\n")
        assert raw.recv(100).split(b" ")[1] == b"400"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/upload")
    assert conn.getresponse().status == 405
    conn.close()

    status, _ = _post(port, good, content_type="text/plain")
    assert status == 415
    assert metric(relay.agent, "fleetlog_agent_receiver_refused_total", listener="plain", reason="bad_content_type") == 1

    # What came before the junk is stored, the cut entry is not.
    stored(relay.collector, 1, "--host", "127.0.0.1", "--source", "journald:journal")


def test_a_full_spool_answers_503_and_the_retry_stores_everything_once(cluster, tmp_path):
    port = free_port()
    collector = cluster.collector("collector-2", start=False)
    agent = cluster.agent("relay-2", [collector], [
        {"type": "journal-upload", "name": "tiny", "listen": f"127.0.0.1:{port}", "spool_wait": "1s"},
    ], spool={"max_bytes": "64KiB"}, batch={"max_bytes": "16KiB", "compression": "none"})
    wait_for(lambda: "journal-upload listener tiny on" in agent.log(), 20, "the listener")
    journal = JournalFile(tmp_path / "busy.journal", START_US)
    count = 1500
    journal.append([entry(f"busy line {i} " + "%032x" % (i * 0x9E3779B97F4A7C15 % (1 << 128)), unit="busy.service",
                          identifier="busy") for i in range(count)])
    state = tmp_path / "state"

    done = upload(f"http://127.0.0.1:{port}", journal.path, state)
    # systemd-journal-upload ends with a failure on any answer but 2xx and keeps its old cursor
    # (none yet); its unit's Restart=on-failure starts it again.
    assert done.returncode != 0
    assert "failed with code 503" in done.stderr, done.stderr
    assert not state.exists() or "LAST_CURSOR" not in state.read_text()
    assert metric(agent, "fleetlog_agent_receiver_refused_total", listener="tiny", reason="spool_full") == 1

    # A bigger upload fills the queue before the spool (8 MiB) while the spool is full: it is
    # answered 503 in the middle of its body.
    status, retry_after = _post_bulk(port, BULK)
    assert (status, retry_after) == (503, "1")
    assert metric(agent, "fleetlog_agent_receiver_refused_total", listener="tiny", reason="spool_full") == 2
    taken = metric(agent, "fleetlog_agent_receiver_events_received_total", listener="tiny")
    assert count < taken < count + BULK

    collector.start()
    collector.wait_ready()
    wait_for(lambda: metric(agent, "fleetlog_agent_spool_events") == 0 and metric(agent, "fleetlog_agent_events_acked_total")
             == metric(agent, "fleetlog_agent_receiver_events_received_total", listener="tiny"), 60, "the spool drained")
    done = upload(f"http://127.0.0.1:{port}", journal.path, state)
    assert done.returncode == 0, done.stderr
    assert "LAST_CURSOR=" in state.read_text()
    assert _post_bulk(port, BULK) == (200, None)
    events = stored(collector, count, "--source", "journald:busy.service")
    assert len({e["message"] for e in events}) == count
    bulk = stored(collector, BULK, "--source", "journald:bulk.service")
    assert sorted(e["fields"]["cursor"] for e in bulk) == sorted(_bulk_cursor(i) for i in range(BULK))
    assert metric(agent, "fleetlog_agent_receiver_events_received_total", listener="tiny") == count + BULK
    # The retries' entries the relay had already taken (all of the journal's, the bulk's before the 503) are skipped.
    assert metric(agent, "fleetlog_agent_receiver_events_duplicate_total", listener="tiny") == taken


BULK = 1200


def _bulk_cursor(i: int) -> str:
    return f"s=b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0;i={i + 1:x};b={BOOT_ID};m={i:x};t={i:x};x=0"


def _post_bulk(port: int, entries: int) -> tuple[int, str | None]:
    """Entries of 8 KB (9.6 MB for 1200), sent chunked as systemd-journal-upload sends them."""
    def body():
        for i in range(entries):
            yield (f"__CURSOR={_bulk_cursor(i)}\n_SYSTEMD_UNIT=bulk.service\nMESSAGE={i} ".encode()
                   + b"%08x" % i * 1000 + b"\n\n")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/upload", body=body(), encode_chunked=True,
                     headers={"Content-Type": "application/vnd.fdo.journal", "Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")
    finally:
        conn.close()


def _rfc3339(us: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_connections_are_bounded_and_idle_or_slow_ones_closed(relay):
    """Open connections, idle ones too, are counted where they are made: one over max_connections
    is closed at once; one sending nothing, or a request head that never ends, is closed after
    idle_timeout (the HTTP keep-alive timer)."""
    def open_now() -> float:
        return metric(relay.agent, "fleetlog_agent_receiver_connections", listener="bounded")
    port = relay.ports["bounded"]
    assert_connections_bounded(
        port, 3, open_now,
        lambda: metric(relay.agent, "fleetlog_agent_receiver_refused_total", listener="bounded",
                       reason="too_many_connections"),
        first_bytes=b"POST /upload HTTP/1.1\r\nHost: relay\r\n")         # a head that never ends
    # Below the bound again: an upload goes through.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /upload HTTP/1.1\r\nHost: relay\r\nContent-Type: application/vnd.fdo.journal\r\n"
                     b"Content-Length: 0\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 200 ")
