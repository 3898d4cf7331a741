"""Statements the hot read paths build once, at import, with bound parameters.

Building a SQLAlchemy Core statement costs about as much CPU as running it, so the
reads the server serves most (a customer, the 360's parts) keep theirs ready.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, bindparam


def with_optional_limit(query: Select[Any]) -> dict[bool, Select[Any]]:
    """``query`` keyed by whether a limit is given: with a bound ``limit`` parameter
    (``True``) and without one (``False``)."""
    return {True: query.limit(bindparam("limit", type_=Integer)), False: query}
