"""The console in a real browser (Debian's headless Chromium driven by Playwright) against a real
collector and real agents: sign in, filter, trace across two nodes, live tail of a line appended to
an agent's log file, downloads opened with csv/openpyxl, notes, sign-out, namespace isolation, and
log lines that try to inject markup rendered as plain text. Writes the console's screenshots to
var/screenshots/ (git-ignored); `make docs-screenshots` copies them into docs/."""

from __future__ import annotations

import csv

import openpyxl
import pytest
from playwright.sync_api import Page

from tests.harness import Cluster, write_lines
from tests.web_console import SCREENSHOTS, XSS_IMG, XSS_SCRIPT, Console, start_console

SCREENSHOT_NAMES = ("console-events.png", "console-trace.png", "console-status.png")


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web-browser")
    cluster = Cluster(folder)
    try:
        yield start_console(cluster, folder)
    finally:
        cluster.stop_all()


def sign_in(page: Page, console: Console, who: str, path: str = "/events") -> None:
    page.goto(console.base + path)
    assert "/signin" in page.url
    page.fill("#token", console.tokens[who])
    page.click("#signin")
    page.wait_for_url(lambda url: "/signin" not in url)


def column(page: Page, name: str) -> list[str]:
    columns = page.get_attribute("#events", "data-columns").split(",")
    index = columns.index(name) + 1
    return [cell.strip() for cell in page.locator(f"#rows tr:not(.empty-row) td:nth-child({index})").all_inner_texts()]


def test_sign_in_filter_by_user_and_level_then_trace_across_two_nodes(page, console):
    sign_in(page, console, "root", "/events?log_type=application")
    assert page.inner_text("#signed-in-as") == "root (admin)"
    page.fill("input[name=user]", "alice")
    page.press("input[name=user]", "Enter")
    page.wait_for_url("**/events?*user=alice*")
    assert "host=" not in page.url and "since=" not in page.url    # empty filters stay out of the URL
    assert column(page, "user") == ["alice"] * 4
    page.fill("input[name=level]", "warning")
    page.press("input[name=level]", "Enter")
    page.wait_for_url("**level=warning*")
    assert column(page, "level") == ["warning"]
    assert column(page, "message") == ["req=req-7f3a user=alice cart slow"]
    page.click("#rows a[href='/trace/req-7f3a']")
    page.wait_for_url("**/trace/req-7f3a")
    assert page.inner_text("#trace-summary").startswith("4 steps across 2 nodes: web-1, web-2")
    hosts = page.locator("#trace tbody td.host").all_inner_texts()
    assert hosts == ["web-1", "web-2", "web-1", "web-2"]
    assert page.locator("#trace tbody td.num").all_inner_texts() == ["+0.000 ms", "+100.000 ms", "+200.000 ms",
                                                                     "+300.000 ms"]
    page.screenshot(path=str(SCREENSHOTS / "console-trace.png"), full_page=True)
    # More columns on demand; the choice is in the URL too.
    page.go_back()
    page.wait_for_url("**level=warning*")
    page.click("details.columns summary")
    page.check(".column-choice[value=seq]")
    page.check(".column-choice[value=namespace]")
    page.uncheck(".column-choice[value=request_id]")
    page.click("#apply")
    page.wait_for_url("**columns=time%2Clevel%2Cuser%2Cmessage%2Chost%2Cseq%2Cnamespace*")
    assert page.locator("#events thead tr:first-child th").all_inner_texts() == [
        "time", "level", "user", "message", "host", "seq", "namespace"]
    assert column(page, "namespace") == ["default"]
    page.goto(console.base + "/trace/req-7f3a")
    # A click on a host filters by it.
    page.click("#trace tbody td.host a >> nth=1")
    page.wait_for_url("**/events?host=web-2")
    assert set(column(page, "host")) == {"web-2"}


def test_chart_and_screenshots_of_events_and_status(page, console):
    sign_in(page, console, "root", "/events?log_type=application&since=2025-12-01T09:59:59Z"
                                   "&until=2025-12-01T10:00:06Z")
    page.wait_for_selector("#chart-area svg rect.lv-info")
    assert page.locator("#chart-area svg rect.lv-error").count() == 3    # three buckets hold an error
    page.screenshot(path=str(SCREENSHOTS / "console-events.png"), full_page=True)
    # Dragging across the chart narrows the time range.
    box = page.locator("#chart-area svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.95, box["y"] + 30, steps=5)
    page.mouse.up()
    page.wait_for_url(lambda url: "since=2025-12-01T10%3A00%3A0" in url)
    assert set(column(page, "user")) <= {"mallory", "dave"} and column(page, "user")
    page.goto(console.base + "/status")
    assert page.locator("#nodes tbody tr").count() == 3
    page.screenshot(path=str(SCREENSHOTS / "console-status.png"), full_page=True)


def test_live_tail_shows_a_line_appended_to_an_agent_log_and_pauses(page, console):
    sign_in(page, console, "audrey", "/events?host=web-1&log_type=application")
    page.click("#follow")
    page.locator("#live-state", has_text="following new events").wait_for()
    write_lines(console.logs["web-1"], ["2025-12-01T10:01:00.000Z ERROR req=req-live user=erin appended live"])
    page.wait_for_selector("#rows tr:first-child >> text=appended live")
    assert column(page, "user")[0] == "erin"
    page.click("#pause")
    write_lines(console.logs["web-1"], ["2025-12-01T10:01:01.000Z INFO user=erin while paused"])
    page.click("#resume")   # resumes after the last event shown: nothing missed while paused
    page.wait_for_selector("#rows tr:first-child >> text=while paused")
    assert column(page, "message")[:2] == ["user=erin while paused", "req=req-live user=erin appended live"]


def test_download_csv_and_excel_and_open_them(page, console, tmp_path):
    sign_in(page, console, "audrey", "/events?user=bob")
    files = {}
    for kind in ("csv", "xlsx"):
        with page.expect_download() as info:
            page.click(f"#export-{kind}")
        files[kind] = tmp_path / info.value.suggested_filename
        info.value.save_as(files[kind])
    assert files["csv"].suffix == ".csv" and files["xlsx"].suffix == ".xlsx"
    with open(files["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["host"], r["user"], r["level"]) for r in rows] == [("web-1", "bob", "error")]
    sheet = openpyxl.load_workbook(files["xlsx"]).active
    header = [c.value for c in sheet[1]]
    assert sheet.max_row == 2 and sheet.cell(2, header.index("message") + 1).value == \
        "req=req-9b1c user=bob payment failed"


def test_add_a_note_then_sign_out(page, console):
    sign_in(page, console, "root", "/notes")
    page.wait_for_url("**/events?action=Admin.EventLog.Note")
    page.click("details.note summary")
    page.fill("#note-text", "maintenance window: payments restarted")
    with page.expect_navigation():
        page.click("#note-add")
    assert "maintenance window: payments restarted" in column(page, "message")
    assert console.cli_events("--action", "Admin.EventLog.Note")[-1]["user"] == "root"
    page.click("#signout")
    page.wait_for_url("**/signin")
    page.goto(console.base + "/events")
    assert "/signin" in page.url


def test_namespace_auditor_sees_nothing_of_another_namespace(page, console):
    sign_in(page, console, "payaud")
    assert set(column(page, "host")) == {"pay-1"}
    page.goto(console.base + "/events?host=web-1")
    assert page.inner_text("#rows") == "No event matches these filters."
    page.goto(console.base + "/trace/req-7f3a")
    assert page.inner_text("#trace tbody") == "No event has this request id."
    assert page.locator("details.note").count() == 0   # namespace auditors add no notes


def test_injected_markup_renders_as_text_and_runs_nothing(page, console):
    sign_in(page, console, "root", "/events?user=mallory")
    page.wait_for_selector("#chart-area svg")
    messages = column(page, "message")
    assert messages == [f"user=mallory {XSS_IMG}", f"user=mallory {XSS_SCRIPT}"]
    assert page.locator("#events img").count() == 0 and page.locator("#rows script").count() == 0
    page.click("#follow")   # rows added live are text too
    page.locator("#live-state", has_text="following new events").wait_for()
    write_lines(console.logs["web-1"], [f"2025-12-01T10:02:00.000Z ERROR user=mallory live {XSS_IMG}"])
    page.wait_for_selector("#rows tr:first-child >> text=live")
    assert column(page, "message")[0] == f"user=mallory live {XSS_IMG}"
    assert page.locator("#events img").count() == 0
    assert page.dialogs == []   # type: ignore[attr-defined]


def test_screenshots_were_written():
    for name in SCREENSHOT_NAMES:
        assert (SCREENSHOTS / name).stat().st_size > 10_000
