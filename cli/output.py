"""Printing events: table for people, JSON lines and CSV for programs."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from fleetlog.common.export.columns import TABLE_COLUMNS, cell, csv_cell


def print_table(events: list[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    """Columns sized to their content; the message takes what the terminal has left."""
    width = shutil.get_terminal_size((160, 24)).columns
    rows = [[cell(e.get(c)).replace("\n", " ") for c in TABLE_COLUMNS] for e in events]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(TABLE_COLUMNS)]
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = max(20, min(widths[-1], width - fixed))
    def line(values: list[str]) -> str:
        parts = [v.ljust(w)[:w] if i < len(values) - 1 else v[:w] for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(parts).rstrip()
    out.write(line([c.upper() for c in TABLE_COLUMNS]) + "\n")
    out.writelines(line(row) + "\n" for row in rows)


def write_json_lines(events: Iterable[dict[str, Any]], out: TextIO = sys.stdout) -> int:
    count = 0
    for event in events:
        out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


class CsvWriter:
    def __init__(self, out: TextIO, columns: Iterable[str]):
        self.columns = list(columns)
        self.writer = csv.writer(out, quoting=csv.QUOTE_ALL)
        self.writer.writerow(self.columns)

    def write(self, event: dict[str, Any]) -> None:
        # The same spreadsheet-safe cells as `fleetlog export --format csv` (common/export/columns.py).
        self.writer.writerow([csv_cell(event.get(c)) for c in self.columns])
