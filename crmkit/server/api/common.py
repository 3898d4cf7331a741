"""What the core's route modules share: cursors, ETags, If-Match, paging windows.

Cursors are opaque to clients: base64url of a small JSON object holding the last
item's sort key and id (and, where a service pages by position, how far the list got).
A cursor that does not decode is a 422 naming the ``cursor`` parameter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from crmkit.core.serialize import jsonable
from crmkit.errors import PreconditionFailed, ValidationError
from crmkit.server.routing import (  # noqa: F401 - the route modules import them from here
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_cursor,
    encode_cursor,
)
from crmkit.server.routing import page_limit as limit_of  # noqa: F401

if TYPE_CHECKING:
    from crmkit.server.routing import ApiRequest

#: the smallest step of a stored time: keyset paging by time adds it to be inclusive
TICK = dt.timedelta(microseconds=1)

#: the largest position or id a cursor may carry (a 64-bit integer column's)
_MAX_STATE = 2**63 - 1


def state_int(state: dict[str, Any], key: str) -> int:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_STATE:
        raise ValidationError("cursor is not valid; start again without it", field="cursor")
    return value


def state_time(state: dict[str, Any], key: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(state[key])
    except (TypeError, ValueError):
        value = None
    if value is None or value.tzinfo is None:
        raise ValidationError("cursor is not valid; start again without it", field="cursor")
    try:
        return value.astimezone(dt.UTC) + TICK - TICK  # it and the next tick are times
    except OverflowError:
        raise ValidationError(
            "cursor is not valid; start again without it", field="cursor"
        ) from None


def storable(value: dt.datetime | None, field: str) -> dt.datetime | None:
    """``value`` when the database can hold it as UTC (years 1 to 9999 there), else a 422
    on ``field`` (``0001-01-01T00:00:00+01:00`` is before year 1 in UTC)."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(dt.UTC) + TICK - TICK
    except OverflowError:
        raise ValidationError(
            f"{field} {value.isoformat()} is out of range; give a time between years 1 and 9999",
            field=field,
        ) from None


def offset_page(
    fetch: Callable[[int, int], Sequence[Any]], limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Page a list ordered by id, oldest first, whose rows are never deleted (customers,
    workflow instances): new rows only join the end, so the position is stable. The cursor
    keeps the position and the last id, and rows at or before that id are dropped in case
    the list changed under it."""
    state = decode_cursor(cursor, "o", "id")
    offset = state_int(state, "o") if state else 0
    last = state_int(state, "id") if state else 0
    found = [item for item in fetch(offset, limit + 1) if item.id > last]
    items = found[:limit]
    more = len(found) > limit
    next_cursor = (
        encode_cursor({"o": offset + len(items), "id": items[-1].id}) if more and items else None
    )
    return items, next_cursor


def time_page(
    fetch: Callable[[dt.datetime | None, int, int], Sequence[Any]],
    moment: Callable[[Any], dt.datetime],
    limit: int,
    cursor: str | None,
    until: dt.datetime | None,
) -> tuple[list[Any], str | None]:
    """Keyset paging of a list ordered newest first by a time, then id (interactions,
    orders): the next page holds what is at or before the last time shown, skipping the
    ones at exactly that time already shown. New rows never shift a page.

    ``fetch(until, offset, limit)`` lists rows before ``until`` (exclusive), newest first.
    """
    state = decode_cursor(cursor, "at", "n")
    offset = 0
    bound = until
    last_at: dt.datetime | None = None
    if state is not None:
        last_at = state_time(state, "at")
        offset = state_int(state, "n")
        bound = last_at + TICK if until is None else min(until, last_at + TICK)
    found = list(fetch(bound, offset, limit + 1))
    items = found[:limit]
    if len(found) <= limit or not items:
        return items, None
    newest_tie = moment(items[-1])
    ties = sum(1 for item in items if moment(item) == newest_tie)
    if last_at is not None and newest_tie == last_at:
        ties += offset
    return items, encode_cursor({"at": newest_tie, "n": ties})


def content_etag(value: Any) -> str:
    """The ETag of a record other than a customer: the first 16 hex digits of the SHA-256
    of its canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def if_match_values(req: ApiRequest) -> list[str] | None:
    """The entity tags of the request's If-Match (weak marks and quotes stripped), or None
    when it has none."""
    raw = _header(req, "if-match")
    if raw is None:
        raw = req.if_match
    if raw is None:
        return None
    tags = []
    for part in str(raw).split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tags.append(tag.strip().strip('"'))
    return [tag for tag in tags if tag]


def check_if_match(req: ApiRequest, current: str, *, required: bool = True) -> None:
    """412 (:class:`PreconditionFailed`) unless If-Match names ``current`` (or ``*``);
    without If-Match, a 428 when ``required`` (the framework answers PATCH that way first)."""
    tags = if_match_values(req)
    if tags is None:
        if required:
            raise precondition_required()
        return
    if "*" in tags or current in tags:
        return
    raise PreconditionFailed(
        f'the record changed since you read it (its ETag is now "{current}", you sent '
        f"{', '.join(repr(t) for t in tags) or 'none'}); read it again and redo your change"
    )


def precondition_required() -> Exception:
    """The 428 problem: this edit needs If-Match."""
    from crmkit.server.problems import Problem

    return Problem(
        "precondition-required",
        "this change needs an If-Match header with the record's ETag (from a GET of it)",
    )


def _header(req: ApiRequest, name: str) -> str | None:
    for key, value in (req.headers or {}).items():
        if key.lower() == name:
            return value
    return None


def header(req: ApiRequest, name: str) -> str | None:
    """A request header, by case-insensitive name."""
    return _header(req, name.lower())


def acting_username(req: ApiRequest) -> str | None:
    """The staff username the request acts as (None for the operator or a job)."""
    return req.actor.username


def lock_row(crm: Any, table: str, key: Any, column: str = "id") -> None:
    """Inside a running write, lock one row until the commit (PostgreSQL ``FOR UPDATE``;
    SQLite's write transactions already queue), so an If-Match check and the change it
    guards are one step: of two requests with the same ETag, one changes the row and the
    other sees the new ETag (412)."""
    from sqlalchemy import select

    from crmkit.core import tables as t

    with crm.reading() as connection:
        if connection.dialect.name != "postgresql":
            return
        rows = t.metadata.tables[table]
        connection.execute(select(rows.c[column]).where(rows.c[column] == key).with_for_update())
