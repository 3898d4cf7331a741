"""What an import reports: the bad records (:class:`Problem`, :class:`RowError`) and the totals."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.define
class Problem:
    """One bad record: where it is and why it was refused."""

    line: int
    column: str | None
    reason: str

    def describe(self, path: str) -> str:
        where = f"{path}:{self.line}"
        return (
            f"{where}: {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"
        )


@attrs.define
class ImportResult:
    """What an import read, stored, found already present and rejected."""

    kind: str
    path: str
    read: int = 0
    stored: int = 0
    already_present: int = 0
    rejected: int = 0
    problems: list[Problem] = attrs.field(factory=list)  # the first MAX_LISTED
    committed: bool = False  # False: atomic mode found bad rows and stored nothing

    def summary(self) -> str:
        return (
            f"{self.kind}: read {self.read}, stored {self.stored}, "
            f"already present {self.already_present} (skipped, already stored), "
            f"rejected {self.rejected}"
        )

    def problem_lines(self) -> list[str]:
        lines = [p.describe(self.path) for p in self.problems]
        if self.rejected > len(self.problems):
            lines.append(f"... and {self.rejected - len(self.problems)} more bad rows")
        return lines


class RowError(Exception):
    """A record is invalid (column may be None for the whole record).

    ``record`` is the whole original record when the reader could not make it
    a row of the header's columns (its fields as read, or a JSON line's text),
    so the rejects file keeps it.
    """

    def __init__(self, column: str | None, reason: str, *, record: Any = None) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason
        self.record = record
