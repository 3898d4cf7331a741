"""``crmkit staff ...``, ``crmkit interaction ...`` and ``crmkit order ...``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from crmkit.cli import UserError, cli, pass_crm
from crmkit.cli import params as p
from crmkit.cli.output import emit, format_option
from crmkit.core.entities import CHANNELS, DIRECTIONS, ORDER_STATUSES, Order, OrderLine
from crmkit.core.serialize import jsonable
from crmkit.errors import NotFound

# -- staff -----------------------------------------------------------------


@cli.group(cls=p.RecordGroup)
def staff() -> None:
    """Staff: the people who own customers and move workflows."""


@staff.command("add")
@click.argument("username")
@click.option("--name", default="", help="Full name (default: the username).")
@click.option("--email", default=None, help="E-mail address.")
@click.option(
    "--role", "roles", multiple=True,
    help="A role (repeatable or comma-separated), e.g. sales_rep, sales_manager, admin.",
)  # fmt: skip
@click.option("--department", default=None, help="Department.")
@click.option("--manager", default=None, help="Username of this person's manager.")
@pass_crm
def staff_add(crm: Any, username: str, roles: tuple[str, ...], **fields: Any) -> None:
    """Add a staff member USERNAME."""
    names = [r.strip() for item in roles for r in item.split(",") if r.strip()]
    member = crm.staff.add(username, fields.pop("name"), roles=names, **fields)
    click.echo(f"added staff member {member.username} (roles: {', '.join(member.roles) or 'none'})")


# -- interactions ----------------------------------------------------------


@cli.group(cls=p.RecordGroup)
def interaction() -> None:
    """Interactions with customers on every channel."""


@interaction.command("log")
@click.argument("ref", metavar="CUSTOMER")
@click.option("--channel", required=True, help=f"One of: {', '.join(CHANNELS)}.")
@click.option("--direction", default="inbound", show_default=True, help="inbound or outbound.")
@click.option("--subject", default="", help="One line saying what it was about.")
@click.option("--body", default="", help="Notes, the message text.")
@click.option("--staff", "staff_name", default=None, help="Username of the staff member.")
@click.option(
    "--external-id", default=None,
    help="Your system's id for it; logging the same id again is refused (idempotent).",
)  # fmt: skip
@click.option(
    "--at", "at", default=None,
    help="When (ISO date or datetime; without offset in the configured zone). Default: now.",
)  # fmt: skip
@pass_crm
def interaction_log(
    crm: Any, ref: str, at: str | None, staff_name: str | None, **fields: Any
) -> None:
    """Record an interaction with CUSTOMER (id or external id)."""
    target = p.customer(crm, ref)
    occurred_at = p.moment(at, "--at", crm.config.timezone)
    logged = crm.interactions.log(target.id, occurred_at=occurred_at, staff=staff_name, **fields)
    click.echo(f"logged interaction {logged.id} ({logged.channel}) with customer {target.id}")


@interaction.command("list")
@click.option("--customer", "ref", default=None, help="Customer id or external id.")
@click.option("--channel", default=None, help=f"One of: {', '.join(CHANNELS)}.")
@click.option("--staff", "staff_name", default=None, help="Username of the staff member.")
@click.option("--text", default=None, help="Text in the subject or body.")
@click.option("--direction", default=None, help="inbound or outbound.")
@p.time_range
@p.paging
@format_option()
@pass_crm
def interaction_list(
    crm: Any,
    ref: str | None,
    channel: str | None,
    staff_name: str | None,
    text: str | None,
    direction: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int | None,
    page: int | None,
    fmt: str,
) -> None:
    """List interactions, newest first (a customer's whole timeline, with what plugins add,
    is 'interaction timeline CUSTOMER')."""
    p.choice(channel, "--channel", CHANNELS)
    p.choice(direction, "--direction", DIRECTIONS)
    customer_id = p.customer(crm, ref).id if ref else None
    size, start = p.window(limit, offset, page)
    found = crm.interactions.list(
        customer_id=customer_id, channel=channel, staff=staff_name, text=text,
        direction=direction,
        since=p.moment(since, "--since", crm.config.timezone),
        until=p.moment(until, "--until", crm.config.timezone),
        limit=size, offset=start,
    )  # fmt: skip
    columns = ["id", "customer_id", "occurred_at", "channel", "direction", "subject", "staff"]
    if fmt != "table":
        columns.insert(6, "body")
    p.emit_page([jsonable(i) for i in found], fmt, columns, size, start)


@interaction.command("timeline")
@click.argument("ref", metavar="CUSTOMER")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True,
    help="Entries shown, newest first.",
)  # fmt: skip
@format_option()
@pass_crm
def interaction_timeline(crm: Any, ref: str, limit: int, fmt: str) -> None:
    """CUSTOMER's timeline: interactions and what plugins add (complaint replies, knowledge
    base sends ...), newest first. A plugin whose entries fail is named in a warning and left
    out. 'interaction list' lists the interaction records alone."""
    from crmkit.cli.page360 import timeline_item
    from crmkit.core import view360

    customer = p.customer(crm, ref)
    rows = [timeline_item(item) for item in view360.timeline(crm, customer, limit=limit)]
    columns = ["at", "kind", "source", "title", "channel", "direction", "staff"]
    if fmt != "table":
        columns += ["body", "id"]
    emit(rows, fmt, columns)


# -- orders ----------------------------------------------------------------


def _line(text: str) -> OrderLine:
    parts = [x.strip() for x in text.split(";")]
    if len(parts) not in (3, 4) or not parts[0]:
        raise UserError(
            f"--line {text!r} is not PRODUCT;QUANTITY;PRICE[;CATEGORY], e.g. 'Tea set;2;99.50'"
        )
    quantity = p.money(parts[1], "--line quantity")
    price = p.money(parts[2], "--line price")
    return OrderLine(
        product=parts[0],
        quantity=quantity,
        price=price,
        category=parts[3] if len(parts) == 4 and parts[3] else None,
    )


def order_row(order: Order) -> dict[str, Any]:
    row = jsonable(order)
    row["lines"] = [jsonable(line) for line in order.lines]
    return row


@cli.group(cls=p.RecordGroup)
def order() -> None:
    """Orders: add, list, change status."""


@order.command("add")
@click.argument("ref", metavar="CUSTOMER")
@click.option("--amount", required=True, help="Total amount, a decimal such as 199.00.")
@click.option(
    "--occurred-at", default=None,
    help="When (ISO date or datetime; without offset in the configured zone). Default: now.",
)  # fmt: skip
@click.option("--external-id", default=None, help="Your own order number (unique).")
@click.option("--cost", default=None, help="Cost of the goods, a decimal.")
@click.option("--currency", default=None, help="ISO code (default: the configured currency).")
@click.option("--status", default="paid", show_default=True,
              help=f"One of: {', '.join(ORDER_STATUSES)}.")  # fmt: skip
@click.option("--channel", default=None, help="Sales channel, e.g. web, store.")
@click.option(
    "--line", "lines", multiple=True, metavar="PRODUCT;QTY;PRICE[;CATEGORY]",
    help="An order line (repeatable).",
)  # fmt: skip
@pass_crm
def order_add(
    crm: Any,
    ref: str,
    amount: str,
    occurred_at: str | None,
    cost: str | None,
    currency: str | None,
    lines: tuple[str, ...],
    **fields: Any,
) -> None:
    """Add an order for CUSTOMER (id or external id)."""
    target = p.customer(crm, ref)
    if currency is not None and not (len(currency) == 3 and currency.isalpha()):
        raise UserError(f"--currency {currency!r} is not a 3-letter ISO code such as EUR")
    added = crm.orders.add(
        customer_id=target.id,
        amount=p.money(amount, "--amount"),
        cost=p.money(cost, "--cost"),
        occurred_at=p.moment(occurred_at, "--occurred-at", crm.config.timezone) or _now(),
        currency=(currency or crm.config.currency).upper(),
        lines=[_line(x) for x in lines],
        **fields,
    )
    number = added.external_id or f"#{added.id}"
    click.echo(
        f"added order {number} (id {added.id}) for customer {target.id}: "
        f"{added.amount} {added.currency} {added.status}"
    )


@order.command("list")
@click.option("--customer", "ref", default=None, help="Customer id or external id.")
@click.option("--status", default=None, help=f"One of: {', '.join(ORDER_STATUSES)}.")
@click.option(
    "--text", default=None, help="Text in the order number or the customer's name or external id."
)
@click.option("--owner", default=None, help="Orders of customers with this owner (username).")
@click.option("--region", default=None, help="Orders of customers in this region.")
@click.option("--channel", default=None, help="Sales channel the order came through.")
@p.time_range
@p.paging
@format_option()
@pass_crm
def order_list(
    crm: Any,
    ref: str | None,
    status: str | None,
    text: str | None,
    owner: str | None,
    region: str | None,
    channel: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int | None,
    page: int | None,
    fmt: str,
) -> None:
    """List orders, newest first."""
    p.choice(status, "--status", ORDER_STATUSES)
    customer_id = p.customer(crm, ref).id if ref else None
    size, start = p.window(limit, offset, page)
    found = crm.orders.list(
        customer_id=customer_id,
        status=status,
        since=p.moment(since, "--since", crm.config.timezone),
        until=p.moment(until, "--until", crm.config.timezone),
        text=text,
        owner=owner,
        region=region,
        channel=channel,
        limit=size,
        offset=start,
    )
    columns = ["id", "external_id", "customer_id", "occurred_at", "amount", "currency", "status"]
    if fmt == "csv":
        columns += ["cost", "channel"]
    p.emit_page([order_row(o) for o in found], fmt, columns, size, start)


@order.command("status")
@click.argument("ref", metavar="ORDER")
@click.argument("status")
@pass_crm
def order_status(crm: Any, ref: str, status: str) -> None:
    """Change an order's STATUS (placed, paid, refunded, cancelled); ORDER is id or number."""
    p.choice(status, "STATUS", ORDER_STATUSES)
    target = _order(crm, ref)
    before = target.status
    after = crm.orders.set_status(target.id, status)
    click.echo(f"order {after.external_id or '#' + str(after.id)}: {before} -> {after.status}")


def _order(crm: Any, ref: str) -> Order:
    """An order by external id, else by numeric id."""
    try:
        return crm.orders.get_by_external_id(ref)
    except NotFound:
        if ref.strip().isdigit():
            return crm.orders.get(int(ref))
        raise


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
