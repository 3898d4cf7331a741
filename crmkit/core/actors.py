"""Who is acting: every service call runs as an :class:`Actor`.

An actor is a staff member (signed in through a browser session), an API token
(its staff member narrowed to the token's scopes), a scheduled job, or the local
operator of the CLI or of Python code on the database (``cli:<os user>``,
``python:<os user>``). The actor travels with the CRM handle (:meth:`CRM.acting_as`)
and the transaction (``ctx.actor``); services authorise it
(:func:`crmkit.core.permissions.authorise`) and the audit log records it.
"""

from __future__ import annotations

import getpass
from typing import Literal

import attrs

ActorKind = Literal["staff", "token", "job", "cli", "python", "anonymous"]

#: Kinds whose actor holds every permission: whoever runs the CLI or Python on the
#: database already has the data; jobs are code the integrator installed.
OPERATOR_KINDS = frozenset({"job", "cli", "python"})


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without USER): still a known label
        return "unknown"


@attrs.frozen
class Actor:
    """Who is acting, with what they may do.

    ``name`` is the label the audit log records (``"wang.lei"``, ``"token:7:wang.lei"``,
    ``"job:sla-check"``, ``"cli:root"``). ``username``/``roles``/``manager`` come from the
    staff record for staff and token actors. ``scopes`` narrows a token to the permissions
    it was created with (``"customers.read"``, ``"loyalty.*"``, ``"*"``); ``None`` means no
    narrowing. ``on_behalf_of`` is the staff username an operator names when recording
    work for someone (``crm.transaction(actor="wang.lei")``); it changes no permission.
    """

    kind: ActorKind
    name: str
    username: str | None = None
    roles: tuple[str, ...] = ()
    manager: str | None = None
    scopes: frozenset[str] | None = None
    staff_id: int | None = None
    token_id: int | None = None
    request_id: str | None = None
    on_behalf_of: str | None = None

    @property
    def is_operator(self) -> bool:
        """True for the local operator and jobs: every permission, still audited."""
        return self.kind in OPERATOR_KINDS

    @property
    def label(self) -> str:
        """The name stored in a record's own ``actor``/``staff`` column."""
        return self.on_behalf_of or self.username or self.name

    @classmethod
    def operator(cls, kind: Literal["cli", "python"] = "python") -> Actor:
        """The local operator: ``cli:<os user>`` or ``python:<os user>``."""
        return cls(kind=kind, name=f"{kind}:{os_user()}")

    @classmethod
    def job(cls, name: str) -> Actor:
        """A scheduled or background job, recorded as ``job:<name>``."""
        return cls(kind="job", name=f"job:{name}")

    @classmethod
    def anonymous(cls, request_id: str | None = None) -> Actor:
        """Nobody signed in (public pages: a case's status by tracking code)."""
        return cls(kind="anonymous", name="anonymous", request_id=request_id)

    @classmethod
    def for_staff(
        cls,
        username: str,
        roles: tuple[str, ...] | list[str],
        *,
        staff_id: int | None = None,
        manager: str | None = None,
        request_id: str | None = None,
    ) -> Actor:
        """A staff member acting with their roles."""
        return cls(
            kind="staff",
            name=username,
            username=username,
            roles=tuple(roles),
            manager=manager,
            staff_id=staff_id,
            request_id=request_id,
        )

    def through_token(self, token_id: int, scopes: frozenset[str] | set[str]) -> Actor:
        """This staff member narrowed to an API token's scopes."""
        return attrs.evolve(
            self,
            kind="token",
            name=f"token:{token_id}:{self.username}",
            token_id=token_id,
            scopes=frozenset(scopes),
        )

    def with_request(self, request_id: str | None) -> Actor:
        """This actor, carrying the id of the request it acts in (the audit log records it)."""
        return attrs.evolve(self, request_id=request_id)
