"""The export writers without the `export` extra: CSV and JSON lines still work, XLSX and PDF
fail with one line naming the install command (not an ImportError traceback)."""

from __future__ import annotations

import sys

import pytest

from fleetlog.common.errors import MissingExtraError
from fleetlog.common.export.writers import EXPORTERS

EVENT = {"seq": 1, "time": "2026-01-01T00:00:00.000000Z", "level": "info", "host": "web-1",
         "message": "hello", "fields": {"k": "v"}}


@pytest.mark.parametrize(("fmt", "module", "package"), [("xlsx", "xlsxwriter", "xlsxwriter"),
                                                          ("pdf", "fpdf", "fpdf2")])
def test_a_missing_library_names_the_extra(tmp_path, monkeypatch, fmt, module, package):
    monkeypatch.setitem(sys.modules, module, None)   # what `import module` sees when it is not installed
    with pytest.raises(MissingExtraError) as caught:
        EXPORTERS[fmt](str(tmp_path / f"out.{fmt}"), ["time", "message"])
    message = str(caught.value)
    assert "\n" not in message
    assert package in message and "pip install 'fleetlog[export]'" in message
    assert not (tmp_path / f"out.{fmt}").exists()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_jsonl_need_no_extra(tmp_path, monkeypatch, fmt):
    for module in ("xlsxwriter", "fpdf"):
        monkeypatch.setitem(sys.modules, module, None)
    path = tmp_path / f"out.{fmt}"
    exporter = EXPORTERS[fmt](str(path), ["seq", "message", "fields"])
    exporter.write(EVENT)
    exporter.close()
    text = path.read_text(encoding="utf-8")
    assert "hello" in text and '"k":"v"' in text.replace('""', '"')


def test_the_cli_prints_one_line_and_exits_1(tmp_path, monkeypatch, capsys):
    """`fleetlog export --format xlsx` without xlsxwriter: the CLI's usual one-line error."""
    from fleetlog.cli.client import Connection
    from fleetlog.cli.main import main

    monkeypatch.setitem(sys.modules, "xlsxwriter", None)
    monkeypatch.setattr(Connection, "search", lambda self, request: iter([EVENT]))
    out = tmp_path / "out.xlsx"
    assert main(["export", "--format", "xlsx", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == ("fleetlog export: xlsx files need the 'export' extra (xlsxwriter not installed): "
                   "pip install 'fleetlog[export]'\n")
    assert list(tmp_path.iterdir()) == []


FORMULAS = ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx=1", "\r=1"]


def test_csv_export_cells_cannot_start_a_formula(tmp_path):
    """OWASP's CSV injection: a user `+cmd` or a message `=...` opens in a spreadsheet as text."""
    import csv
    path = tmp_path / "out.csv"
    exporter = EXPORTERS["csv"](str(path), ["user", "message", "seq"])
    for text in FORMULAS:
        exporter.write({**EVENT, "user": text, "message": text})
    exporter.write(EVENT)
    exporter.close()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["user", "message", "seq"]
    assert rows[1:] == [["'" + text, "'" + text, "1"] for text in FORMULAS] + [["", "hello", "1"]]
    assert path.read_text(encoding="utf-8").startswith('"user","message","seq"\n"\'=1+2","\'=1+2","1"\n')


def test_search_format_csv_cells_cannot_start_a_formula():
    """`fleetlog search --format csv` writes the same inert cells as the export."""
    import csv
    import io

    from fleetlog.cli.output import CsvWriter
    out = io.StringIO()
    writer = CsvWriter(out, ["user", "message"])
    for text in FORMULAS:
        writer.write({"user": text, "message": "ok " + text})
    assert list(csv.reader(io.StringIO(out.getvalue(), newline="")))[1:] == [["'" + t, "ok " + t] for t in FORMULAS]
