"""Reading CSV and JSON Lines files record by record: format, encoding, delimiter, progress."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from crmkit.core.csvcells import restore_cell
from crmkit.errors import CrmError, ValidationError
from crmkit.transfer.columns import FORMATS
from crmkit.transfer.results import RowError

_SAMPLE_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"
#: characters of CSV text read and split at a time while it holds no quote (see _CsvRecords)
BLOCK_CHARS = 1 << 20
#: JSON Lines records, and CSV records the csv module parsed, handed on together (see
#: RecordReader.blocks)
_JSON_BLOCK = _PARSED_RUN = 1000

#: a run of consecutive records: their lines, the records, and whether every one of them is a
#: list of the header's width (then a converter may take the run column by column)
Block = tuple[Sequence[int], list[Any], bool]


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
            raise self._decode_failure(exc) from None
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
        for lines, records, _ in self.blocks():
            yield from zip(lines, records, strict=True)

    def blocks(self) -> Iterator[Block]:
        """The records in runs (:data:`Block`): ``(lines, records, uniform)``.

        CSV text without quotes is split a block at a time, its rows handed on
        as one run (the importer's hot path); anything else comes one record
        per run. The records and their lines are those :meth:`__iter__` gives.
        """
        try:
            raw = self._raw = open(self.path, "rb")  # noqa: SIM115 - closed by the records
        except OSError as exc:
            raise ValidationError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if self.format == "csv":
            text = io.TextIOWrapper(raw, encoding=self._codec, newline="")
            return _CsvRecords(self, text).blocks()
        return self._jsonl(raw)

    def _decode_failure(self, exc: UnicodeDecodeError) -> CrmError:
        """The error for undecodable bytes, naming the line they are on.

        Decoding runs ahead of parsing (in blocks), so the line being parsed
        when it fails is not the line of the bad bytes: the file is read again
        up to them, counting line ends.
        """
        return _decode_error(
            self.path, self.encoding, _line_of_bad_bytes(self.path, self._codec), exc
        )

    def _jsonl(self, raw: IO[bytes]) -> Iterator[Block]:
        with raw:
            records = self._json_records(raw)
            while chunk := list(itertools.islice(records, _JSON_BLOCK)):
                lines, values = zip(*chunk, strict=True)
                yield lines, list(values), False

    def _json_records(self, raw: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
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
                yield (
                    number,
                    RowError(None, f"is not valid JSON ({exc})", record=text.rstrip("\r\n")),
                )
                continue
            if not isinstance(value, dict):
                yield number, RowError(None, "is not a JSON object", record=text.rstrip("\r\n"))
                continue
            yield number, value


def _line_of_bad_bytes(path: str, codec: str) -> int | None:
    """The line (1-based) holding the first bytes ``codec`` cannot decode; None if none."""
    decoder = codecs.getincrementaldecoder(codec)()
    newlines = 0
    with open(path, "rb") as handle:
        while True:
            block = handle.read(1 << 20)
            try:
                newlines += decoder.decode(block, final=not block).count("\n")
            except UnicodeDecodeError as exc:
                good = exc.object[: exc.start] if isinstance(exc.object, bytes) else b""
                try:
                    newlines += good.decode(codec).count("\n")
                except UnicodeDecodeError:  # a stateful codec: count the raw line ends
                    newlines += good.count(b"\n")
                return newlines + 1
            if not block:
                return None


class _CsvRecords:
    """The records of a CSV text stream, each with the line it starts on, every line accounted for.

    Python's csv module reads a quoted field across line ends until its
    closing quote, so a stray quote would swallow the rest of the file (or
    stop it with "field larger than field limit"). Here a record that does
    not parse (strict mode: a quote that never closes properly), or that runs
    over several lines without the header's number of fields, is rejected on
    its first line alone, and the lines after it are read again: one bad
    quote costs one row, never the rows after it. Every row in a rejection
    carries the whole original row (its fields as read, or the line split on
    the delimiter when its quotes do not parse). Cells are read back through
    :func:`~crmkit.core.csvcells.restore_cell`, undoing the formula
    neutralisation of crmkit's CSV writers.

    Text holds no quote most of the time: then each line is one record and its
    cells are the line split on the delimiter (what the csv module gives for
    it, in a fraction of its time). The text is read :data:`BLOCK_CHARS` at a
    time and split so, block by block, until a block holds a quote (or a lone
    carriage return, a line end of its own): from its first line on, the csv
    module parses the rest, as above.
    """

    def __init__(self, reader: RecordReader, text: IO[str]) -> None:
        self.reader = reader
        self.text = text
        self.delimiter = reader.delimiter
        self.taken: list[str] = []  # the physical lines of the record being read
        self.lines: Iterator[str] = iter(text)  # what the csv module parses
        self.rows = self._parser(self.lines)

    def _parser(self, lines: Iterator[str]) -> Iterator[list[str]]:
        return csv.reader(_recording(lines, self.taken), delimiter=self.delimiter, strict=True)

    def _restart_after_first_line(self) -> str:
        """Drop the first line of the record being read; parse from its second line on."""
        if not self.taken:  # pragma: no cover - the csv module reads a line before failing
            raise ValidationError(f"{self.reader.path}: the CSV cannot be read")
        first, rest = self.taken[0], self.taken[1:]
        self.taken.clear()
        self.rows = self._parser(itertools.chain(rest, self.lines))
        return first

    def _loose(self, line: str) -> list[str]:
        """A line whose quotes do not parse, split on the delimiter as it is."""
        return next(csv.reader([line], delimiter=self.delimiter, quoting=csv.QUOTE_NONE), [])

    def blocks(self) -> Iterator[Block]:
        """The records in runs, each with its lines; closes the file at the end."""
        taken = self.taken
        try:
            width = len(self._header())
            line = 1 + len(taken)  # the line the next record starts on
            taken.clear()
            line = yield from self._split_blocks(line, width)
            if line:  # a block with a quote: the csv module parses from there on
                records = self._parsed(line, width)
                while chunk := list(itertools.islice(records, _PARSED_RUN)):
                    lines, values = zip(*chunk, strict=True)
                    # (a record the csv module parsed is a list of the header's width)
                    uniform = not any(value.__class__ is RowError for value in values)
                    yield lines, list(values), uniform
        except UnicodeDecodeError as exc:
            raise self.reader._decode_failure(exc) from None
        finally:
            self.text.close()

    def _split_blocks(self, line: int, width: int) -> Iterator[Block]:  # noqa: C901
        """Runs of records from blocks of text without quotes, split on line ends and the
        delimiter; returns 0 at the end of the text, or the line of the first block that
        holds a quote (the csv module then parses from there: :attr:`lines`)."""
        text, delimiter = self.text, self.delimiter
        carry = ""  # the start of a line the last block cut
        while True:
            chunk = text.read(BLOCK_CHARS)
            block = carry + chunk if carry else chunk
            carry = ""
            if chunk:
                cut = block.rfind("\n") + 1  # whole lines only
                if not cut:
                    carry = block
                    continue
                block, carry = block[:cut], block[cut:]
            elif not block:
                return 0
            split = block
            if "\r" in split:
                split = split.replace("\r\n", "\n")
            if '"' in split or "\r" in split:
                rest = io.StringIO(block + carry + text.readline(), newline="")
                self.lines = itertools.chain(rest, text)
                self.rows = self._parser(self.lines)
                return line
            texts = split.split("\n")
            if not texts[-1]:  # the block ends with a line end (all but a last line do)
                texts.pop()
            rows = [part.split(delimiter) for part in texts]
            if "'" in split:  # (a row of another width is refused as it was read)
                for i, part in enumerate(texts):
                    if "'" in part and len(rows[i]) == width:
                        rows[i] = [restore_cell(cell) for cell in rows[i]]
            count = len(rows)
            if set(map(len, rows)) == {width} and (width > 1 or "" not in texts):
                yield range(line, line + count), rows, True
            else:
                yield from _irregular(line, texts, rows, width)
            line += count

    def _parsed(self, line: int, width: int) -> Iterator[tuple[int, list[str] | RowError]]:
        """Each record parsed by the csv module from :attr:`rows` on, with its line."""
        taken = self.taken
        parsing = True
        while parsing:
            parsing = False
            try:
                for row in self.rows:
                    # the common case first: one line, the header's width
                    if len(taken) == 1 and len(row) == width:
                        if "'" in taken[0]:
                            row = [restore_cell(cell) for cell in row]
                        taken.clear()
                        yield line, row
                        line += 1
                        continue
                    start, line, record, parsing = self._uncommon(line, row, width)
                    if record is not None:
                        yield start, record
                    if parsing:  # restarted after the record's first line
                        break
            except csv.Error as exc:
                first = self._restart_after_first_line()
                reason = f"a quoted field does not close properly ({exc}); check the quotes"
                yield line, RowError(None, reason, record=self._loose(first))
                line += 1
                parsing = True

    def _header(self) -> list[str]:
        path = self.reader.path
        try:
            header = next(self.rows)
        except StopIteration:
            raise ValidationError(f"{path} is empty; it needs a header row") from None
        except csv.Error as exc:
            raise ValidationError(f"{path}:1: the header row is malformed: {exc}") from None
        self.reader.fieldnames = _header_names(path, header)
        return header

    def _uncommon(
        self, start: int, row: list[str], width: int
    ) -> tuple[int, int, list[str] | RowError | None, bool]:
        """A record over several lines, a blank line, or a row of another width: (its line,
        the next record's line, what to hand on if anything, whether parsing restarted
        after the record's first line)."""
        taken = self.taken
        count = len(taken)
        if len(row) == width:
            if any("'" in part for part in taken):
                row = [restore_cell(cell) for cell in row]
            taken.clear()
            return start, start + count, row, False
        if not row or (len(row) == 1 and not row[0].strip()):
            taken.clear()  # a blank line
            return start, start + count, None, False
        if count > 1:
            # most likely a quote that does not close: the record swallowed later lines
            first = self._restart_after_first_line()
            reason = (
                f"a quoted field runs over {count} lines and the row has {len(row)} fields, "
                f"the header has {width}; check the quotes on this line"
            )
            return start, start + 1, RowError(None, reason, record=self._loose(first)), True
        taken.clear()
        reason = f"has {len(row)} fields, the header has {width}"
        return start, start + count, RowError(None, reason, record=row), False


def _irregular(line: int, texts: list[str], rows: list[list[str]], width: int) -> Iterator[Block]:
    """The runs of a split block that holds blank lines or rows of another width: the rows of
    the header's width in runs, a blank line skipped, a row of another width refused."""
    run = 0  # where the current run of good rows starts
    for i, row in enumerate(rows):
        if len(row) == width and (width > 1 or texts[i]):
            continue
        if run < i:
            yield range(line + run, line + i), rows[run:i], True
        run = i + 1
        if len(row) != 1 or texts[i].strip():
            reason = f"has {len(row)} fields, the header has {width}"
            yield (line + i,), [RowError(None, reason, record=row)], False
    if run < len(rows):
        yield range(line + run, line + len(rows)), rows[run:], True


def _recording(lines: Iterable[str], taken: list[str]) -> Iterator[str]:
    """``lines``, each also appended to ``taken`` as it is handed on."""
    keep = taken.append
    for item in lines:
        keep(item)
        yield item


def _header_names(path: str, header: list[str]) -> list[str]:
    names = [h.strip() for h in header]
    if not any(names):
        raise ValidationError(f"{path}:1: the header row is empty")
    blank = [i + 1 for i, n in enumerate(names) if not n]
    if blank:
        raise ValidationError(f"{path}:1: header column {blank[0]} has no name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError(f"{path}:1: column {dupes[0]!r} appears twice")
    return names


def records(source: Any, label: str, progress: Any) -> Iterator[Any]:
    """The items of ``source``; with ``progress``, ticking it every 4,096 of them."""
    if progress is None:
        return iter(source)
    return _ticking(source, label, progress)


def _ticking(source: Any, label: str, progress: Any) -> Iterator[Any]:
    with progress(label, source) as tick:
        for count, item in enumerate(source, start=1):
            yield item
            if count & 4095 == 0:
                tick()
        tick()


def blocks(reader: RecordReader, label: str, progress: Any) -> Iterator[Block]:
    """``reader.blocks()``; with ``progress``, ticking it every 4,096 records or so."""
    if progress is None:
        return reader.blocks()
    return _ticking_blocks(reader, label, progress)


def _ticking_blocks(reader: RecordReader, label: str, progress: Any) -> Iterator[Block]:
    with progress(label, reader) as tick:
        due = 4096
        for block in reader.blocks():
            yield block
            due -= len(block[1])
            if due <= 0:
                tick()
                due = 4096
        tick()
