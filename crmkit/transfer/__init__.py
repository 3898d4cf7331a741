"""Streaming import and export of customers, orders and interactions (CSV and JSON Lines).

Reusable from Python::

    from crmkit.transfer import import_file, export_file

    result = import_file(crm, "orders", "orders.csv")            # atomic: all rows or none
    result = import_file(crm, "orders", "orders.csv", skip_invalid=True, rejects="bad.csv")
    print(result.summary())       # read N, stored N, already present N, rejected N

Import reads the file once and never holds it in memory (CSV text without quotes is
split a block at a time, and runs of order rows are checked column by column):

* pass 1 reads every record, converts and validates it (types, required
  columns, declared custom attributes, external ids repeated in the file,
  customers that are not stored, looked up a batch at a time), leaves out the
  orders and interactions already stored (one set-wise look-up per 10,000
  records: a file imported again is read and checked, never spooled or stored
  again) and spools the other good records, converted and with their
  customers' ids, to a temporary file (pickled batches); it keeps
  only the external ids seen (while they ascend, in a temporary file; else in
  memory up to ``SEEN_IN_MEMORY``, then in a temporary SQLite file) and the
  customers resolved so far;
* pass 2 (only when pass 1 found nothing wrong, or with ``skip_invalid``)
  reads the spool back and stores it a batch at a time through
  ``crm.orders.add_rows`` / ``crm.customers.add_many`` /
  ``crm.interactions.log_many``, all in ONE transaction (one lifecycle event
  per batch for plugins): a failure in any batch stores nothing. Records
  whose external id is already stored are counted as "already present"
  (importing the same file twice stores nothing new).

Pass 1 refuses, per record, what the database would refuse (read from the
table definitions), times that do not exist or exist twice in the configured
zone, and money not in the one format; a CSV record whose quotes do not parse
costs its own line only. CSV cells are read through ``restore_cell`` (the
export neutralises formula-looking cells).

Accounting: ``read == stored + already_present + rejected``, always.

The modules, one job each:

* :mod:`~crmkit.transfer.columns` -- the kinds, formats and columns of the files;
* :mod:`~crmkit.transfer.results` -- :class:`ImportResult`, :class:`Problem`, :class:`RowError`;
* :mod:`~crmkit.transfer.read` -- :class:`RecordReader` (format, encoding, delimiter), progress;
* :mod:`~crmkit.transfer.convert` -- :class:`Converter`: records into what the services store;
* :mod:`~crmkit.transfer.orderrows` -- CSV order rows converted fast (SQLite: its driver form);
* :mod:`~crmkit.transfer.orderruns` -- runs of CSV order rows converted column by column;
* :mod:`~crmkit.transfer.duplicates` -- the external ids met so far (memory, then SQLite);
* :mod:`~crmkit.transfer.rejects` -- the rejects file;
* :mod:`~crmkit.transfer.spool` -- the converted records between the two passes;
* :mod:`~crmkit.transfer.validate` -- pass 1: convert, check, spool;
* :mod:`~crmkit.transfer.store` -- pass 2: store the spool a batch at a time;
* :mod:`~crmkit.transfer.importer` -- :func:`import_file`, the two passes together;
* :mod:`~crmkit.transfer.export` -- :func:`export_file`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.lazy import lazy_attributes

if TYPE_CHECKING:  # the lazy names below, for type checkers and editors
    from crmkit.transfer.columns import BATCH_SIZE, FORMATS, KINDS
    from crmkit.transfer.convert import Converter
    from crmkit.transfer.export import export_file
    from crmkit.transfer.importer import import_file
    from crmkit.transfer.read import RecordReader
    from crmkit.transfer.results import ImportResult, Problem, RowError

# name -> module; imported on first access (PEP 562), so the command line's options can
# read crmkit.transfer.columns without importing SQLAlchemy
_LAZY = {
    **dict.fromkeys(("BATCH_SIZE", "FORMATS", "KINDS"), "crmkit.transfer.columns"),
    "Converter": "crmkit.transfer.convert",
    "export_file": "crmkit.transfer.export",
    "import_file": "crmkit.transfer.importer",
    "RecordReader": "crmkit.transfer.read",
    **dict.fromkeys(("ImportResult", "Problem", "RowError"), "crmkit.transfer.results"),
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "BATCH_SIZE",
    "FORMATS",
    "KINDS",
    "Converter",
    "ImportResult",
    "Problem",
    "RecordReader",
    "RowError",
    "export_file",
    "import_file",
]
