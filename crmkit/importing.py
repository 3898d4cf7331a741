"""Former home of the importer and exporter, now :mod:`crmkit.transfer`: an alias kept only
while tests/core/test_bulk.py imports it (delete it then; new code imports
:mod:`crmkit.transfer`).

The tunables read while importing (``SEEN_IN_MEMORY``, ``LOOKUP_BATCH``, ``MAX_LISTED``) are
read from and set in the modules that use them, so ``monkeypatch.setattr(importing, ...)``
still changes what an import does.
"""

from __future__ import annotations

import sys
import types

from crmkit.transfer import (
    BATCH_SIZE,
    FORMATS,
    KINDS,
    Converter,
    ImportResult,
    Problem,
    RecordReader,
    RowError,
    export_file,
    import_file,
)
from crmkit.transfer import duplicates as _duplicates
from crmkit.transfer import validate as _validation
from crmkit.transfer.duplicates import SeenKeys as _SeenKeys


def _forwarded(name: str, home: types.ModuleType) -> property:
    return property(
        lambda _module: getattr(home, name),
        lambda _module, value: setattr(home, name, value),
        doc=f"{home.__name__}.{name}",
    )


class _Alias(types.ModuleType):
    """This module, with the tunables read from and set in their modules."""

    SEEN_IN_MEMORY = _forwarded("SEEN_IN_MEMORY", _duplicates)
    LOOKUP_BATCH = _forwarded("LOOKUP_BATCH", _validation)
    MAX_LISTED = _forwarded("MAX_LISTED", _validation)


sys.modules[__name__].__class__ = _Alias

__all__ = [
    "BATCH_SIZE",
    "FORMATS",
    "KINDS",
    "Converter",
    "ImportResult",
    "Problem",
    "RecordReader",
    "RowError",
    "_SeenKeys",
    "export_file",
    "import_file",
]
