"""Permissions: what each role may do, at which scope, checked in the service layer.

A permission is a dotted name (``customers.read``, ``loyalty.adjust``). A role grants
permissions at a scope: ``own`` (customers the staff member owns), ``team`` (owned by
them or anyone reporting to them, directly or not) or ``all``. Scopes only narrow
*scoped* permissions, those on a customer's records; the rest are granted or not.

The core declares its permissions and the default roles (the seeds' roles); plugins
declare theirs through ``crmkit_register_permissions``; ``[roles.<name>]`` tables of
``crmkit.toml`` replace a role's grants or add roles. Every service method calls
:meth:`Permissions.authorise` with the current actor: role grants first, then a token's
scopes, then every ``crmkit_permission_allowed`` rule (any refusal wins). The CLI, the
Python API and HTTP reach the same check because they call the same services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
from sqlalchemy import select

from crmkit.errors import ConfigError, CrmError, Forbidden, NotFound

if TYPE_CHECKING:
    from crmkit.core.actors import Actor
    from crmkit.crm import CRM

Scope = Literal["own", "team", "all"]
SCOPES: tuple[Scope, ...] = ("own", "team", "all")
_RANK = {"own": 1, "team": 2, "all": 3}

#: Holds every permission at scope ``all``, whatever is declared later.
ADMIN_ROLE = "admin"


@attrs.frozen
class PermissionSpec:
    """One permission: its name, what it allows, and which roles hold it by default.

    ``default_grants`` maps a role name to a scope (``{"manager": "all"}``); a role named
    here that nobody else declares becomes a role of its own. ``scoped=False`` for a
    permission that is not about one customer's records (``staff.admin``, ``kb.write``):
    any grant of it is a grant at ``all``.
    """

    name: str
    description: str
    scoped: bool = True
    default_grants: Mapping[str, Scope] = attrs.field(factory=dict)
    declared_by: str = "crmkit"


@attrs.frozen
class Resource:
    """What an action is about: ``kind`` and ``id`` name it for messages and rules;
    ``customer_id`` (looked up) or ``owner`` (already known) decide own/team scopes."""

    kind: str
    id: Any = None
    customer_id: int | None = None
    owner: str | None = None
    owner_known: bool = False

    @classmethod
    def customer(cls, customer_id: int | None, *, owner: Any = ..., kind: str = "customer",
                 id: Any = None) -> Resource:  # fmt: skip
        """A customer's record; pass ``owner`` when the caller already has it."""
        if owner is ...:
            return cls(kind, id if id is not None else customer_id, customer_id)
        return cls(kind, id if id is not None else customer_id, customer_id, owner, True)


def _core(name: str, description: str, scoped: bool = True, **grants: Scope) -> PermissionSpec:
    return PermissionSpec(name, description, scoped, grants)


#: The core's permissions and the default roles' grants (the seeds' roles; ``admin``
#: holds everything). Sales reps see their own customers, sales managers their team's;
#: service roles work on every customer but erase, export or merge none.
CORE_PERMISSIONS: tuple[PermissionSpec, ...] = (
    _core("customers.read", "see customers, their contacts, consent and 360 view",
          sales_rep="own", sales_manager="team", cost_accounting="all",
          technical_support="all", complaint_handler="all", manager="all"),
    _core("customers.write", "add and edit customers, contacts and consent",
          sales_rep="own", sales_manager="team", manager="all"),
    _core("customers.erase", "erase a customer's personal data", manager="all"),
    _core("customers.export", "export a customer's personal data", manager="all"),
    _core("customers.merge", "merge duplicate customers", sales_manager="team", manager="all"),
    _core("interactions.read", "see interactions and timelines",
          sales_rep="own", sales_manager="team", technical_support="all",
          complaint_handler="all", manager="all"),
    _core("interactions.write", "log interactions",
          sales_rep="own", sales_manager="team", technical_support="all",
          complaint_handler="all", manager="all"),
    _core("orders.read", "see orders, amounts and costs",
          sales_rep="own", sales_manager="team", cost_accounting="all",
          technical_support="all", complaint_handler="all", manager="all"),
    _core("orders.write", "add orders and change their status and costs",
          sales_rep="own", sales_manager="team", cost_accounting="all", manager="all"),
    # complaint handlers work complaints, which are workflow instances; a stage's own
    # roles still decide who moves it (a handler cannot move a sales deal's stages)
    _core("workflows.read", "see deals and other workflow instances",
          sales_rep="own", sales_manager="team", cost_accounting="all",
          technical_support="all", complaint_handler="all", manager="all"),
    _core("workflows.move", "start workflow instances and move them between stages",
          sales_rep="own", sales_manager="team", cost_accounting="all",
          technical_support="all", complaint_handler="all", manager="all"),
    _core("staff.read", "see staff members", False,
          sales_rep="all", sales_manager="all", cost_accounting="all",
          technical_support="all", complaint_handler="all", manager="all"),
    _core("staff.admin", "add and change staff, passwords and API tokens", False),
    _core("audit.read", "read the audit log", False, manager="all"),
    _core("import.run", "bulk import and export of CSV / JSON Lines", False, manager="all"),
)  # fmt: skip


@attrs.frozen
class Grant:
    permission: str
    scope: Scope


def parse_grant(text: str, where: str) -> Grant:
    """``"customers.read:own"`` (scope defaults to ``all``) as a Grant."""
    name, _, scope = text.partition(":")
    scope = scope or "all"
    if not name or scope not in SCOPES:
        raise ConfigError(
            f"{where}: grant {text!r} is not 'permission:scope' with scope one of "
            f"{', '.join(SCOPES)} (e.g. 'customers.read:own')"
        )
    return Grant(name, scope)  # type: ignore[arg-type]


def token_allows(scopes: frozenset[str] | None, action: str) -> bool:
    """True when a token's scopes include ``action`` (exact, ``prefix.*`` or ``*``)."""
    if scopes is None:
        return True
    if "*" in scopes or action in scopes:
        return True
    return any(s.endswith(".*") and action.startswith(s[:-1]) for s in scopes)


class Permissions:
    """The permissions and roles of one open CRM, and the one check every service runs."""

    def __init__(
        self,
        crm: CRM | None,
        specs: Iterable[PermissionSpec],
        configured_roles: Mapping[str, Sequence[str]] | None = None,
        where: str = "the configuration",
    ) -> None:
        self.crm = crm
        self.specs: dict[str, PermissionSpec] = {}
        for spec in specs:
            other = self.specs.get(spec.name)
            if other is not None:
                raise ConfigError(
                    f"permission {spec.name!r} is declared by {other.declared_by} and by "
                    f"{spec.declared_by}; a plugin's permissions start with its name"
                )
            self.specs[spec.name] = spec
        self.roles: dict[str, dict[str, Scope]] = {ADMIN_ROLE: {}}
        for spec in self.specs.values():
            for role, scope in spec.default_grants.items():
                if scope not in SCOPES:
                    raise ConfigError(
                        f"permission {spec.name!r} of {spec.declared_by} grants role "
                        f"{role!r} scope {scope!r}; use one of {', '.join(SCOPES)}"
                    )
                self.roles.setdefault(role, {})[spec.name] = scope
        for role, texts in (configured_roles or {}).items():
            grants: dict[str, Scope] = {}
            for text in texts:
                grant = parse_grant(text, f"{where}: [roles.{role}]")
                if grant.permission not in self.specs and not grant.permission.endswith("*"):
                    raise ConfigError(
                        f"{where}: [roles.{role}] grants unknown permission "
                        f"{grant.permission!r}; known: {', '.join(sorted(self.specs))}"
                    )
                for name in self._matching(grant.permission):
                    grants[name] = grant.scope
            self.roles[role] = grants

    def _matching(self, pattern: str) -> list[str]:
        if pattern == "*":
            return list(self.specs)
        if pattern.endswith(".*"):
            return [n for n in self.specs if n.startswith(pattern[:-1])]
        return [pattern]

    # -- questions ----------------------------------------------------------
    def spec(self, action: str) -> PermissionSpec:
        try:
            return self.specs[action]
        except KeyError:
            raise CrmError(
                f"unknown permission {action!r}; declare it with crmkit_register_permissions"
            ) from None

    def scope_of(self, actor: Actor, action: str) -> Scope | None:
        """The widest scope ``actor`` holds ``action`` at, or ``None`` (not at all)."""
        spec = self.spec(action)
        if actor.is_operator:
            return "all"
        if actor.kind == "anonymous" or not token_allows(actor.scopes, action):
            return None
        best: Scope | None = None
        for role in actor.roles:
            if role == ADMIN_ROLE:
                return "all"
            scope = self.roles.get(role, {}).get(action)
            if scope is not None and (best is None or _RANK[scope] > _RANK[best]):
                best = scope
        if best is not None and not spec.scoped:
            return "all"
        return best

    def visible_owners(self, actor: Actor, action: str) -> frozenset[str] | None:
        """For list queries: ``None`` when every customer is visible, else the owners whose
        customers are (empty when none). Raises :class:`Forbidden` without the permission."""
        scope = self.require(actor, action)
        if scope == "all":
            return None
        return frozenset(self.team_of(actor) if scope == "team" else {actor.username or ""})

    def team_of(self, actor: Actor) -> set[str]:
        """The actor's username and everyone reporting to them, directly or not."""
        from crmkit.core import tables as t

        me = actor.username or ""
        if self.crm is None:
            return {me}
        with self.crm.reading() as connection:
            rows = connection.execute(select(t.staff.c.username, t.staff.c.manager)).all()
        reports: dict[str, list[str]] = {}
        for username, manager in rows:
            if manager:
                reports.setdefault(manager, []).append(username)
        team, todo = {me}, [me]
        while todo:
            for member in reports.get(todo.pop(), ()):
                if member not in team:
                    team.add(member)
                    todo.append(member)
        return team

    # -- the check ------------------------------------------------------------
    def require(self, actor: Actor, action: str) -> Scope:
        """The scope ``actor`` holds ``action`` at; :class:`Forbidden` when none."""
        scope = self.scope_of(actor, action)
        if scope is None:
            who = actor.name if actor.kind != "anonymous" else "an anonymous request"
            detail = (
                "the token's scopes do not include it"
                if actor.kind == "token" and not token_allows(actor.scopes, action)
                else f"roles: {', '.join(actor.roles) or 'none'}"
            )
            raise Forbidden(
                f"{who} may not {self.spec(action).description} ({action}; {detail})",
                permission=action,
            )
        return scope

    def authorise(self, actor: Actor, action: str, resource: Resource | None = None) -> None:
        """Allow ``actor`` to do ``action`` on ``resource`` or raise.

        :class:`Forbidden` when no role grants the permission (or a token's scopes or a
        plugin rule refuse it); :class:`NotFound` when the resource is a customer's record
        outside the actor's scope (so another rep's customer looks like no customer).
        """
        scope = self.require(actor, action)
        if scope != "all" and resource is not None and resource.customer_id is not None:
            owner = resource.owner if resource.owner_known else self._owner(resource)
            allowed = self.team_of(actor) if scope == "team" else {actor.username}
            if owner not in allowed:
                raise NotFound(f"no {resource.kind} {resource.id}")
        elif scope != "all" and resource is not None and resource.owner_known:
            # a new record for a customer-to-be: the owner it will have must be in scope
            allowed = self.team_of(actor) if scope == "team" else {actor.username}
            if resource.owner not in allowed:
                raise Forbidden(
                    f"{actor.name} may only {self.spec(action).description} for "
                    f"{'their team' if scope == 'team' else 'their own'} customers "
                    f"({action}:{scope}); owner {resource.owner!r} is outside it",
                    permission=action,
                )
        self._ask_plugins(actor, action, resource)

    def _owner(self, resource: Resource) -> str | None:
        from crmkit.core import tables as t

        assert self.crm is not None
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.customers.c.owner).where(t.customers.c.id == resource.customer_id)
            ).first()
        if row is None:
            raise NotFound(f"no {resource.kind} {resource.id}")
        return row.owner

    def _ask_plugins(self, actor: Actor, action: str, resource: Resource | None) -> None:
        crm = self.crm
        if crm is None or not crm.has_hook("crmkit_permission_allowed"):
            return
        answers = crm.call(
            "crmkit_permission_allowed", crm=crm, actor=actor, action=action, resource=resource
        )
        for answer in answers:
            if answer is False or (isinstance(answer, str) and answer):
                reason = answer if isinstance(answer, str) else "a plugin rule refuses it"
                raise Forbidden(f"{actor.name} may not do {action}: {reason}", permission=action)

    def describe(self) -> list[dict[str, Any]]:
        """Every role with its grants (for ``crmkit roles`` and the docs)."""
        out = []
        for role in sorted(self.roles):
            grants = (
                {name: "all" for name in self.specs} if role == ADMIN_ROLE else self.roles[role]
            )
            out.append({"role": role, "grants": dict(sorted(grants.items()))})
        return out
