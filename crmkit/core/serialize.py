"""Turning entities into JSON-ready data and back (Decimal and datetimes as text)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs


def jsonable(value: Any) -> Any:
    """Recursively convert attrs objects, Decimal, dates and datetimes to JSON-ready values.

    Decimal becomes a string (never a float, so no money is rounded), dates
    and datetimes ISO 8601 text (datetimes keep their offset).
    """
    if type(value) in _PLAIN:  # most values: nothing to convert (and no attrs lookup)
        return value
    if attrs.has(type(value)):
        return jsonable(attrs.asdict(value, recurse=False))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


#: types returned as they are (exact types: a subclass goes the long way)
_PLAIN = frozenset({str, int, bool, float, type(None)})
