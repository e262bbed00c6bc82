"""Export writers (csv, jsonl, xlsx, pdf): each takes events one at a time, so an export of
millions of rows never holds them in memory (xlsx via xlsxwriter's constant_memory mode, which
flushes each row as it is written).

PDF is the exception worth knowing: fpdf2 keeps the finished pages (compressed at the end) until
the file is written, so its memory grows with the page count — about 40 rows per page; hence
PDF_MAX_ROWS.

xlsxwriter and fpdf2 come with the `export` extra and are imported when a file of their format is
written, so CSV and JSON lines work without them.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import json
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Protocol

from fleetlog.common.errors import MissingExtraError, UsageError, the_extra
from fleetlog.common.export.columns import cell, csv_cell

XLSX_MAX_ROWS = 1_048_576   # Excel's sheet limit, header included
# A PDF is a report, rendered at some 500 rows a second with every page in memory: above this
# many rows it is refused before anything is rendered (the CLI and the console alike).
PDF_MAX_ROWS = 10_000
PDF_TOO_MANY_ROWS = (f"a PDF holds at most {PDF_MAX_ROWS:,} rows and more events match: narrow the filters, "
                     "or export csv, xlsx or jsonl")


def _library(module: str, package: str, fmt: str) -> ModuleType:
    """The library that writes `fmt`, or one line saying which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{fmt} files need {the_extra('export', package)}") from None


class Exporter(Protocol):
    def write(self, event: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class CsvExporter:
    def __init__(self, path: str, columns: Sequence[str], **_: Any):
        self.handle = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 — closed in close()
        self.columns = list(columns)
        self.writer = csv.writer(self.handle, quoting=csv.QUOTE_ALL)
        self.writer.writerow(self.columns)

    def write(self, event: dict[str, Any]) -> None:
        self.writer.writerow([csv_cell(event.get(c)) for c in self.columns])

    def close(self) -> None:
        self.handle.close()


class JsonlExporter:
    def __init__(self, path: str, columns: Sequence[str], **_: Any):
        self.handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 — closed in close()
        self.columns = list(columns)

    def write(self, event: dict[str, Any]) -> None:
        record = {c: event.get(c) for c in self.columns}
        self.handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.handle.close()


_XLSX_WIDTHS = {"time": 28, "received_at": 28, "message": 80, "id": 34, "source": 30, "fields": 40}
_NUMERIC = {"seq", "pid"}


class XlsxExporter:
    """One row per event; a new sheet after Excel's row limit. Numbers stay numbers, times stay
    RFC 3339 text (exact to the microsecond, which Excel dates are not)."""

    def __init__(self, path: str, columns: Sequence[str], **_: Any):
        xlsxwriter = _library("xlsxwriter", "xlsxwriter", "xlsx")
        self.book = xlsxwriter.Workbook(path, {"constant_memory": True, "strings_to_numbers": False,
                                               "strings_to_urls": False, "strings_to_formulas": False})
        self.bold = self.book.add_format({"bold": True})
        self.columns = list(columns)
        self.sheets = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        self.sheets += 1
        self.sheet = self.book.add_worksheet("events" if self.sheets == 1 else f"events-{self.sheets}")
        for index, column in enumerate(self.columns):
            self.sheet.set_column(index, index, _XLSX_WIDTHS.get(column, 14))
            self.sheet.write_string(0, index, column, self.bold)
        self.sheet.freeze_panes(1, 0)
        self.row = 1

    def write(self, event: dict[str, Any]) -> None:
        if self.row >= XLSX_MAX_ROWS:
            self._new_sheet()
        for index, column in enumerate(self.columns):
            value = event.get(column)
            if column in _NUMERIC and isinstance(value, int):
                self.sheet.write_number(self.row, index, value)
            elif value is not None and value != "":
                self.sheet.write_string(self.row, index, cell(value)[:32767])
        self.row += 1

    def close(self) -> None:
        self.book.close()


_PDF_WEIGHTS = {"time": 3.4, "received_at": 3.4, "level": 1.4, "host": 1.8, "request_id": 2.0, "user": 1.8,
                "message": 9.0, "id": 4.0, "seq": 1.0, "pid": 0.9, "fields": 4.0, "source": 3.0,
                "truncated": 1.2}


def _latin1(text: str) -> str:
    """The PDF core fonts speak Latin-1; other characters are shown as `?`."""
    return text.encode("latin-1", "replace").decode("latin-1")


class PdfExporter:
    """A readable table on landscape A4: a title with the filters used on every page, the column
    header repeated on each page, long messages wrapped, `Page N of M` at the bottom."""

    LINE = 4.2

    def __init__(self, path: str, columns: Sequence[str], *, title: str = "fleetlog export",
                 filters: str = "", collector: str = "", **_: Any):
        FPDF: Any = _library("fpdf", "fpdf2", "pdf").FPDF
        exporter = self
        self.path = path
        self.columns = list(columns)
        self.count = 0
        self.subtitle = _latin1(f"filters: {filters or '(none)'}   collector: {collector}   generated: "
                                f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}")

        class _Pdf(FPDF):
            def header(self) -> None:
                self.set_font("Helvetica", "B", 12)
                self.cell(0, 6, _latin1(title), new_x="LMARGIN", new_y="NEXT")
                self.set_font("Helvetica", "", 7.5)
                self.multi_cell(0, 4, exporter.subtitle, new_x="LMARGIN", new_y="NEXT")
                self.ln(1)
                exporter._column_header()

            def footer(self) -> None:
                self.set_y(-10)
                self.set_font("Helvetica", "", 7.5)
                self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")

        self.pdf = _Pdf(orientation="L", unit="mm", format="A4")
        self.pdf.set_auto_page_break(False)
        self.pdf.set_margins(8, 8, 8)
        usable = self.pdf.w - 16
        weights = [_PDF_WEIGHTS.get(c, 1.8) for c in self.columns]
        self.widths = [usable * w / sum(weights) for w in weights]
        self.pdf.add_page()
        self.pdf.set_font("Helvetica", "", 7)

    def _column_header(self) -> None:
        pdf = self.pdf
        pdf.set_font("Helvetica", "B", 7.5)
        pdf.set_fill_color(225, 225, 225)
        for column, width in zip(self.columns, self.widths):
            pdf.cell(width, 5, column, border=1, fill=True)
        pdf.ln(5)
        pdf.set_font("Helvetica", "", 7)

    def write(self, event: dict[str, Any]) -> None:
        if self.count >= PDF_MAX_ROWS:
            raise UsageError(PDF_TOO_MANY_ROWS)
        pdf = self.pdf
        texts = [_latin1(cell(event.get(c)).replace("\r", " ")) for c in self.columns]
        lines = [pdf.multi_cell(w - 1, self.LINE, t, dry_run=True, output="LINES") or [""]
                 for w, t in zip(self.widths, texts)]
        lines = [chunk[:12] for chunk in lines]   # a giant message stays one row, cut after 12 lines
        height = max(len(chunk) for chunk in lines) * self.LINE
        if pdf.get_y() + height > pdf.h - 12:
            pdf.add_page()
        y = pdf.get_y()
        x = pdf.l_margin
        for chunk, width in zip(lines, self.widths):
            pdf.set_xy(x, y)
            pdf.multi_cell(width, self.LINE, "\n".join(chunk), max_line_height=self.LINE)
            x += width
        pdf.set_draw_color(190, 190, 190)
        pdf.line(pdf.l_margin, y + height, x, y + height)
        pdf.set_xy(pdf.l_margin, y + height)
        self.count += 1

    def close(self) -> None:
        if self.count == 0:
            self.pdf.cell(0, 6, "no events matched")
        self.pdf.output(self.path)


EXPORTERS: dict[str, Callable[..., Exporter]] = {
    "csv": CsvExporter, "jsonl": JsonlExporter, "xlsx": XlsxExporter, "pdf": PdfExporter}
