"""The spool between an import's two passes: converted records, pickled batch by batch."""

from __future__ import annotations

import pickle
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from typing import Any


class Spool:
    """The converted good records between the two passes, pickled batch by batch to a temp file.

    Storing then needs neither the input file nor the conversion again; the
    file holds one batch in memory at a time. Each batch travels with the
    file lines its records came from, so a failure while storing can name
    them. The file is an anonymous temporary file (unlinked as soon as it is
    created): nothing is left behind, even when the import is killed.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="crmkit-import-")  # noqa: SIM115
        self.batches = 0
        self.size = 0
        self.first_line = 0
        self.last_line = 0

    def write(self, batch: list[Any], lines: Sequence[int]) -> None:
        if batch:
            pickle.dump((array("q", lines), batch), self._file, protocol=pickle.HIGHEST_PROTOCOL)
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
            yield pickle.load(self._file)  # noqa: S301 - our own file, written above

    def close(self) -> None:
        self._file.close()
