"""Reading CSV and JSON Lines files record by record: format, encoding, delimiter, progress."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from crmkit.errors import CrmError, ValidationError
from crmkit.transfer.columns import FORMATS
from crmkit.transfer.results import RowError

_SAMPLE_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"


def detect_format(path: str | os.PathLike[str], given: str | None = None) -> str:
    if given:
        if given not in FORMATS:
            raise ValidationError(f"format {given!r} is not known; use csv or jsonl")
        return given
    suffix = Path(path).suffix.lower()
    return "jsonl" if suffix in (".jsonl", ".ndjson") else "csv"


def _check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValidationError(
            f"encoding {encoding!r} is not known; use e.g. utf-8, gbk, gb18030, latin-1"
        ) from None


def _decode_error(path: str, encoding: str, line: int | None, exc: UnicodeDecodeError) -> CrmError:
    where = f"{path}:{line}" if line else path
    hint = (
        "pass --encoding with the file's encoding, e.g. --encoding gbk"
        if encoding.replace("_", "-").startswith("utf")
        else "check --encoding"
    )
    return ValidationError(f"{where}: the file is not valid {encoding} text ({exc.reason}); {hint}")


class RecordReader:
    """Iterate ``(line, record)`` over a CSV or JSON Lines file without loading it.

    ``record`` is a list of strings in :attr:`fieldnames` order for CSV, a
    dict for JSON Lines; a record that
    cannot be read at all (bad JSON, wrong number of CSV fields) comes as a
    :class:`RowError` instead of a dict. ``bytes_read`` follows progress.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encoding: str | None = None,
        input_format: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.format = detect_format(self.path, input_format)
        self.encoding = _check_encoding(encoding) if encoding else "utf-8"
        self._codec = "utf-8-sig" if self.encoding == "utf-8" else self.encoding
        try:
            self.size = os.path.getsize(self.path)
            with open(self.path, "rb") as probe:
                sample = probe.read(_SAMPLE_BYTES)
        except OSError as exc:
            raise ValidationError(
                f"cannot read {self.path}: {exc.strerror or exc}; check the path"
            ) from None
        self.fieldnames: list[str] | None = None
        self.delimiter = ","
        if self.format == "csv":
            self.delimiter = self._sniff(sample)
        self._raw: IO[bytes] | None = None

    def _sniff(self, sample: bytes) -> str:
        decoder = codecs.getincrementaldecoder(self._codec)()
        try:
            text = decoder.decode(sample, final=len(sample) < _SAMPLE_BYTES)
        except UnicodeDecodeError as exc:
            raise _decode_error(self.path, self.encoding, None, exc) from None
        if len(sample) == _SAMPLE_BYTES and "\n" in text:
            text = text[: text.rindex("\n") + 1]
        first = text.split("\n", 1)[0]
        try:
            delimiter = csv.Sniffer().sniff(text, delimiters=_DELIMITERS).delimiter
        except csv.Error:
            delimiter = None
        # column names hardly contain a delimiter: trust the header line over a bad guess
        if delimiter is None or delimiter not in first:
            counts = {d: first.count(d) for d in _DELIMITERS}
            best = max(counts, key=lambda d: counts[d])
            delimiter = best if counts[best] else ","
        return delimiter

    @property
    def bytes_read(self) -> int:
        raw = self._raw
        if raw is None or raw.closed:
            return self.size
        return raw.tell()

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        try:
            self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise ValidationError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            if self.format == "csv":
                yield from self._csv(self._raw)
            else:
                yield from self._jsonl(self._raw)
        finally:
            self._raw.close()

    def _csv(self, raw: IO[bytes]) -> Iterator[tuple[int, list[str] | RowError]]:
        text = io.TextIOWrapper(raw, encoding=self._codec, newline="")
        reader = csv.reader(text, delimiter=self.delimiter)
        line = 1
        try:
            try:
                header = next(reader)
            except StopIteration:
                raise ValidationError(f"{self.path} is empty; it needs a header row") from None
            names = [h.strip() for h in header]
            if not any(names):
                raise ValidationError(f"{self.path}:1: the header row is empty")
            blank = [i + 1 for i, n in enumerate(names) if not n]
            if blank:
                raise ValidationError(f"{self.path}:1: header column {blank[0]} has no name")
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValidationError(f"{self.path}:1: column {dupes[0]!r} appears twice")
            self.fieldnames = names
            width = len(names)
            line = reader.line_num + 1
            for row in reader:
                start, line = line, reader.line_num + 1
                if len(row) == width:
                    yield start, row
                elif not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                else:
                    yield start, RowError(None, f"has {len(row)} fields, the header has {width}")
        except UnicodeDecodeError as exc:
            raise _decode_error(self.path, self.encoding, line, exc) from None
        except csv.Error as exc:
            raise ValidationError(f"{self.path}:{line}: the CSV is malformed: {exc}") from None

    def _jsonl(self, raw: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
        codec = self._codec
        for number, data in enumerate(raw, start=1):
            try:
                text = data.decode(codec if number == 1 else self.encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(self.path, self.encoding, number, exc) from None
            if not text.strip():
                continue
            try:
                value = json.loads(text, parse_float=Decimal)
            except ValueError as exc:
                yield number, RowError(None, f"is not valid JSON ({exc})")
                continue
            if not isinstance(value, dict):
                yield number, RowError(None, "is not a JSON object")
                continue
            yield number, value


def records(source: Any, label: str, progress: Any) -> Iterator[Any]:
    if progress is None:
        yield from source
        return
    with progress(label, source) as tick:
        for count, item in enumerate(source, start=1):
            yield item
            if count & 4095 == 0:
                tick()
        tick()
