"""Which columns an export holds, and how a value reads in one cell of a table or a file."""

from __future__ import annotations

import json
from typing import Any

from fleetlog.common.errors import UsageError
from fleetlog.common.event import FIELD_NAMES

# The CLI's table and a PDF export show these unless --columns names others.
TABLE_COLUMNS = ("time", "level", "host", "request_id", "user", "message")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): =, +, - and @ start one,
# and a leading tab or carriage return hides such a start from a naive check.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """`cell(value)` made inert for a spreadsheet: a text that could start a formula gets a
    leading single quote, which Excel, LibreOffice and Google Sheets show as text. CSV writers
    also quote every cell (csv.QUOTE_ALL), as OWASP advises."""
    text = cell(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def parse_columns(text: str | None, default: tuple[str, ...]) -> list[str]:
    """`a,b,c` as a list of event fields; `default` when none is given."""
    if not text:
        return list(default)
    columns = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in columns if c not in FIELD_NAMES]
    if unknown:
        raise UsageError(f"--columns: unknown column {unknown[0]!r} (columns: {', '.join(FIELD_NAMES)})")
    if not columns:
        raise UsageError("--columns: no column named")
    return columns
