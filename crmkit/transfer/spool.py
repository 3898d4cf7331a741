"""The spool between an import's two passes: converted records, batch by batch in a temp file."""

from __future__ import annotations

import pickle
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

#: between the values of a text column in the spool: NUL, which no stored text holds
_SEP = "\x00"


class Spool:
    """The converted good records between the two passes, batch by batch in a temp file.

    Storing then needs neither the input file nor the conversion again; the
    file holds one batch in memory at a time. Each batch travels with the
    file lines its records came from, so a failure while storing can name
    them. The file is an anonymous temporary file (unlinked as soon as it is
    created): nothing is left behind, even when the import is killed.

    A batch of tuples of plain values (an order's driver form on SQLite: text,
    integers and None) is written column by column, each column one string
    or integer array: a few joins and splits in C instead of pickling a
    million small objects one by one (five times faster both ways). Other
    batches are pickled as they are.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="crmkit-import-")  # noqa: SIM115
        self.batches = 0
        self.size = 0
        self.first_line = 0
        self.last_line = 0

    def write(self, batch: list[Any], lines: Sequence[int]) -> None:
        if batch:
            columns = _columns(batch)
            body = ("rows", batch) if columns is None else ("columns", columns)
            pickle.dump((array("q", lines), body), self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self.batches += 1
            self.first_line = self.first_line or lines[0]
            self.last_line = lines[-1]

    @property
    def first_and_last_line(self) -> tuple[int, int]:
        """The lines of the first and the last record spooled."""
        return self.first_line, self.last_line

    @property
    def bytes_read(self) -> int:  # progress, as RecordReader.bytes_read
        return self._file.tell()

    def __iter__(self) -> Iterator[tuple[array[int], list[Any]]]:
        """Each batch as ``(lines, records)``."""
        self.size = self._file.tell()
        self._file.seek(0)
        for _ in range(self.batches):
            lines, (form, body) = pickle.load(self._file)  # noqa: S301 - our own file
            yield lines, (_rows(body) if form == "columns" else body)

    def close(self) -> None:
        self._file.close()


def _columns(batch: list[Any]) -> list[tuple[Any, ...]] | None:
    """``batch`` column by column, each as ``(kind, data)``; None when a value is not text,
    an integer or None (or a text holds NUL): the batch is then pickled row by row."""
    if batch[0].__class__ is not tuple:
        return None
    try:
        by_column = list(zip(*batch, strict=True))
    except (TypeError, ValueError):  # not all tuples, or of different lengths
        return None
    columns: list[tuple[Any, ...]] = []
    for values in by_column:
        column = _column(values)
        if column is None:
            return None
        columns.append(column)
    return columns


def _column(values: tuple[Any, ...]) -> tuple[Any, ...] | None:
    count = len(values)
    try:
        text = _SEP.join(values)
    except TypeError:
        pass
    else:
        return ("text", text) if text.count(_SEP) == count - 1 else None
    nones = values.count(None)
    if nones == count:
        return ("none", count)
    kinds = set(map(type, values))
    if kinds == {int}:
        try:
            return ("int", array("q", values).tobytes())
        except OverflowError:
            return None
    if kinds == {str, type(None)}:
        where = [i for i, value in enumerate(values) if value is None]
        text = _SEP.join([value or "" for value in values])
        return ("text", text, where) if text.count(_SEP) == count - 1 else None
    return None


def _rows(columns: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    decoded: list[Any] = []
    for kind, data, *rest in columns:
        if kind == "text":
            values: list[Any] = data.split(_SEP)
            for i in rest[0] if rest else ():
                values[i] = None
        elif kind == "int":
            values = array("q", data).tolist()
        else:
            values = [None] * data
        decoded.append(values)
    return list(zip(*decoded, strict=True))
