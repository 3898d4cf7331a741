"""Staff service: the people who own customers and act in workflows.

Staff are never deleted: :meth:`StaffService.deactivate` sets ``active`` to false and
keeps the row, so interactions, transitions and ledgers still show who did what. A
deactivated member cannot be made the owner of a customer, nor act in a workflow
(:meth:`StaffService.refuse_inactive`); :meth:`StaffService.activate` undoes it.

Adding and changing staff needs ``staff.admin``; :meth:`StaffService.get` and
:meth:`StaffService.list` need ``staff.read``. The lookups the rest of crmkit makes
(:meth:`StaffService.actor` at sign-in and for ``--as``, :meth:`StaffService.find`,
:meth:`StaffService.refuse_inactive`, ``_get``) check nothing. Audited as
``staff.create``, ``staff.update``, ``staff.deactivate`` and ``staff.activate``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import insert, select, update

from crmkit.core import access
from crmkit.core import tables as t
from crmkit.core.actors import Actor
from crmkit.core.entities import Staff
from crmkit.errors import Conflict, NotFound, ValidationError

if TYPE_CHECKING:
    from crmkit.crm import CRM


class StaffService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def add(
        self,
        username: str,
        name: str = "",
        *,
        roles: list[str] | None = None,
        email: str | None = None,
        department: str | None = None,
        manager: str | None = None,
    ) -> Staff:
        """Add a staff member (``username`` unique); ``roles`` are workflow roles such as
        ``sales_rep``."""
        access.authorise(self.crm, "staff.admin")
        member = Staff(
            username=username,
            name=name or username,
            email=email,
            roles=list(roles or []),
            department=department,
            manager=manager,
        )
        with self.crm.transaction() as ctx:
            if ctx.connection.scalar(select(t.staff.c.id).where(t.staff.c.username == username)):
                raise Conflict(f"staff member {username!r} already exists")
            if manager:
                self._get(manager)
            values = {k: v for k, v in attrs.asdict(member).items() if k != "id"}
            new_id = ctx.connection.scalar(insert(t.staff).returning(t.staff.c.id), values)
            ctx.audit("staff.create", "staff", username, after=_audited(member))
        return attrs.evolve(member, id=new_id)

    #: what :meth:`update` changes (``active`` through :meth:`deactivate`/:meth:`activate`)
    EDITABLE = ("name", "email", "roles", "department", "manager")

    def update(self, username: str, /, **changes: Any) -> Staff:
        """Change a staff member's name, email, roles, department or manager.

        ``None`` (or "") clears email, department or manager; the username stays (the
        history refers to it). The manager must be another existing member.
        """
        unknown = sorted(set(changes) - set(self.EDITABLE))
        if unknown:
            raise ValidationError(
                f"staff members have no editable field {unknown[0]!r}; the fields are "
                f"{', '.join(self.EDITABLE)} (deactivate with 'crmkit staff deactivate')",
                field=unknown[0],
            )
        access.authorise(self.crm, "staff.admin")
        cleaned = {key: _clean(key, value) for key, value in changes.items()}
        with self.crm.transaction() as ctx:
            before = self._get(username)
            manager = cleaned.get("manager")
            if manager == username:
                raise ValidationError(f"{username!r} cannot be their own manager", field="manager")
            if manager:
                self._get(manager)
            after = attrs.evolve(before, **cleaned)  # validates the email
            if after != before:
                ctx.connection.execute(
                    update(t.staff)
                    .where(t.staff.c.username == username)
                    .values({key: getattr(after, key) for key in cleaned})
                )
                ctx.audit(
                    "staff.update",
                    "staff",
                    username,
                    before=_audited(before),
                    after=_audited(after),
                )
        return after

    def deactivate(self, username: str) -> Staff:
        """Mark a staff member inactive: the row and their history stay, but they can no
        longer own customers or act in workflows. Deactivating twice changes nothing."""
        return self._set_active(username, False)

    def activate(self, username: str) -> Staff:
        """Undo :meth:`deactivate`."""
        return self._set_active(username, True)

    def _set_active(self, username: str, active: bool) -> Staff:
        access.authorise(self.crm, "staff.admin")
        with self.crm.transaction() as ctx:
            member = self._get(username)
            if member.active != active:
                ctx.connection.execute(
                    update(t.staff).where(t.staff.c.username == username).values(active=active)
                )
                ctx.audit(
                    "staff.activate" if active else "staff.deactivate",
                    "staff",
                    username,
                    changes={"active": [member.active, active]},
                )
        return attrs.evolve(member, active=active)

    def refuse_inactive(self, usernames: str | Iterable[str | None] | None, doing: str) -> None:
        """:class:`Conflict` when one of ``usernames`` is a deactivated staff member.

        ``doing`` says what was refused ("own customers", "act in workflows"). Names
        that are no staff member (or None) pass: this check is about deactivation only.
        """
        names = {usernames} if isinstance(usernames, str) else set(usernames or ())
        names.discard(None)
        if not names:
            return
        with self.crm.reading() as connection:
            inactive = sorted(
                connection.scalars(
                    select(t.staff.c.username).where(
                        t.staff.c.username.in_(sorted(names)), t.staff.c.active.is_(False)
                    )
                )
            )
        if inactive:
            who = inactive[0]
            raise Conflict(
                f"staff member {who!r} is deactivated and cannot {doing}; choose an active "
                f"member ('crmkit staff list'), or reactivate them with "
                f"'crmkit staff activate {who}'"
            )

    def actor(self, username: str, *, request_id: str | None = None) -> Actor:
        """The :class:`Actor` of staff member ``username`` (``crmkit --as``, sign-in):
        NotFound for an unknown username, ValidationError for a deactivated one. Checks no
        permission: it is how an actor comes to be."""
        member = self._get(username)
        if not member.active:
            raise ValidationError(
                f"staff member {username!r} is deactivated and cannot act; "
                "reactivate them with 'crmkit staff activate'"
            )
        return Actor.for_staff(
            member.username,
            member.roles,
            staff_id=member.id,
            manager=member.manager,
            request_id=request_id,
        )

    def get(self, username: str) -> Staff:
        """The staff member with this username; :class:`NotFound` when there is none.
        Needs ``staff.read``."""
        access.authorise(self.crm, "staff.read")
        return self._get(username)

    def _get(self, username: str) -> Staff:
        """:meth:`get` without a check (lookups of other services)."""
        with self.crm.reading() as connection:
            row = connection.execute(select(t.staff).where(t.staff.c.username == username)).first()
        if row is None:
            raise NotFound(f"staff member {username!r} not found; add them with 'crmkit staff add'")
        return _staff(row)

    def find(self, username: str | None) -> Staff | None:
        """The staff member with this username, or ``None`` (also for ``None``); a lookup
        for other services, checking no permission."""
        if not username:
            return None
        try:
            return self._get(username)
        except NotFound:
            return None

    def list(
        self,
        *,
        role: str | None = None,
        department: str | None = None,
        include_inactive: bool = False,
    ) -> list[Staff]:
        """Active staff members, by username; optionally only those with ``role`` or in
        ``department``; ``include_inactive`` adds the deactivated ones. Needs
        ``staff.read``."""
        access.authorise(self.crm, "staff.read")
        query = select(t.staff).order_by(t.staff.c.username)
        if not include_inactive:
            query = query.where(t.staff.c.active.is_(True))
        with self.crm.reading() as connection:
            rows = connection.execute(query).all()
        members = [_staff(row) for row in rows]
        if role:
            members = [m for m in members if role in m.roles]
        if department:
            members = [m for m in members if m.department == department]
        return members


def _clean(field: str, value: Any) -> Any:
    """A value for ``field`` checked against the ``staff`` column (text, no NUL, size)."""
    if field == "roles":
        if isinstance(value, str) or not all(isinstance(r, str) and r.strip() for r in value):
            raise ValidationError("roles must be a list of role names", field="roles")
        return [r.strip() for r in value]
    if value is None or (field != "name" and value == ""):
        if field == "name":
            raise ValidationError("a staff member's name must not be empty", field="name")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"staff {field} must be text, got {value!r}", field=field)
    value = value.strip()
    if "\x00" in value:
        raise ValidationError(f"staff {field} contains a NUL character", field=field)
    size = getattr(t.staff.c[field].type, "length", None)
    if size is not None and len(value) > size:
        raise ValidationError(
            f"staff {field} is {len(value)} characters long; at most {size} fit", field=field
        )
    return value


_STAFF_FIELDS = tuple(f.name for f in attrs.fields(Staff))


def _audited(member: Staff) -> dict[str, Any]:
    """A staff member's values as audit entries record them (no password, ever)."""
    return {
        key: getattr(member, key)
        for key in ("name", "email", "roles", "department", "manager", "active")
    }


def _staff(row: Any) -> Staff:
    """The entity from a row of ``staff`` (the password hash never leaves this module)."""
    return Staff(**{name: row._mapping[name] for name in _STAFF_FIELDS})
