"""The access log's line, written by hand, is what encoding its fields as a dict gives."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.server import middleware

ENCODE = json.JSONEncoder(ensure_ascii=False).encode


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def kept() -> Iterator[_Keep]:
    logger = middleware.access_log
    handler = _Keep()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


_text = st.text(max_size=12)


# one handler for all examples: each reads the line it just wrote
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rid=_text,
    actor=st.none() | _text,
    staff_id=st.none() | st.integers(),
    method=st.none() | _text,
    path=_text,
    status=st.integers(100, 599),
)
def test_the_line_is_the_fields_encoded(
    kept: _Keep, rid: str, actor: str | None, staff_id: int | None, method: str | None,
    path: str, status: int,
) -> None:  # fmt: skip
    state = {"actor_name": actor, "staff_id": staff_id}
    middleware.ServerMiddleware._log(
        {"path": path, "method": method}, state, rid, status, time.perf_counter() - 0.0123
    )
    line = kept.lines[-1]
    expected = {
        "request_id": rid,
        "actor": actor,
        "staff_id": staff_id,
        "method": method,
        "path": path.encode("utf-8", "backslashreplace").decode("utf-8")[:500],
        "status": status,
        "ms": json.loads(line)["ms"],
    }
    assert line == ENCODE(expected)
    assert isinstance(expected["ms"], float) and expected["ms"] >= 12.3
