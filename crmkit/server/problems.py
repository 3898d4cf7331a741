"""Problem documents (RFC 9457, ``application/problem+json``): every error the API answers.

Each problem has a stable ``type``, ``/api/v1/problems#<slug>``, so a client tells errors
apart by that URI and never by the wording of ``detail``. :func:`from_exception` maps the
errors crmkit raises on purpose to their status and slug; anything else is a 500
``internal-error`` whose body carries only the request id (the traceback goes to the log).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from crmkit import errors

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "/api/v1/problems#"


@attrs.frozen
class ProblemType:
    slug: str
    status: int
    title: str
    description: str


#: Every problem type the API answers with, by slug (``GET /api/v1/problems`` lists them).
TYPES: dict[str, ProblemType] = {
    p.slug: p
    for p in (
        ProblemType(
            "validation-error", 422, "Invalid value",
            "A field has the wrong type, a missing required value or a value the CRM refuses; "
            "'field' names it.",
        ),
        ProblemType(
            "malformed-body", 400, "Malformed request body",
            "The body is not valid JSON (or not UTF-8), is nested too deeply, or is missing.",
        ),
        ProblemType(
            "unknown-field", 422, "Unknown field",
            "The body or the query string has a field the operation does not take; 'field' "
            "names it.",
        ),
        ProblemType(
            "not-found", 404, "Not found",
            "No such resource, or a record outside what the caller may see.",
        ),
        ProblemType("conflict", 409, "Conflict", "The write conflicts with what is stored."),
        ProblemType(
            "transition-refused", 409, "Transition refused",
            "The workflow does not allow this move, or a plugin refused it.",
        ),
        ProblemType(
            "forbidden", 403, "Forbidden",
            "The caller lacks the permission ('permission' names it), the token's scopes do "
            "not allow it, or a cookie-authenticated write came without its CSRF token.",
        ),
        ProblemType(
            "unauthenticated", 401, "Authentication required",
            "No credentials, or an unknown, expired or revoked token or session.",
        ),
        ProblemType(
            "precondition-failed", 412, "Precondition failed",
            "The record changed since the If-Match version was read; nothing was written.",
        ),
        ProblemType(
            "precondition-required", 428, "Precondition required",
            "This edit needs an If-Match header carrying the record's ETag.",
        ),
        ProblemType(
            "idempotency-key-reused", 422, "Idempotency key reused",
            "The Idempotency-Key was used before for a different request.",
        ),
        ProblemType(
            "payload-too-large", 413, "Payload too large",
            "The body is larger than the server accepts ([server] max_body_bytes).",
        ),
        ProblemType(
            "unsupported-media-type", 415, "Unsupported media type",
            "The body's Content-Type is not one the operation takes (application/json).",
        ),
        ProblemType(
            "method-not-allowed", 405, "Method not allowed",
            "The resource exists but does not take this method; 'Allow' lists those it does.",
        ),
        ProblemType(
            "rate-limited", 429, "Too many requests",
            "Too many attempts; retry after the number of seconds in 'Retry-After'.",
        ),
        ProblemType(
            "internal-error", 500, "Internal error",
            "The server failed; the log holds the details under the request id.",
        ),
        ProblemType(
            "busy", 503, "Busy",
            "Another change holds the record (or the database file) longer than this "
            "request waits; nothing was written. Retry after 'Retry-After' seconds.",
        ),
        ProblemType(
            "not-ready", 503, "Service not ready",
            "The database is unreachable or its schema is not at head (run crmkit db upgrade).",
        ),
    )
}  # fmt: skip

#: the slug answering each status the router produces itself (404 route, 405 method)
SLUG_BY_STATUS = {
    400: "malformed-body",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    428: "precondition-required",
    429: "rate-limited",
    503: "not-ready",
}


class Problem(Exception):
    """An HTTP error answered as a problem document (raise it anywhere in the dispatcher)."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        kind = TYPES[slug]
        self.slug = slug
        self.status = status or kind.status
        self.title = kind.title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = {k: v for k, v in extensions.items() if v is not None}

    def document(self, *, instance: str = "", request_id: str = "") -> dict[str, Any]:
        """The problem document's members."""
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "request_id": request_id,
        }
        for key, value in self.extensions.items():
            body.setdefault(key, value)
        return body

    def body(self, *, instance: str = "", request_id: str = "") -> bytes:
        document = self.document(instance=instance, request_id=request_id)
        return json.dumps(document, ensure_ascii=False).encode("utf-8")


def unauthenticated(detail: str) -> Problem:
    return Problem("unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def internal_error() -> Problem:
    return Problem(
        "internal-error",
        "the server failed to answer this request; the log holds the details under its request id",
    )


def from_exception(exc: BaseException) -> Problem | None:
    """The problem answering a crmkit error, or None for an unexpected exception (a 500)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, errors.TooManyAttempts):
        return Problem(
            "rate-limited", str(exc), headers={"Retry-After": str(max(1, exc.retry_after))}
        )
    simple: tuple[tuple[type[BaseException], str], ...] = (
        (errors.NotFound, "not-found"),
        (errors.TransitionRefused, "transition-refused"),
        (errors.Conflict, "conflict"),
        (errors.PreconditionFailed, "precondition-failed"),
        (errors.SchemaOutOfDate, "not-ready"),
    )
    for cls, slug in simple:
        if isinstance(exc, cls):
            return Problem(slug, str(exc))
    if isinstance(exc, errors.Unauthenticated):
        return unauthenticated(str(exc))
    if isinstance(exc, errors.Forbidden):
        return Problem("forbidden", str(exc), permission=exc.permission)
    if isinstance(exc, errors.ValidationError):
        return Problem("validation-error", str(exc), field=exc.field)
    if isinstance(exc, errors.PluginError | errors.ConfigError):
        return None  # a plugin's bug or the server's configuration: the caller can't fix it
    if isinstance(exc, errors.CrmError):
        # raised on purpose with a sentence the caller can act on (a refused value)
        return Problem("validation-error", str(exc))
    return None
