"""The console's exports have bounds (issue 27, items 5 and 10): cells that cannot start a
spreadsheet formula, a PDF row cap refused before rendering, one running export per user, an
export that stops when its client goes away, and none on a nearly full disk."""

from __future__ import annotations

import csv
import http.client
import io
import json
import pathlib

import grpc
import pytest

from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.common.export.writers import PDF_TOO_MANY_ROWS
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc
from fleetlog.common.timefmt import parse_rfc3339_us
from tests.harness import Cluster, free_port, run_cli, wait_for
from tests.web_console import Http, write_tokens

FORMULAS = ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx=1", "\r=1"]
ROWS = 10_000   # on web-1: a PDF of exactly the cap, which takes seconds to render
# On bulk-1: more pages than the collector can read and send ahead into the connection in the
# moment between a client's first page and its cancel (blocks read 10,000 rows in milliseconds).
BULK_ROWS = 200_000


def _events(host: str, users: list[str], messages: list[str]) -> IncomingEvents:
    count = len(messages)
    return IncomingEvents(
        host=host, host_ip="192.0.2.1", source_key="file:app", source="file:/var/log/app.log", namespace="default",
        log_type="application", position=list(range(count)),
        time_us=[parse_rfc3339_us("2025-12-01T10:00:00Z") + i for i in range(count)], level=bytes([6]) * count,
        message=messages, request_id=[""] * count, user=users, action=[""] * count, app=["app"] * count,
        pid=[1] * count, fields_json=[""] * count, flags=bytes(count), tier=["general"] * count)


def _build_store(path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(str(path), "normal", collector="collector-1")
    store.store_batch([_events("web-1", ["alice"] * ROWS, [f"row {i} " + "x" * 60 for i in range(ROWS)]),
                       _events("db-1", ["bob"], ["one row"]),
                       _events("bulk-1", ["alice"] * BULK_ROWS, [f"bulk {i} " + "y" * 60 for i in range(BULK_ROWS)]),
                       _events("calc", FORMULAS, FORMULAS)], parse_rfc3339_us("2026-01-02T00:00:00Z"))
    store.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exports")
    _build_store(tmp / "collector-1" / "data" / "events.db")
    tokens_file, tokens, files = write_tokens(tmp)
    cluster = Cluster(tmp)
    port = free_port()
    try:
        collector = cluster.collector(tokens_file=tokens_file, web={"listen": f"127.0.0.1:{port}"})
        yield collector, port, tokens, files, tmp / "collector-1" / "data"
    finally:
        cluster.stop_all()


def _temp_files(data_dir: pathlib.Path) -> list[str]:
    return sorted(p.name for p in data_dir.glob(".web-download.*"))


def test_console_csv_cells_cannot_start_a_formula(console):
    _, port, tokens, _, _ = console
    reply = Http(f"http://127.0.0.1:{port}", tokens["root"]).get("/api/v1/export?format=csv&host=calc&columns=user,message")
    assert reply.status == 200
    rows = list(csv.reader(io.StringIO(reply.body.decode(), newline="")))
    assert rows == [["user", "message"]] + [["'" + text, "'" + text] for text in FORMULAS]


def test_cli_csv_export_cells_cannot_start_a_formula(console, tmp_path):
    collector, _, _, files, _ = console
    out = tmp_path / "calc.csv"
    done = run_cli("--collector", collector.address, "--token-file", files["root"], "export", "--format", "csv",
                   "--out", str(out), "--host", "calc", "--columns", "user,message")
    assert done.returncode == 0, done.stderr
    with open(out, newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle))[1:] == [["'" + text, "'" + text] for text in FORMULAS]


def test_a_pdf_over_the_row_cap_is_refused_before_rendering(console, tmp_path):
    collector, port, tokens, files, data_dir = console
    reply = Http(f"http://127.0.0.1:{port}", tokens["root"]).get("/api/v1/export?format=pdf")
    assert (reply.status, reply.json()) == (400, {"error": PDF_TOO_MANY_ROWS})
    assert PDF_TOO_MANY_ROWS.startswith("a PDF holds at most 10,000 rows and more events match")
    assert _temp_files(data_dir) == []
    out = tmp_path / "all.pdf"
    done = run_cli("--collector", collector.address, "--token-file", files["root"], "export", "--format", "pdf",
                   "--out", str(out))
    assert (done.returncode, done.stderr) == (2, f"fleetlog export: {PDF_TOO_MANY_ROWS}\n")
    assert list(tmp_path.iterdir()) == []


def test_one_export_per_user_and_a_disconnected_one_stops(console):
    collector, port, tokens, _, data_dir = console
    slow = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    slow.request("GET", "/api/v1/export?format=pdf&host=web-1", headers={"Authorization": f"Bearer {tokens['root']}"})
    wait_for(lambda: _temp_files(data_dir), 30, "the PDF export started")

    root = Http(f"http://127.0.0.1:{port}", tokens["root"])
    second = root.get("/api/v1/export?format=csv&host=db-1")
    assert second.status == 429
    assert second.json() == {"error": "an export or bundle of root is still running; one at a time per user: "
                                      "wait for it to finish (or cancel it) and try again"}
    assert root.get("/api/v1/bundle?host=db-1").status == 429
    other = Http(f"http://127.0.0.1:{port}", tokens["audrey"]).get("/api/v1/export?format=csv&host=db-1")
    assert other.status == 200 and other.body.count(b"one row") == 1    # another user is not held up

    slow.close()   # the client goes away before the PDF is rendered
    marker = "console: export pdf for root stopped after "

    def stopped() -> str | None:
        return next((line for line in collector.log_path.read_text().splitlines() if marker in line), None)
    line = wait_for(stopped, 30, "the export stopped")
    rows = int(line.split(marker)[1].split(" ")[0])
    assert rows < ROWS
    assert _temp_files(data_dir) == []
    again = root.get("/api/v1/export?format=csv&host=db-1")
    assert again.status == 200


def test_exports_one_after_another_are_never_refused(console):
    """The per-user slot is given back before the file is sent: a client that has read a whole
    download may start the next at once."""
    _, port, tokens, _, _ = console
    root = Http(f"http://127.0.0.1:{port}", tokens["root"])
    statuses = [root.get(f"/api/v1/{path}?host=db-1" + ("&format=csv" if path == "export" else "")).status
                for path in ("export", "bundle") * 15]
    assert statuses == [200] * 30


@pytest.mark.parametrize("rpc", ["Search", "Bundle"])
def test_a_cancelled_grpc_export_or_bundle_stops_on_the_collector(console, rpc):
    """`fleetlog export` / `bundle` interrupted: the collector reads no further than the page in
    progress, and an abandoned bundle is never attested."""
    collector, _, tokens, files, _ = console
    with grpc.insecure_channel(collector.address) as channel:
        call = getattr(pb_grpc.QueryStub(channel), rpc)(
            pb.SearchRequest(filters=pb.Filters(host="bulk-1"), purpose=rpc.lower()),
            metadata=(("authorization", f"Bearer {tokens['audrey']}"),))
        next(call)
        call.cancel()
    marker = f"{rpc.lower()} for audrey: cancelled by the client after "

    def cancelled() -> str | None:
        return next((line for line in collector.log_path.read_text().splitlines() if marker in line), None)
    pages = int(wait_for(cancelled, 30, "the collector saw the cancel").split(marker)[1].split(" ")[0])
    assert pages < BULK_ROWS // 1000
    audits = run_cli("--collector", collector.address, "--token-file", files["root"], "search", "--format", "json",
                     "--action", "audit/evidence", "--user", "audrey")
    assert (audits.returncode, audits.stdout) == (0, "")


def test_no_export_on_a_nearly_full_disk(cluster, tmp_path):
    tokens_file, tokens, _ = write_tokens(tmp_path)
    port = free_port()
    cluster.collector(tokens_file=tokens_file, web={"listen": f"127.0.0.1:{port}", "export_min_free": "1000TiB"})
    reply = Http(f"http://127.0.0.1:{port}", tokens["root"]).get("/api/v1/export?format=csv")
    assert reply.status == 507
    error = reply.json()["error"]
    assert error.startswith("only ") and error.endswith(
        " MiB free in the collector's data_dir, less than [web] export_min_free (1024000GiB): no export now")
    assert json.loads(reply.body)  # one JSON line, no traceback
    assert list((tmp_path / "collector-1" / "data").glob(".web-download.*")) == []
