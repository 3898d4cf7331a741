"""``import_file``: an import's two passes around their spool and rejects file."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from typing import Any

from crmkit.core import access
from crmkit.errors import ValidationError
from crmkit.transfer.convert import Converter
from crmkit.transfer.read import RecordReader
from crmkit.transfer.rejects import Rejects
from crmkit.transfer.results import ImportResult
from crmkit.transfer.spool import Spool
from crmkit.transfer.store import BATCH_SIZE, store
from crmkit.transfer.validate import validate


def import_file(
    crm: Any,
    kind: str,
    path: str | os.PathLike[str],
    *,
    encoding: str | None = None,
    input_format: str | None = None,
    skip_invalid: bool = False,
    rejects: str | os.PathLike[str] | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[str, Any], Any] | None = None,
    decimal_comma: bool = False,
) -> ImportResult:
    """Import ``kind`` records from ``path`` (see :mod:`crmkit.transfer`).

    Atomic by default: when any record is bad nothing is stored and the
    result lists the problems (``committed`` False). With ``skip_invalid``
    the good records are stored and the bad ones written to ``rejects``.
    The good records are stored in one transaction: when storing fails (a
    plugin raising, the database refusing) nothing is stored and the error
    says so. ``decimal_comma`` reads money written ``1234,50``.
    ``progress(label, source)`` may return a context manager wrapping each
    pass (used by the CLI for its progress bar); ``source.size`` and
    ``source.bytes_read`` tell how far the pass is.

    Needs ``import.run``, checked once for the import (not per batch or row: the records
    go in through the services' unchecked batch paths). The import's transaction records
    one audit entry, ``import.<kind>``: the file, and how many records were read, stored,
    already present and rejected.
    """
    if rejects is not None and not skip_invalid:
        raise ValidationError("a rejects file needs skip_invalid (--skip-invalid)")
    access.authorise(crm, "import.run")
    with access.trusted(crm):
        return _import(
            crm, kind, path, encoding, input_format, skip_invalid, rejects, batch_size,
            progress, decimal_comma,
        )  # fmt: skip


def _import(
    crm: Any,
    kind: str,
    path: str | os.PathLike[str],
    encoding: str | None,
    input_format: str | None,
    skip_invalid: bool,
    rejects: str | os.PathLike[str] | None,
    batch_size: int,
    progress: Callable[[str, Any], Any] | None,
    decimal_comma: bool,
) -> ImportResult:
    converter = Converter(crm, kind, decimal_comma=decimal_comma)
    reader = RecordReader(path, encoding=encoding, input_format=input_format)
    result = ImportResult(kind=kind, path=reader.path)
    sink = Rejects(os.fspath(rejects) if rejects is not None else None, reader)
    spool = Spool()
    try:
        with _collector_paused():
            try:
                customers, present = validate(
                    crm, converter, reader, result, sink, spool, skip_invalid, progress
                )
            finally:
                sink.close()
            if result.rejected and not skip_invalid:
                return result
            result.already_present += present
            store(crm, kind, spool, result, batch_size, progress, customers)
    finally:
        spool.close()
    result.committed = True
    return result


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while records stream through.

    An import makes millions of short-lived containers and no reference
    cycles; the collector's passes over them cost about a quarter of the
    import's time. Whatever cyclic garbage plugins make meanwhile is
    collected once the import ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
