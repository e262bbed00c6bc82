"""The syslog receiver's parser, framing and mapping (agent/sources/syslog_parse.py, syslog_framing.py,
syslog.to_record): each RFC form and the real-world variants, with exact fields; junk never raises."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from fleetlog.agent.sources.syslog import SyslogSourceConfig, certificate_name, peer_host
from fleetlog.agent.sources.syslog_framing import Frame, FrameSplitter
from fleetlog.agent.sources.syslog_parse import SyslogMessage, parse_syslog
from fleetlog.agent.sources.syslog_records import cut_utf8, to_record
from fleetlog.common.config import FieldError
from fleetlog.common.tls import TlsFiles

NOW = dt.datetime(2026, 12, 3, 18, 0, tzinfo=dt.UTC)


def us(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1_000_000)


def parse(frame: bytes) -> SyslogMessage:
    return parse_syslog(frame, NOW)


# -- RFC 5424 -------------------------------------------------------------------------------------

def test_rfc5424_examples_of_the_rfc():
    m = parse(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
              b"\xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8")
    assert m == SyslogMessage("auth", 2, us("2003-10-11T22:14:15.003+00:00"), "mymachine.example.com", "su", 0, "",
                              "ID47", None, "'su root' failed for lonvick on /dev/pts/8", "rfc5424")
    m = parse(b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.")
    assert (m.facility, m.severity, m.time_us, m.hostname, m.app, m.pid, m.message) == (
        "local4", 5, us("2003-08-24T12:14:15.000003+00:00"), "192.0.2.1", "myproc", 8710,
        "%% It's time to make the do-nuts.")
    m = parse(b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
              b'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]')
    assert m.structured == {"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                            "examplePriority@32473": {"class": "high"}}
    assert (m.message, m.problem) == ("", "")


def test_rfc5424_escapes_nil_values_and_a_procid_that_is_not_a_number():
    m = parse(b'<14>1 - - - worker-3 - [a@1 q="say \\"hi\\" \\\\ \\]"] text ')
    assert (m.time_us, m.hostname, m.app, m.pid, m.procid, m.msgid) == (None, "", "", 0, "worker-3", "")
    assert m.structured == {"a@1": {"q": 'say "hi" \\ ]'}}
    assert m.message == "text "


def test_rfc5424_rsyslog_forwarding_a_3164_message_keeps_no_leading_space():
    m = parse(b"<133>1 2026-12-03T18:00:00.123456+01:00 node-4 payments 99 - -  relayed text\n")
    assert (m.time_us, m.app, m.pid, m.message) == (us("2026-12-03T17:00:00.123456+00:00"), "payments", 99,
                                                     "relayed text")


@pytest.mark.parametrize(("frame", "problem"), [
    (b"<14>1 yesterday h a - - - text", "bad_timestamp"),
    (b"<14>1 2026-02-30T00:00:00Z h a - - - text", "bad_timestamp"),
    (b'<14>1 - h a - - [x@1 a="unterminated', "bad_structured_data"),
    (b"<14>1 - h a - - notsd text", "bad_structured_data"),
    (b"<192>1 - h a - - - text", "bad_priority"),
    (b"<014>1 - h a - - - text", "bad_priority"),
])
def test_rfc5424_faults_are_named_and_the_text_kept(frame, problem):
    m = parse(frame)
    assert m.problem == problem
    assert m.message


# -- RFC 3164 and what real senders emit -----------------------------------------------------------

def test_rfc3164_without_year_takes_this_year_or_the_last():
    m = parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
    assert m == SyslogMessage("auth", 2, us("2026-10-11T22:14:15+00:00"), "mymachine", "su", 0, "", "", None,
                              "'su root' failed for lonvick on /dev/pts/8", "rfc3164")
    # A line of 31 December read on 1 January belongs to the year before.
    assert parse_syslog(b"<13>Dec 31 23:59:59 h a: x", dt.datetime(2027, 1, 1, 0, 0, 5, tzinfo=dt.UTC)).time_us == \
        us("2026-12-31T23:59:59+00:00")


def test_rfc3164_missing_hostname_as_journald_and_local_logger_send_it():
    m = parse(b"<30>Dec  3 17:59:01 systemd[1]: Started Session 4 of user alice.\n")
    assert (m.facility, m.severity, m.hostname, m.app, m.pid, m.message) == (
        "daemon", 6, "", "systemd", 1, "Started Session 4 of user alice.")
    m = parse(b"<13>Dec  3 17:59:01 cron: job done")
    assert (m.hostname, m.app, m.message) == ("", "cron", "job done")


def test_rfc3164_iso_dates_of_rsyslog_and_syslog_ng():
    m = parse(b"<14>2026-12-03T17:00:00.5+02:00 web-1 nginx[99]: GET / 200")
    assert (m.time_us, m.hostname, m.app, m.pid, m.message, m.form) == (
        us("2026-12-03T15:00:00.5+00:00"), "web-1", "nginx", 99, "GET / 200", "rfc3164")


def test_network_devices():
    # Cisco IOS: sequence number, '*' for an unsynchronised clock, milliseconds, no hostname.
    m = parse(b"<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0")
    assert (m.facility, m.severity, m.time_us, m.hostname, m.app, m.message) == (
        "local7", 5, us("2026-03-01T18:46:11.123+00:00"), "", "", "%SYS-5-CONFIG_I: Configured from console by vty0")
    # A year in the stamp, a hostname, and a message that is no tag.
    m = parse(b"<187>Oct 12 2024 10:00:00 sw-core-1 %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to down")
    assert (m.severity, m.time_us, m.hostname, m.message) == (
        3, us("2024-10-12T10:00:00+00:00"), "sw-core-1", "%LINK-3-UPDOWN: Interface Gi1/0/1, changed state to down")
    # RFC 3164's own example: an address as hostname, no tag.
    m = parse(b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!")
    assert (m.hostname, m.app, m.message) == ("10.0.0.99", "", "Use the BFG!")


def test_a_priority_only_and_no_priority():
    assert parse(b"<13>free text") == SyslogMessage("user", 5, None, "", "", 0, "", "", None, "free text",
                                                    "priority_only")
    m = parse(b"<11>sshd[7]: prio and tag")
    assert (m.severity, m.app, m.pid, m.message) == (3, "sshd", 7, "prio and tag")
    m = parse(b"no header at all\r\n")
    assert (m.facility, m.severity, m.message, m.problem) == ("user", 5, "no header at all", "no_priority")


def test_junk_never_raises():
    rng = random.Random(29)
    seeds = [b"<", b"<1", b"<14>1", b"<14>1 ", b"<14>1 - - - - - [", b"<14>Dec", b"<14>Dec 3", b"\xff\xfe<13>",
             b"<14>1 - h a - - [a@1 b=\"\\", b"1: *", b"<0>"]
    for _ in range(3000):
        frame = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        seeds.append(rng.choice(seeds[:11]) + frame)
    for frame in seeds:
        m = parse(frame)
        assert m.severity is None or 0 <= m.severity <= 7
        assert isinstance(m.message, str)


def test_invalid_utf8_is_kept_and_marked():
    record = to_record(parse(b"<14>1 - h a - - - caf\xe9"), 0, False, 1)
    assert record.parsed.message == "caf\ufffd"
    assert record.parsed.fields == {"facility": "user", "invalid_utf8": True}


# -- the mapping to a record ------------------------------------------------------------------------

def test_to_record_maps_pri_app_pid_msgid_structured_data_and_the_claim():
    m = parse(b'<190>1 2026-12-03T18:00:00Z web-9 billing 4242 ORDER [shop@32473 user="alice" cart="7"]'
              b'[meta request_id="r-1"] paid')
    record = to_record(m, 17, True, 5)
    assert (record.position, record.app, record.pid, record.flags, record.read_time_us) == (17, "billing", 4242, 1, 5)
    parsed = record.parsed
    assert (parsed.time_us, parsed.level, parsed.message) == (us("2026-12-03T18:00:00+00:00"), 6, "paid")
    assert (parsed.request_id, parsed.user, parsed.action) == ("r-1", "alice", "")
    assert parsed.fields == {"facility": "local7", "msgid": "ORDER", "shop@32473": {"cart": "7"}}
    assert parsed.claimed_host == "web-9"


# -- framing --------------------------------------------------------------------------------------

def test_octet_counting_across_reads_with_a_cut_message():
    splitter = FrameSplitter(10)
    assert splitter.feed(b"5 hello3 abc\n") == [Frame(b"hello", False), Frame(b"abc", False)]
    assert splitter.feed(b"12 0123456789") == [Frame(b"0123456789", True)]
    assert splitter.feed(b"ab4 x") == []         # "ab" is the skipped rest
    assert splitter.feed(b"yz") == []
    assert splitter.feed(b"w") == [Frame(b"xyzw", False)]
    assert splitter.framing == "octet" and splitter.pending() == 0


def test_octet_counting_broken_keeps_what_came_before():
    splitter = FrameSplitter(100)
    assert splitter.feed(b"5 <14>xzz 9 more") == [Frame(b"<14>x", False)]
    assert splitter.broken is not None and splitter.broken.reason == "bad_octet_count"
    assert splitter.feed(b"3 abc") == []
    too_long = FrameSplitter(100)
    too_long.feed(b"12345678901")
    assert too_long.broken is not None


def test_lf_framing_with_a_long_line_and_a_last_line_without_lf():
    splitter = FrameSplitter(5)
    assert splitter.feed(b"<1>a\n<1>bcdefgh") == [Frame(b"<1>a", False), Frame(b"<1>bc", True)]
    assert splitter.feed(b"ijk\nlast") == []
    assert splitter.end() == Frame(b"last", False)
    assert splitter.framing == "lf"


def test_an_octet_counted_message_cut_by_the_peer_is_not_a_message():
    splitter = FrameSplitter(100)
    assert splitter.feed(b"20 <14>1 - h") == []
    assert splitter.pending() and splitter.end() is None


# -- config and origin ----------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "key"), [
    ({"listen": "127.0.0.1"}, "listen"),
    ({"listen": "127.0.0.1:70000"}, "listen"),
    ({"listen": ":6514", "protocol": "tls"}, "tls"),
    ({"listen": ":514", "tls": TlsFiles(cert="c", key="k")}, "tls"),
    ({"listen": ":514", "max_message_bytes": 10}, "max_message_bytes"),
])
def test_config_errors_name_the_key(kwargs, key):
    with pytest.raises(FieldError) as caught:
        SyslogSourceConfig(type="syslog", **kwargs).validate()
    assert caught.value.key == key


def test_listener_names_and_peer_addresses():
    assert SyslogSourceConfig(type="syslog", listen=":514", protocol="tcp").listener == "syslog-tcp-514"
    assert SyslogSourceConfig(type="syslog", listen=":514", name="edge").listener == "edge"
    assert peer_host(("::ffff:10.1.2.3", 5000, 0, 0)) == "10.1.2.3"
    assert peer_host(("fe80::1%eth0", 5000, 0, 1)) == "fe80::1"
    assert peer_host(("127.0.0.1", 5000)) == "127.0.0.1"


class _Ssl:
    def __init__(self, cert):
        self.cert = cert

    def getpeercert(self):
        return self.cert


def test_certificate_name_is_cn_else_first_dns_san():
    assert certificate_name(_Ssl({"subject": ((("commonName", "switch-7"),),)})) == "switch-7"
    assert certificate_name(_Ssl({"subject": (), "subjectAltName": (("IP Address", "10.0.0.1"),
                                                                       ("DNS", "sw8.example"))})) == "sw8.example"
    assert certificate_name(_Ssl({})) == ""
    assert certificate_name(None) == ""


def test_what_a_listener_hands_the_batcher_is_cut_to_bounded_batches():
    """A found bug: 7,400 queued 1 KB messages went out as one source batch, sealed into a 7.8 MB
    wire batch that the collector refused (over gRPC's 4 MiB) again and again."""
    from fleetlog.agent.sources.syslog import EMIT_BYTES, EMIT_RECORDS, _slices
    records = [to_record(parse(b"<14>1 - - a - - - " + b"x" * 1000), i, False, 0) for i in range(7400)]
    slices = _slices(records)
    assert [r.position for part, _ in slices for r in part] == list(range(7400))
    for part, size in slices:
        assert size == sum(len(r.parsed.message) for r in part)
        assert size <= EMIT_BYTES + 1000 and len(part) <= EMIT_RECORDS
    assert len(_slices([to_record(parse(b"<14>x"), i, False, 0) for i in range(12_000)])) == 3


def test_agent_toml_with_syslog_listeners(tmp_path):
    from fleetlog.agent.config import load_agent_config
    from fleetlog.common.errors import ConfigError
    path = tmp_path / "agent.toml"
    path.write_text('[[sources]]\ntype = "syslog"\nprotocol = "tls"\nlisten = "0.0.0.0:6514"\nnamespace = "network"\n'
                    'max_message_bytes = "8KiB"\nidle_timeout = "1m"\n'
                    'tls = { cert = "/etc/fleetlog/relay.crt", key = "/etc/fleetlog/relay.key", ca = "/etc/ca.pem" }\n')
    source = load_agent_config(str(path)).sources[0]
    assert isinstance(source, SyslogSourceConfig)
    assert (source.listener, source.namespace, source.max_message_bytes, source.idle_timeout, source.tls.ca) == (
        "syslog-tls-6514", "network", 8192, 60.0, "/etc/ca.pem")
    path.write_text('[[sources]]\ntype = "syslog"\nlisten = ":514"\nframing = "lf"\n')
    with pytest.raises(ConfigError, match=r"sources\[0\]\.framing"):
        load_agent_config(str(path))


def test_a_cut_message_does_not_end_in_half_a_character():
    text = "grüße 日本 🚀".encode()
    for end in range(len(text) + 1):
        cut = cut_utf8(text[:end])
        assert text.startswith(cut) and end - len(cut) < 4
        cut.decode("utf-8")                      # never raises: whole characters only
    assert cut_utf8(b"abc\xff") == b"abc\xff"     # not UTF-8 to begin with: left as it is


def test_a_listener_whose_address_is_taken_tries_again(monkeypatch, tmp_path, caplog):
    """Bound to nothing while another process holds the port (say, across a reload): it says so
    and binds once the port is free, instead of ending the source."""
    import asyncio
    import contextlib
    import socket

    from fleetlog.agent.sources import syslog
    monkeypatch.setattr(syslog, "BIND_RETRY", 0.05)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    source = syslog.SyslogSource(SyslogSourceConfig(type="syslog", listen=f"127.0.0.1:{port}", protocol="tcp"),
                                 tmp_path)

    async def scenario() -> None:
        async def emit(batch):
            pass
        task = asyncio.create_task(source.run(emit))
        for _ in range(200):
            if "trying again" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert source.bound is None
        holder.close()
        for _ in range(200):
            if source.bound:
                break
            await asyncio.sleep(0.01)
        assert source.bound == ("127.0.0.1", port)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    asyncio.run(scenario())
