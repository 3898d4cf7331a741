"""``crmkit contact edit|remove`` and ``crmkit staff edit|deactivate|activate|list``.

The ``contact`` and ``staff`` groups are defined with their other commands
(:mod:`crmkit.cli.customer`, :mod:`crmkit.cli.activity`); this module adds the
commands that change or retire people, and ``staff list`` with the active column.
"""

from __future__ import annotations

from typing import Any

import click

from crmkit.cli import UserError, pass_crm
from crmkit.cli.activity import staff
from crmkit.cli.customer import contact
from crmkit.cli.output import emit, format_option
from crmkit.core.serialize import jsonable

# -- contacts ----------------------------------------------------------------


@contact.command("edit")
@click.argument("contact_id", metavar="CONTACT", type=int)
@click.option("--name", default=None, help="The contact's name.")
@click.option("--role", default=None, help='Role, e.g. purchasing manager ("" clears it).')
@click.option("--email", default=None, help='E-mail address ("" clears it).')
@click.option("--phone", default=None, help='Phone number ("" clears it).')
@pass_crm
def contact_edit(crm: Any, contact_id: int, **fields: Any) -> None:
    """Change a contact person (CONTACT is the id 'contact list' shows)."""
    changes = {key: value for key, value in fields.items() if value is not None}
    if not changes:
        raise UserError("nothing to change: give --name, --role, --email or --phone")
    after = crm.customers.update_contact(contact_id, **changes)
    click.echo(f"updated contact {after.id} of customer {after.customer_id}: {after.name}")


@contact.command("remove")
@click.argument("contact_id", metavar="CONTACT", type=int)
@pass_crm
def contact_remove(crm: Any, contact_id: int) -> None:
    """Remove a contact person (CONTACT is the id 'contact list' shows)."""
    removed = crm.customers.remove_contact(contact_id)
    click.echo(f"removed contact {removed.id} ({removed.name}) of customer {removed.customer_id}")


# -- staff -------------------------------------------------------------------


def _roles(values: tuple[str, ...]) -> list[str]:
    return [r.strip() for item in values for r in item.split(",") if r.strip()]


@staff.command("edit")
@click.argument("username")
@click.option("--name", default=None, help="Full name.")
@click.option("--email", default=None, help='E-mail address ("" clears it).')
@click.option(
    "--role", "roles", multiple=True,
    help="The roles, replacing the current ones (repeatable or comma-separated; \"\" for none).",
)  # fmt: skip
@click.option("--department", default=None, help='Department ("" clears it).')
@click.option("--manager", default=None, help='Username of their manager ("" clears it).')
@pass_crm
def staff_edit(crm: Any, username: str, roles: tuple[str, ...], **fields: Any) -> None:
    """Change a staff member's name, e-mail, roles, department or manager."""
    changes = {key: value for key, value in fields.items() if value is not None}
    if roles:
        changes["roles"] = _roles(roles)
    if not changes:
        raise UserError(
            "nothing to change: give --name, --email, --role, --department or --manager"
        )
    member = crm.staff.update(username, **changes)
    click.echo(
        f"updated staff member {member.username} (roles: {', '.join(member.roles) or 'none'})"
    )


@staff.command("deactivate")
@click.argument("username")
@pass_crm
def staff_deactivate(crm: Any, username: str) -> None:
    """Deactivate a staff member who left: their history keeps their name, but they can no
    longer own customers or act in workflows ('staff activate' undoes it)."""
    if not crm.staff.get(username).active:
        click.echo(f"staff member {username} was already deactivated")
        return
    crm.staff.deactivate(username)
    click.echo(f"deactivated staff member {username}; their history stays")
    customers = crm.customers.count(owner=username)
    instances = len(crm.workflows.list(owner=username, open_only=True))
    if customers or instances:
        click.echo(
            f"they still own {customers} customer(s) and {instances} open workflow "
            "instance(s): give them another owner ('crmkit customer edit ID --owner NAME')"
        )


@staff.command("activate")
@click.argument("username")
@pass_crm
def staff_activate(crm: Any, username: str) -> None:
    """Reactivate a deactivated staff member."""
    was = crm.staff.get(username).active
    crm.staff.activate(username)
    click.echo(f"staff member {username} {'was already' if was else 'is'} active")


@click.command("list")
@click.option("--role", default=None, help="Only members holding this role.")
@click.option("--department", default=None, help="Only this department.")
@click.option("--all", "everyone", is_flag=True, help="Deactivated members too.")
@format_option()
@pass_crm
def staff_list(
    crm: Any, role: str | None, department: str | None, everyone: bool, fmt: str
) -> None:
    """List active staff members by username (--all: deactivated ones too)."""
    rows = [
        {
            **jsonable(m),
            "roles": ", ".join(m.roles) if fmt != "json" else m.roles,
            "active": m.active if fmt == "json" else ("yes" if m.active else "no"),
        }
        for m in crm.staff.list(role=role, department=department, include_inactive=everyone)
    ]
    emit(rows, fmt, ["username", "name", "roles", "department", "manager", "email", "active"])


# replaces the group's first ``list`` (defined in crmkit.cli.activity without --all)
staff.add_command(staff_list, "list")
