"""Staff service: the people who own customers and act in workflows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import insert, select, update

from crmkit.core import tables as t
from crmkit.core.entities import Staff
from crmkit.errors import Conflict, NotFound

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
                self.get(manager)
            values = {k: v for k, v in attrs.asdict(member).items() if k != "id"}
            new_id = ctx.connection.scalar(insert(t.staff).returning(t.staff.c.id), values)
        return attrs.evolve(member, id=new_id)

    def update(self, username: str, **changes: Any) -> Staff:
        """Change a staff member's name, email, roles, department or manager."""
        with self.crm.transaction() as ctx:
            after = attrs.evolve(self.get(username), **changes)
            values = {k: v for k, v in attrs.asdict(after).items() if k != "id"}
            ctx.connection.execute(
                update(t.staff).where(t.staff.c.username == username).values(values)
            )
        return after

    def get(self, username: str) -> Staff:
        """The staff member with this username; :class:`NotFound` when there is none."""
        with self.crm.reading() as connection:
            row = connection.execute(select(t.staff).where(t.staff.c.username == username)).first()
        if row is None:
            raise NotFound(f"staff member {username!r} not found; add them with 'crmkit staff add'")
        return Staff(**row._mapping)

    def find(self, username: str | None) -> Staff | None:
        """The staff member with this username, or ``None`` (also for ``None``)."""
        if not username:
            return None
        try:
            return self.get(username)
        except NotFound:
            return None

    def list(self, *, role: str | None = None, department: str | None = None) -> list[Staff]:
        """Staff members, by username; optionally only those with ``role`` or in ``department``."""
        with self.crm.reading() as connection:
            rows = connection.execute(select(t.staff).order_by(t.staff.c.username)).all()
        members = [Staff(**row._mapping) for row in rows]
        if role:
            members = [m for m in members if role in m.roles]
        if department:
            members = [m for m in members if m.department == department]
        return members
