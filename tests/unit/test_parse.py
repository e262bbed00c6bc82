from fleetlog.agent.parse import make_parser, parse_auto
from fleetlog.common.timefmt import format_us


def test_text_line_keeps_key_values_in_message():
    p = parse_auto("2025-12-02T14:30:45.123456Z INFO req=r00001 user=alice@example.com Login OK seq=7")
    assert format_us(p.time_us) == "2025-12-02T14:30:45.123456Z"
    assert p.level == 6
    assert p.message == "req=r00001 user=alice@example.com Login OK seq=7"
    assert (p.request_id, p.user, p.action) == ("r00001", "alice@example.com", "")
    assert p.fields == {"seq": "7"}


def test_json_line_maps_known_keys():
    p = parse_auto('{"@timestamp": "2025-12-02T14:30:45+01:00", "severity": "warn", "msg": "slow", '
                   '"requestId": "abc", "username": "bob", "event": "user.update", "latency": 12}')
    assert format_us(p.time_us) == "2025-12-02T13:30:45.000000Z"
    assert p.level == 4 and p.message == "slow"
    assert (p.request_id, p.user, p.action) == ("abc", "bob", "user.update")
    assert p.fields == {"latency": 12}


def test_epoch_and_offsets():
    assert format_us(parse_auto('{"ts": 1764685845.5, "msg": "x"}').time_us) == "2025-12-02T14:30:45.500000Z"
    assert format_us(parse_auto('{"ts": 1764685845500, "msg": "x"}').time_us) == "2025-12-02T14:30:45.500000Z"
    assert parse_auto("plain words only").time_us is None


def test_regex_parser():
    parse = make_parser("regex", r"^(?P<time>\S+) \[(?P<level>\w+)\] (?P<rid>\S+) (?P<message>.*)$")
    p = parse("2025-12-02T14:30:45Z [err] r-9 disk full")
    assert p.level == 3 and p.request_id == "r-9" and p.message == "disk full"
    miss = parse("garbage")
    assert miss.message == "garbage" and miss.fields == {"parse_error": "pattern did not match"}


def test_a_time_value_beyond_any_clock_is_no_time_not_a_crash():
    """`time=inf` or a 400-digit epoch once raised OverflowError out of the parser."""
    for line in ("2025-12-02T14:30:45Z INFO a time=inf", "x time=inf", "x time=-inf", "x time=nan", "x time=1e400",
                 '{"time": 1e400, "msg": "x"}', '{"time": ' + "9" * 400 + ', "msg": "x"}'):
        parsed = parse_auto(line)
        assert parsed.time_us is None or line.startswith("2025"), line


def test_a_time_value_beyond_year_9999_is_no_time():
    """`{"time": 1e22}` once made a time the wire cannot carry (the batcher raised), and
    `{"time": 5e20}` one no edge can format (year 15,800)."""
    for value in ("1e22", "5e20", "-1e300", '"1e22"', "-62135596800000001"):
        parsed = parse_auto('{"time": ' + value + ', "msg": "x"}')
        assert parsed.time_us is None, value
    assert format_us(parse_auto('{"time": 2.5e20, "msg": "x"}').time_us).startswith("9892-")   # ns
    assert parse_auto('{"time": 2.6e20, "msg": "x"}').time_us is None
    assert parse_auto('{"time": -62135596800, "msg": "x"}').time_us == -62135596800 * 1_000_000
