"""``crmkit customer ...`` and ``crmkit contact ...``: customers, their contacts and consent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from crmkit.cli import UserError, cli, pass_crm
from crmkit.cli import params as p
from crmkit.cli.output import emit, format_option
from crmkit.core.entities import CUSTOMER_KINDS, CUSTOMER_STATUSES, CUSTOMER_TYPES, Customer
from crmkit.core.serialize import jsonable
from crmkit.errors import NotFound

#: Profile options of ``add`` and ``edit``: (option, field, help).
_PROFILE_OPTIONS = (
    ("--name", "name", "Name of the person or organisation."),
    ("--external-id", "external_id", "Your own id for the customer, e.g. C-0001."),
    ("--type", "type", f"One of: {', '.join(CUSTOMER_TYPES)} (default person)."),
    ("--kind", "kind", f"One of: {', '.join(CUSTOMER_KINDS)} (default end)."),
    ("--status", "status", f"One of: {', '.join(CUSTOMER_STATUSES)} (default active)."),
    ("--email", "email", "E-mail address."),
    ("--phone", "phone", "Phone number."),
    ("--address", "address", "Postal address."),
    ("--region", "region", "Region (sales territory)."),
    ("--province", "province", "Province or state."),
    ("--city", "city", "City."),
    ("--industry", "industry", "Industry."),
    ("--occupation", "occupation", "Occupation."),
    ("--birth-date", "birth_date", "Birth date, e.g. 1980-04-30."),
    ("--owner", "owner", "Username of the staff member who owns the customer."),
)
_TABLE_COLUMNS = ["id", "external_id", "name", "type", "status", "region", "owner", "email"]


def _profile_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--attr", "attrs_", multiple=True, metavar="KEY=VALUE",
        help="Custom attribute (repeatable); declared attributes are validated.",
    )(command)  # fmt: skip
    for option, field, help_text in reversed(_PROFILE_OPTIONS):
        command = click.option(option, field, default=None, help=help_text)(command)
    return command


def _check_owner(crm: Any, owner: str | None) -> None:
    if owner and crm.staff.find(owner) is None:  # a lookup: no staff.read needed
        raise NotFound(f"staff member {owner!r} not found; add them with 'crmkit staff add'")


def customer_row(customer: Customer) -> dict[str, Any]:
    """A customer as one JSON object: profile, attributes, consents and times."""
    from crmkit.core.customers import PROFILE_FIELDS  # SQLAlchemy: not on --help

    return {
        "id": customer.id,
        **{f: getattr(customer, f) for f in PROFILE_FIELDS},
        "attributes": customer.attributes,
        "consents": customer.consents,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
        "erased_at": customer.erased_at,
    }


def _flat_rows(customers: list[Customer]) -> tuple[list[dict[str, Any]], list[str]]:
    """CSV rows: profile columns, one column per custom attribute, granted consents."""
    from crmkit.core.customers import PROFILE_FIELDS  # SQLAlchemy: not on --help

    names = sorted({k for c in customers for k in c.attributes})
    columns = ["id", *PROFILE_FIELDS, *names, "consents", "created_at"]
    rows = []
    for c in customers:
        row = {"id": c.id, **{f: getattr(c, f) for f in PROFILE_FIELDS}}
        row.update({n: c.attributes.get(n) for n in names})
        row["consents"] = ",".join(sorted(k for k, v in c.consents.items() if v))
        row["created_at"] = c.created_at
        rows.append(row)
    return rows, columns


@cli.group(cls=p.RecordGroup)
def customer() -> None:
    """Customers: add, list, show (the 360 view), edit, consent, export, erase."""


@customer.command("add")
@_profile_options
@click.option(
    "--consent", "consents", multiple=True, metavar="PURPOSE",
    help="Consent given for PURPOSE (repeatable), e.g. marketing.",
)  # fmt: skip
@pass_crm
def customer_add(
    crm: Any, attrs_: tuple[str, ...], consents: tuple[str, ...], **fields: Any
) -> None:
    """Add a customer (--name is required)."""
    values = {k: v for k, v in fields.items() if v is not None}
    if not values.get("name"):
        raise UserError("--name is required, e.g. crmkit customer add --name 'Li Na'")
    _check_owner(crm, values.get("owner"))
    values["attributes"] = p.key_values(attrs_, "--attr")
    values["consents"] = dict.fromkeys(consents, True)
    added = crm.customers.add(values)
    external = f" (external id {added.external_id})" if added.external_id else ""
    click.echo(f"added customer {added.id}{external}: {added.name}")


@customer.command("list")
@click.option("--text", default=None, help="Text in the name, e-mail, phone or external id.")
@click.option("--status", default=None, help=f"One of: {', '.join(CUSTOMER_STATUSES)}.")
@click.option("--owner", default=None, help="Username of the owning staff member.")
@click.option("--region", default=None, help="Region.")
@click.option("--kind", default=None, help=f"One of: {', '.join(CUSTOMER_KINDS)}.")
@click.option("--industry", default=None, help="Industry.")
@click.option("--consent", default=None, metavar="PURPOSE", help="Only customers who consented.")
@click.option(
    "--attr", "attrs_", multiple=True, metavar="KEY=VALUE",
    help="Custom attribute equals VALUE (repeatable; typed when declared).",
)  # fmt: skip
@p.paging
@format_option()
@pass_crm
def customer_list(
    crm: Any,
    attrs_: tuple[str, ...],
    limit: int,
    offset: int | None,
    page: int | None,
    fmt: str,
    **filters: Any,
) -> None:
    """List customers, filtered and paged, oldest first."""
    p.choice(filters["status"], "--status", CUSTOMER_STATUSES)
    p.choice(filters["kind"], "--kind", CUSTOMER_KINDS)
    attributes = p.key_values(attrs_, "--attr")
    size, start = p.window(limit, offset, page)
    found = crm.customers.list(limit=size, offset=start, attributes=attributes, **filters)
    if fmt == "csv":
        rows, columns = _flat_rows(found)
        emit(rows, fmt, columns)
        return
    p.emit_page([customer_row(c) for c in found], fmt, _TABLE_COLUMNS, size, start)


@customer.command("show")
@click.argument("ref", metavar="CUSTOMER")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text",
    show_default=True, help="text, json, or html (the customer 360 page).",
)  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write here.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Interactions and orders shown, newest first.")  # fmt: skip
@pass_crm
def customer_show(crm: Any, ref: str, fmt: str, output: str | None, limit: int) -> None:
    """Show a customer (id or external id): the 360 view as text, JSON or an HTML page."""
    from crmkit.cli import page360

    view = crm.customers.view(p.customer(crm, ref).id, limit=limit)
    text = {"text": page360.text, "json": page360.as_json, "html": page360.html}[fmt](crm, view)
    if output is None:
        click.echo(text)
        return
    _write(output, text)
    click.echo(f"wrote {output}")


@customer.command("edit")
@click.argument("ref", metavar="CUSTOMER")
@_profile_options
@click.option("--unset-attr", multiple=True, metavar="KEY", help="Remove a custom attribute.")
@pass_crm
def customer_edit(
    crm: Any, ref: str, attrs_: tuple[str, ...], unset_attr: tuple[str, ...], **fields: Any
) -> None:
    """Change a customer's profile or attributes; an empty value clears a field."""
    target = p.customer(crm, ref)
    changes: dict[str, Any] = {k: (v or None) for k, v in fields.items() if v is not None}
    attributes: dict[str, Any] = dict(p.key_values(attrs_, "--attr"))
    for key in unset_attr:
        if key not in target.attributes:
            raise UserError(f"customer {target.id} has no attribute {key!r} to unset")
        attributes[key] = None
    if not changes and not attributes:
        raise UserError("nothing to change; give at least one option (see --help)")
    _check_owner(crm, changes.get("owner"))
    after = crm.customers.update(target.id, attributes=attributes, **changes)
    click.echo(f"updated customer {after.id}: {after.name}")


@customer.command("consent")
@click.argument("ref", metavar="CUSTOMER")
@click.argument("purpose", required=False)
@click.option("--grant/--withdraw", default=None, help="Give (default) or withdraw consent.")
@click.option("--source", default=None, help="Where it was given, e.g. 'web form'.")
@click.option("--staff", default=None, help="Username of the staff member recording it.")
@click.option(
    "--history", is_flag=True,
    help="List every grant and withdrawal (of PURPOSE, or of all), oldest first.",
)  # fmt: skip
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
    show_default=True, help="Output format of --history.",
)  # fmt: skip
@pass_crm
def customer_consent(
    crm: Any,
    ref: str,
    purpose: str | None,
    grant: bool | None,
    source: str | None,
    staff: str | None,
    history: bool,
    fmt: str,
) -> None:
    """Record consent for PURPOSE (e.g. marketing, profiling), or its withdrawal.

    Every change is kept: --history lists them (purpose, given or withdrawn, when, source,
    who); the customer's current answer per purpose is the latest.
    """
    target = p.customer(crm, ref)
    if history:
        if grant is not None or source is not None or staff is not None:
            raise UserError(
                "--history lists the changes; leave out --grant/--withdraw, --source and --staff"
            )
        changes = crm.customers.consent_history(target.id, purpose=purpose)
        rows = [
            {
                "changed_at": crm.local_time(c.changed_at),
                "purpose": c.purpose,
                "granted": c.granted if fmt == "json" else ("given" if c.granted else "withdrawn"),
                "source": c.source,
                "actor": c.actor,
            }
            for c in changes
        ]
        emit(rows, fmt, ["changed_at", "purpose", "granted", "source", "actor"])
        return
    if not purpose:
        raise UserError(
            "give the PURPOSE, e.g. 'crmkit customer consent 42 marketing --withdraw', "
            "or --history to list the changes"
        )
    _check_owner(crm, staff)
    granted = True if grant is None else grant
    crm.customers.set_consent(target.id, purpose, granted, source=source, actor=staff)
    click.echo(f"customer {target.id}: consent to {purpose} {'given' if granted else 'withdrawn'}")


@customer.command("export")
@click.argument("ref", metavar="CUSTOMER")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), default=None,
    help="JSON file to write (default: print it).",
)  # fmt: skip
@pass_crm
def customer_export(crm: Any, ref: str, output: str | None) -> None:
    """Everything held on a customer as JSON; each plugin's part is under "plugins", by name."""
    crm.permissions.require(crm.actor, "customers.export")  # 403 before any look-up
    data = crm.customers.export(p.customer(crm, ref).id)
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if output is None:
        click.echo(text)
        return
    _write(output, text + "\n")
    click.echo(f"wrote {output}")


@customer.command("erase")
@click.argument("ref", metavar="CUSTOMER")
@click.option("--yes", is_flag=True, help="Confirm: the erasure cannot be undone.")
@pass_crm
def customer_erase(crm: Any, ref: str, yes: bool) -> None:
    """Erase a customer's personal data everywhere (orders stay, anonymised).

    Installed plugins that are not enabled but hold data in the database erase their part
    too; while one of them cannot be loaded the erasure is refused and nothing changes.
    Erasing an erased customer runs every erase again, completing a partial erasure.
    """
    from crmkit.core import personal

    crm.permissions.require(crm.actor, "customers.erase")  # 403 before any look-up
    target = p.customer(crm, ref)
    if target.erased_at is None and not yes:
        raise UserError(
            f"erasing customer {target.id} ({target.name}) cannot be undone; "
            "export it first if needed, then add --yes"
        )
    done = personal.erase(crm, target.id)
    if done.again:
        click.echo(
            f"customer {target.id} was already erased on {target.erased_at:%Y-%m-%d}; erased "
            "again to complete it: the core's and every plugin's erasure ran again"
        )
    else:
        click.echo(f"erased customer {target.id}")
    if done.plugins:
        click.echo(f"  plugins that erased their part: {', '.join(done.plugins)}")
    if done.loaded:
        click.echo(f"  loaded for the erasure (installed, not enabled): {', '.join(done.loaded)}")


@cli.group(cls=p.RecordGroup)
def contact() -> None:
    """Contact persons of organisation customers."""


@contact.command("add")
@click.argument("ref", metavar="CUSTOMER")
@click.option("--name", required=True, help="The contact's name.")
@click.option("--role", default=None, help="Role, e.g. purchasing manager.")
@click.option("--email", default=None, help="E-mail address.")
@click.option("--phone", default=None, help="Phone number.")
@pass_crm
def contact_add(crm: Any, ref: str, name: str, **fields: Any) -> None:
    """Add a contact person to an organisation customer."""
    added = crm.customers.add_contact(p.customer(crm, ref).id, name, **fields)
    click.echo(f"added contact {added.id} to customer {added.customer_id}: {added.name}")


@contact.command("list")
@click.argument("ref", metavar="CUSTOMER")
@format_option()
@pass_crm
def contact_list(crm: Any, ref: str, fmt: str) -> None:
    """List an organisation's contact persons."""
    found = crm.customers.contacts(p.customer(crm, ref).id)
    emit([jsonable(c) for c in found], fmt, ["id", "customer_id", "name", "role", "email", "phone"])


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
