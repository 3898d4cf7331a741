"""The core API's cursors (crmkit.server.api.common), without a server: keyset pages by
time walk every row exactly once in order, whatever the ties, the page size or rows added
newer than the first page meanwhile; tampered cursors are 422s."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.errors import ValidationError
from crmkit.server.api import common

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@attrs.frozen
class Row:
    id: int
    at: dt.datetime


def _fetcher(rows: list[Row]) -> Any:
    def fetch(until: dt.datetime | None, offset: int, size: int) -> list[Row]:
        found = [r for r in rows if until is None or r.at < until]
        found.sort(key=lambda r: (r.at, r.id), reverse=True)
        return found[offset : offset + size]

    return fetch


def _walk(rows: list[Row], limit: int, added: list[Row]) -> list[int]:
    fetch = _fetcher(rows)
    seen: list[int] = []
    cursor = None
    first = True
    for _ in range(len(rows) + len(added) + 2):  # a cursor that never moves on: fail
        items, cursor = common.time_page(fetch, lambda r: r.at, limit, cursor, None)
        seen += [r.id for r in items]
        if first:  # rows newer than everything shown arrive after the first page
            rows.extend(added)
            first = False
        if cursor is None:
            return seen
    raise AssertionError(f"the pages never ended: {seen[:50]}")


@settings(max_examples=200, deadline=None)
@given(
    minutes=st.lists(st.integers(0, 5), min_size=0, max_size=40),
    limit=st.integers(1, 7),
    newer=st.integers(0, 3),
)
def test_time_pages_walk_every_row_once(minutes: list[int], limit: int, newer: int) -> None:
    rows = [Row(n + 1, BASE + dt.timedelta(minutes=m)) for n, m in enumerate(minutes)]
    expected = [r.id for r in sorted(rows, key=lambda r: (r.at, r.id), reverse=True)]
    added = [Row(1000 + n, BASE + dt.timedelta(days=1)) for n in range(newer)]
    assert _walk(rows, limit, added) == expected


@settings(max_examples=100, deadline=None)
@given(count=st.integers(0, 30), limit=st.integers(1, 7), newer=st.integers(0, 3))
def test_id_pages_walk_every_row_once(count: int, limit: int, newer: int) -> None:
    rows = [Row(n + 1, BASE) for n in range(count)]

    def fetch(offset: int, size: int) -> list[Row]:
        return rows[offset : offset + size]

    seen: list[int] = []
    items, cursor = common.offset_page(fetch, limit, None)
    seen += [r.id for r in items]
    rows.extend(Row(count + 1 + n, BASE) for n in range(newer))  # added meanwhile
    if cursor is None:  # one page: it held every row there was
        assert seen == list(range(1, count + 1))
        return
    for _ in range(len(rows) + 1):
        if cursor is None:
            break
        items, cursor = common.offset_page(fetch, limit, cursor)
        seen += [r.id for r in items]
    assert seen == list(range(1, len(rows) + 1))  # the new rows joined the end


BAD = ["%%%", "bm90IGpzb24", common.encode_cursor([1, 2])]


@pytest.mark.parametrize(
    "cursor",
    [*BAD, common.encode_cursor({"o": -1, "id": 0}), common.encode_cursor({"o": True, "id": 0}),
     common.encode_cursor({"o": 2**70, "id": 0}), common.encode_cursor({"o": 1})],
)  # fmt: skip
def test_tampered_id_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(ValidationError) as refused:
        common.offset_page(lambda o, s: [], 10, cursor)
    assert refused.value.field == "cursor"


@pytest.mark.parametrize(
    "cursor",
    [*BAD, common.encode_cursor({"at": "9999-12-31T23:59:59.999999+00:00", "n": 0}),
     common.encode_cursor({"at": "2026-01-01T00:00:00", "n": 0}),
     common.encode_cursor({"at": 5, "n": 0}), common.encode_cursor({"at": "x", "n": 0}),
     common.encode_cursor({"at": "2026-01-01T00:00:00+00:00", "n": -3})],
)  # fmt: skip
def test_tampered_time_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(ValidationError) as refused:
        common.time_page(lambda u, o, s: [], lambda r: r.at, 10, cursor, None)
    assert refused.value.field == "cursor"
