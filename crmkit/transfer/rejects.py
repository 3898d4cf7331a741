"""The rejects file of an import: each bad record, whole, with its line and reason."""

from __future__ import annotations

import json
import os
from typing import IO, Any

from crmkit.core.csvcells import csv_writer
from crmkit.errors import ValidationError
from crmkit.transfer.read import RecordReader
from crmkit.transfer.results import Problem


class Rejects:
    """The rejects file: each bad record with its line and reason, in the input's format.

    CSV: a header ``line,reason,<the input's columns>``, then per bad row its
    line, its reason and the whole original row, cell by cell (a row with too
    many or too few fields keeps them all; a line whose quotes do not parse
    is split on the delimiter as it is), written through
    :func:`~crmkit.core.csvcells.csv_writer` like every CSV crmkit writes.
    JSON Lines: ``{"line", "reason", "record"}`` per bad record, or
    ``{"line", "reason", "text"}`` with the line's text when it is not a JSON
    object.
    """

    def __init__(self, path: str | None, reader: RecordReader) -> None:
        self.path = path
        self.reader = reader
        self._file: IO[str] | None = None
        self._csv: Any = None
        if path is None:
            return
        if os.path.abspath(path) == os.path.abspath(reader.path):
            raise ValidationError(f"the rejects file {path} is the input file; choose another")
        try:
            self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise ValidationError(f"cannot write {path}: {exc.strerror or exc}") from None
        if reader.format == "csv":
            self._csv = csv_writer(self._file, delimiter=reader.delimiter)
        self._header = False

    def _write_header(self) -> None:
        # the header is known once the input's first row was read
        if self._csv is not None and not self._header:
            self._csv.writerow(["line", "reason", *(self.reader.fieldnames or [])])
        self._header = True

    def write(self, line: int, problem: Problem, record: Any) -> None:
        if self._file is None:
            return
        reason = f"{problem.column}: {problem.reason}" if problem.column else problem.reason
        self._write_header()
        if self._csv is not None:
            values = record if isinstance(record, list) else list((record or {}).values())
            self._csv.writerow([line, reason, *values])
        else:
            if isinstance(record, str):
                data = {"line": line, "reason": reason, "text": record}
            else:
                if isinstance(record, list):
                    record = dict(zip(self.reader.fieldnames or (), record, strict=False))
                data = {"line": line, "reason": reason, "record": record}
            self._file.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._write_header()
            self._file.close()
