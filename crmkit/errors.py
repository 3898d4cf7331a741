"""Errors crmkit raises for bad input or configuration.

Every error carries one sentence a person can act on: what went wrong, where,
and how to fix it. The CLI prints ``str(error)`` and exits non-zero; the
Python API lets it propagate. Nothing is written when one is raised inside a
write (the transaction is rolled back).
"""

from __future__ import annotations


class CrmError(Exception):
    """Base class of every error crmkit raises on purpose."""

    exit_code = 1


class ConfigError(CrmError):
    """The configuration file, environment or settings are invalid."""


class ValidationError(CrmError):
    """A value given for a write is invalid (names the field and the fix)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(CrmError):
    """A customer, order, instance or other record does not exist."""


class Conflict(CrmError):
    """The write conflicts with what is stored (duplicate external id, ...)."""


class TransitionRefused(CrmError):
    """A workflow transition is not allowed, or a plugin vetoed it."""


class PluginError(CrmError):
    """A plugin is missing, failed to load, is incompatible, or raised in a hook."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class SchemaOutOfDate(CrmError):
    """The database schema is behind the code; run ``crmkit db upgrade``."""


class Forbidden(CrmError):
    """The acting staff member, token or job lacks the permission the action needs.

    ``permission`` names it (``"customers.erase"``). A record outside the actor's scope
    (another rep's customer) is reported as :class:`NotFound` instead, so its existence
    does not leak.
    """

    def __init__(self, message: str, *, permission: str | None = None) -> None:
        super().__init__(message)
        self.permission = permission


class Unauthenticated(CrmError):
    """No valid identity: wrong password, unknown or revoked token, expired session."""


class PreconditionFailed(CrmError):
    """The record changed since the caller read it (a stale ``If-Match`` version)."""


class TooManyAttempts(Unauthenticated):
    """Too many failed sign-ins for this account or address: wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
