"""CSV cells that spreadsheets cannot run as formulas (CSV/formula injection).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
is executed as a formula by Excel, LibreOffice and Google Sheets. Every CSV
crmkit writes passes its cells through :func:`neutralise_cell`, which puts a
single quote in front of such a cell (the convention spreadsheets display as
text, recommended by OWASP); crmkit's importers pass every cell through
:func:`restore_cell`, which takes exactly that quote off again, so an export
imports back unchanged. A cell that already starts with a quote followed by
one of those characters gets one more quote, so the round trip stays exact.

A plain negative number (``-12.50``) is left alone: it is data, not a formula.
"""

from __future__ import annotations

import csv
import re
from typing import IO, Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _needs_quote(text: str) -> bool:
    stripped = text.lstrip("'")
    if not stripped.startswith(TRIGGERS):
        return False
    # -12.50 is a number, not a formula
    return not (text is stripped and _NUMBER.match(text))


def neutralise_cell(value: Any) -> Any:
    """``value`` made safe to open in a spreadsheet; non-text values pass unchanged."""
    if isinstance(value, str) and value and _needs_quote(value):
        return "'" + value
    return value


def restore_cell(text: str) -> str:
    """Undo :func:`neutralise_cell` on a cell read from a CSV file."""
    if text.startswith("'") and _needs_quote(text[1:]):
        return text[1:]
    return text


class SafeWriter:
    """``csv.writer`` whose rows are neutralised cell by cell."""

    def __init__(self, stream: IO[str], **options: Any) -> None:
        options.setdefault("lineterminator", "\n")
        self._writer = csv.writer(stream, **options)

    def writerow(self, row: Any) -> Any:
        return self._writer.writerow([neutralise_cell(cell) for cell in row])

    def writerows(self, rows: Any) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(stream: IO[str], **options: Any) -> SafeWriter:
    """A CSV writer for files people open in spreadsheets: every cell is neutralised."""
    return SafeWriter(stream, **options)
