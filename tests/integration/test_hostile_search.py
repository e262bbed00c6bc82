"""The worst search a reader can send does not freeze the collector (issue 27 item 2): with a
stored line of 40 a's and a `!`, `--message-regex '(a+)+$'` (which Python's re never finishes)
sent through the console's API and the CLI at once leaves /readyz answering and an agent's new
lines being stored, and each search ends with its correct empty answer; a pattern over the cap is
a 400 / exit 2 with the reason."""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

import pytest

from tests.harness import Cluster, committed_events, run_cli, wait_for, write_lines
from tests.web_console import Http, start_console

HOSTILE = "a" * 40 + "!"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-search")
    cluster = Cluster(folder)
    try:
        console = start_console(cluster, folder)
        write_lines(console.logs["web-1"], [f"2025-12-01T10:01:00.000Z INFO {HOSTILE}"])
        wait_for(lambda: console.cli_events("--where", "message=%aaaa!%"), 30, "the line of a's stored")
        yield console
    finally:
        cluster.stop_all()


def _readyz_seconds(collector) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{collector.metrics_port}/readyz", timeout=5) as reply:
        assert reply.status == 200
    return time.monotonic() - started


def test_a_catastrophic_regex_leaves_the_collector_live(console):
    results: dict[str, Any] = {}

    def via_api() -> None:
        try:
            results["api"] = Http(console.base, token=console.tokens["root"]).get(
                "/api/v1/events?message_regex=(a%2B)%2B$&log_type=application", timeout=90)
        except Exception as exc:   # noqa: BLE001 — reported by the assertion below
            results["api"] = exc

    def via_cli() -> None:
        try:
            results["cli"] = run_cli("--collector", console.collector.address, "--token-file",
                                     console.token_files["root"], "search", "--format", "json", "--limit", "0",
                                     "--message-regex", "(a+)+$", "--log-type", "application", timeout=90)
        except Exception as exc:   # noqa: BLE001
            results["cli"] = exc

    db = console.collector.config["data_dir"] + "/events.db"
    before = committed_events(db, "pay-1")
    threads = [threading.Thread(target=via_api, daemon=True), threading.Thread(target=via_cli, daemon=True)]
    for thread in threads:
        thread.start()
    # While the searches run (and after): readiness answers, and an agent's new line is stored.
    write_lines(console.logs["pay-1"], ["2025-12-01T10:02:00.000Z INFO req=pay-2 user=dave card accepted"])
    assert _readyz_seconds(console.collector) < 5
    wait_for(lambda: committed_events(db, "pay-1") == before + 1, 30, "the agent's new line stored")
    while any(thread.is_alive() for thread in threads):
        assert _readyz_seconds(console.collector) < 5
        threads[0].join(0.2)
    for thread in threads:
        thread.join(90)

    reply = results["api"]
    assert not isinstance(reply, Exception), reply
    assert reply.status == 200, reply.text
    assert reply.json()["events"] == []
    cli = results["cli"]
    assert not isinstance(cli, Exception), cli
    assert (cli.returncode, cli.stdout, cli.stderr) == (0, "", "")


def test_a_pattern_over_the_cap_is_refused_with_the_reason(console):
    reply = Http(console.base, token=console.tokens["root"]).get("/api/v1/events?message_regex=" + "a" * 513)
    assert reply.status == 400
    assert reply.json() == {"error": "--message-regex: the pattern is 513 bytes long; at most 512 are accepted"}
    cli = run_cli("--collector", console.collector.address, "--token-file", console.token_files["root"],
                  "search", "--message-regex", "a" * 513)
    assert cli.returncode == 2
    assert cli.stderr.strip().endswith("--message-regex: the pattern is 513 bytes long; at most 512 are accepted")


def test_a_backreference_is_a_400_naming_the_syntax(console):
    reply = Http(console.base, token=console.tokens["root"]).get("/api/v1/events?message_regex=(a)%5C1")
    assert reply.status == 400
    assert reply.json()["error"].endswith("(RE2 syntax: no backreferences or lookaround)")


def test_a_search_past_the_query_timeout_ends_with_the_clear_error_everywhere(cluster, tmp_path):
    """300,000 stored events, `[storage] query_timeout = "100ms"` and a regex that matches none:
    the console's API answers 503 with the reason in JSON, gRPC RESOURCE_EXHAUSTED reaches the CLI
    as that one line (exit 1); a narrowed search still answers."""
    from fleetlog.collector.store.sqlite import SqliteStore
    from tests.harness import free_port
    from tests.unit.store_helpers import incoming

    data = tmp_path / "collector-q" / "data"
    data.mkdir(parents=True)
    store = SqliteStore(str(data / "events.db"), "normal", collector="collector-q")
    day = 1_764_547_200_000_000
    for start in range(0, 300_000, 50_000):
        positions = list(range(start + 1, start + 50_001))
        store.store_batch([incoming("bulk-1", "bulk.log", positions, time_us=[day + p * 1000 for p in positions],
                                    messages=[f"line {p} of the bulk load" for p in positions])], day)
    store.close()
    web_port = free_port()
    collector = cluster.collector("collector-q", storage={"query_timeout": "100ms"},
                                  web={"listen": f"127.0.0.1:{web_port}"})
    expected = ("the query ran longer than 0.1 s and was stopped; "
                "narrow it with --since/--until, --host or --namespace")

    # A regex that holds no plain text (regex_literal.py would find `zzz` in the message column
    # at C speed) and matches nothing: every message goes through RE2.
    reply = Http(f"http://127.0.0.1:{web_port}").get("/api/v1/events?message_regex=%5Bxz%5D%7B3%7D")
    assert (reply.status, reply.json()) == (503, {"error": expected})
    cli = run_cli("--collector", collector.address, "search", "--message-regex", "[xz]{3}")
    assert cli.returncode == 1
    assert cli.stderr.strip() == f"fleetlog search: collector {collector.address}: {expected}"
    narrowed = run_cli("--collector", collector.address, "search", "--format", "json", "--message-regex", "line 7 ",
                       "--since", "2025-12-01T00:00:00Z", "--until", "2025-12-01T00:00:00.010Z")
    assert narrowed.returncode == 0, narrowed.stderr
    assert [line for line in narrowed.stdout.splitlines() if line] and "line 7 of" in narrowed.stdout
    assert _readyz_seconds(collector) < 5
