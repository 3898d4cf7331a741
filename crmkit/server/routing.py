"""Route declarations for the HTTP API: what a handler takes and returns, as data.

A :class:`Route` names its method, path, handler and the attrs classes of its query,
body and response. The server decodes the query and body into those classes (an unknown
field, a wrong type or a missing required field is a 422 problem document before the
handler runs), binds the request's actor to the CRM, runs the handler in a worker
thread, and encodes what it returns. The OpenAPI document is generated from the same
classes and signatures, never written by hand.

This module imports nothing of the web stack: plugins declare routes at no start-up cost.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.core.serialize import jsonable
from crmkit.errors import ValidationError

if TYPE_CHECKING:
    from crmkit.core.actors import Actor
    from crmkit.crm import CRM

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@attrs.frozen
class Route:
    """One API operation.

    ``path`` is relative to ``/api/v1`` (core) or ``/api/v1/<plugin>`` (a plugin's routes)
    and uses Starlette's converters: ``"/customers/{customer_id:int}"``. ``handler(request)``
    is a plain function taking an :class:`ApiRequest`; it returns an attrs instance, a
    mapping, a list, a :class:`Page` (a list with a next cursor: ``Link`` header) or an
    :class:`ApiResponse`. ``query``/``body``/``response`` are attrs classes (``response``
    may be ``list[Cls]``); ``body_kind="stream"`` hands the raw body to the handler (bulk
    import) instead of decoding JSON. ``public=True`` routes need no sign-in (a case's
    public status by tracking code); everything else needs a session or a token.
    ``operation_id`` defaults to the handler's name (prefixed by the plugin's).

    ``quick=True`` promises that the handler does bounded database work and nothing else
    that waits: a record by its key, one page of a list, a write of a few rows; no
    password hashing, no file, no outside call, no analysis over a whole table. The
    worker then runs it on its event loop's thread, one at a time, as a synchronous
    worker does, without the hand-off to a handler thread (on the bench's 2-core machine
    that hand-off was a fifth of a simple request's CPU: two threads waking each other
    through the kernel). While it runs the worker serves nothing else, so a route that
    may take long stays ``quick=False`` (the default): it runs in a handler thread and the
    worker goes on serving. Since API 1.7.
    """

    method: str
    path: str
    handler: Callable[[ApiRequest], Any]
    summary: str
    query: type | None = None
    body: type | None = None
    response: Any = None
    status: int = 200
    public: bool = False
    body_kind: str = "json"  # "json" | "stream"
    tags: tuple[str, ...] = ()
    operation_id: str | None = None
    description: str | None = None
    #: problem types this route may answer with besides the common ones (docs only)
    errors: tuple[int, ...] = ()
    #: bounded database work only: run on the worker's event loop thread (see above)
    quick: bool = False


@attrs.define
class ApiRequest:
    """What a handler gets: the CRM (the request's actor already bound), the decoded
    path parameters, query and body, and the headers that matter to writes."""

    crm: CRM
    actor: Actor
    path: Mapping[str, Any]
    query: Any = None
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    request_id: str = ""
    #: the If-Match header's version (quotes stripped), for PATCH; None when absent
    if_match: str | None = None
    #: the raw body, for ``body_kind="stream"`` routes: an iterator of bytes chunks
    stream: Any = None
    #: the request's language: "en" or "zh" (Accept-Language, else [server] language)
    language: str = "en"
    #: the client's address (sign-in back-off per address)
    client: str | None = None
    #: the id (SHA-256) of the session cookie the request carried, valid or not: sign-in
    #: replaces that session, sign-out ends it
    session_id: str | None = None


@attrs.define
class ApiResponse:
    """A response with a status, headers or an ETag of its own."""

    body: Any = None
    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict)
    etag: str | None = None


@attrs.define
class Page:
    """A page of a list: ``items`` and the cursor of the next page (``None`` at the end);
    the server sends the ``Link: <...>; rel="next"`` header and the items as the body."""

    items: Sequence[Any]
    next_cursor: str | None = None


# -- paging: what every list route shares ------------------------------------------------

#: the page size when ``limit`` is not given, and the most one page may hold
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: the largest number a cursor may carry (a 64-bit integer column's)
_MAX_CURSOR_INT = 2**63 - 1
_BAD_CURSOR = 'cursor is not valid; use the URL of the Link header\'s rel="next" as given'


def page_limit(value: int | None, default: int = DEFAULT_LIMIT) -> int:
    """The page size a list route was asked for: ``default`` when not given, else a whole
    number from 1 to 500 (a 422 on ``limit`` otherwise)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ValidationError(
            f"limit {value!r} is out of range; give a whole number from 1 to {MAX_LIMIT}",
            field="limit",
        )
    return value


def encode_cursor(state: Mapping[str, Any]) -> str:
    """An opaque cursor holding ``state`` (the last item's sort key and id, JSON-ready):
    base64url of its JSON, for :attr:`Page.next_cursor`."""
    raw = json.dumps(jsonable(state), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *keys: str) -> dict[str, Any] | None:
    """The state of a cursor made by :func:`encode_cursor` (None for no cursor); a cursor
    that is not one of ours, or lacks one of ``keys``, is a 422 on ``cursor``."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        state = None
    if not isinstance(state, dict) or any(key not in state for key in keys):
        raise ValidationError(_BAD_CURSOR, field="cursor")
    return state


def cursor_int(state: Mapping[str, Any], key: str) -> int:
    """``state[key]`` as a whole number from 0 to 2**63-1 (an id or a position), else a
    422 on ``cursor``."""
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_CURSOR_INT:
        raise ValidationError(_BAD_CURSOR, field="cursor")
    return value
