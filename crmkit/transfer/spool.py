"""The spool between an import's two passes: converted records, pickled batch by batch."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from typing import Any


class Spool:
    """The converted good records between the two passes, pickled batch by batch to a temp file.

    Storing then needs neither the input file nor the conversion again; the
    file holds one batch in memory at a time and is deleted when closed.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="crmkit-import-")  # noqa: SIM115
        self.batches = 0
        self.size = 0

    def write(self, batch: list[Any]) -> None:
        if batch:
            pickle.dump(batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self.batches += 1

    @property
    def bytes_read(self) -> int:  # progress, as RecordReader.bytes_read
        return self._file.tell()

    def __iter__(self) -> Iterator[list[Any]]:
        self.size = self._file.tell()
        self._file.seek(0)
        for _ in range(self.batches):
            yield pickle.load(self._file)  # noqa: S301 - our own file, written above

    def close(self) -> None:
        self._file.close()
