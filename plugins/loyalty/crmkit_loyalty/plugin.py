"""Hook implementations of the loyalty plugin, and the hooks it offers other plugins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import crmkit
import crmkit.plugin as ck
from crmkit_loyalty import hookspecs

if TYPE_CHECKING:
    from crmkit_loyalty.service import LoyaltyService

# permissions, audit, routes (1.3), crmkit.plugin (1.2), StoredOrders.ids (1.1)
CRMKIT_API = ">=1.8,<2"  # ctx.before_next_write (1.8), ctx.before_commit (1.5), lazy_command (1.4)

HERE = Path(__file__).parent
EXAMPLES = HERE / "examples"

DEFAULTS: dict[str, Any] = {
    # the program CLI commands use when --program is not given ("" = the only enabled one)
    "default_program": "",
    # the customer 360 section shows the points that expire within this many days
    "expiring_soon_days": 60,
}


def loyalty(crm: Any) -> LoyaltyService:
    """The CRM's loyalty service. The service (and SQLAlchemy) is imported on first use,
    so loading the plugin for ``crmkit --help`` stays cheap."""
    from crmkit_loyalty.service import loyalty as service

    return service(crm)


def _validate(values: dict[str, Any]) -> None:
    days = values["expiring_soon_days"]
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise ValueError(f"expiring_soon_days must be a whole number of days >= 0, not {days!r}")
    if not isinstance(values["default_program"], str):
        raise ValueError("default_program must be a program name (text)")


@crmkit.hookimpl
def crmkit_register_hookspecs() -> ModuleType:
    return hookspecs


@crmkit.hookimpl
def crmkit_register_migrations() -> str:
    return str(HERE / "migrations" / "versions")


@crmkit.hookimpl
def crmkit_register_settings() -> crmkit.SettingsSpec:
    return crmkit.SettingsSpec("loyalty", dict(DEFAULTS), _validate)


@crmkit.hookimpl
def crmkit_register_permissions() -> list[ck.PermissionSpec]:
    from crmkit_loyalty import access

    return list(access.PERMISSIONS)


@crmkit.hookimpl
def crmkit_register_routes() -> list[ck.Route]:
    from crmkit_loyalty.api import routes

    return routes()


@crmkit.hookimpl
def crmkit_register_template_dirs() -> list[str]:
    return [str(HERE / "templates")]


@crmkit.hookimpl
def crmkit_register_commands(cli: Any) -> None:
    # imported when a loyalty command runs, not for ``crmkit --help``
    help = "Loyalty programs: points, tiers, rewards, expiry."
    cli.add_command(ck.lazy_command("loyalty", "crmkit_loyalty.cli:loyalty_group", help))


@crmkit.hookimpl
def crmkit_after_orders_created(ctx: Any, orders: Sequence[Any]) -> None:
    loyalty(ctx.crm).earn_orders(ctx, orders)


@crmkit.hookimpl
def crmkit_after_orders_updated(ctx: Any, orders: Sequence[Any], previous: Sequence[Any]) -> None:
    service = loyalty(ctx.crm)
    now_paid = [o for o, p in zip(orders, previous, strict=True) if o.status == "paid" != p.status]
    undone = [
        o
        for o, p in zip(orders, previous, strict=True)
        if p.status == "paid" and o.status in ("refunded", "cancelled")
    ]
    if now_paid:
        service.earn_orders(ctx, now_paid, replay=True)
    if undone:
        service.reverse_orders(ctx, undone)


@crmkit.hookimpl
def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section | None:
    service = loyalty(crm)
    try:
        memberships = service.memberships(customer.id)
    except (ck.Forbidden, ck.NotFound):  # the reader may see the customer, not loyalty
        return None
    if not memberships:
        return None
    days = crm.settings["loyalty"]["expiring_soon_days"]
    items = []
    for m in memberships:
        program = service.program(m.program)
        tier = program.tier(m.tier)
        items.append(
            {
                "program": m.program,
                "program_title": program.title,
                "tier": m.tier,
                "discount": tier.discount if tier else None,
                "balance": m.balance,
                "expiring_soon": service.expiring(customer.id, days, program=m.program),
                "expiring_within_days": days,
                "member_since": m.enrolled_at,
            }
        )
    return crmkit.Section(
        title="Loyalty",
        data={"memberships": items},
        template="loyalty/section.html",
        name="loyalty",
    )


@crmkit.hookimpl
def crmkit_export_personal_data(ctx: Any, customer: Any) -> dict[str, Any] | None:
    return loyalty(ctx.crm).export(ctx.connection, customer.id)


@crmkit.hookimpl
def crmkit_erase_personal_data(ctx: Any, customer: Any) -> None:
    # figures stay (balances, points); who referred whom and free-text reasons go
    loyalty(ctx.crm).erase(ctx.connection, customer.id)


@crmkit.hookimpl
def crmkit_merge_customers(ctx: Any, kept: Any, merged: Any) -> dict[str, Any] | None:
    return loyalty(ctx.crm).merge_customers(ctx, kept.id, merged.id)


@crmkit.hookimpl
def crmkit_catch_up(ctx: Any, since: dt.datetime | None) -> str | None:
    return loyalty(ctx.crm).catch_up(ctx, since)


@crmkit.hookimpl
def crmkit_generate_demo_data(crm: Any, rng: Any) -> str | None:
    """A retail club (three tiers, a catalogue); enrol demo customers, earn on their orders."""
    from sqlalchemy import func, select

    service = loyalty(crm)
    program = service.load_program_file(EXAMPLES / "retail_club.toml")
    customers = [c.id for c in crm.customers.iterate()]
    if not customers:
        return f"loyalty: program {program.name!r} loaded (no customers to enrol)"
    chosen = sorted(rng.sample(customers, max(1, int(len(customers) * 0.7))))
    now = dt.datetime.now(dt.UTC)
    with crm.reading() as connection:
        first = connection.scalar(select(func.min(ck.orders.c.occurred_at))) or now
    service.enrol_many(chosen, program=program.name, at=min(first, now))
    service.earn_existing(program=program.name, customer_ids=chosen)
    changes = service.review_tiers(now, program=program.name)
    return (
        f"loyalty: program {program.name!r} with {len(program.tiers)} tiers and "
        f"{len(program.rewards)} rewards; {len(chosen)} members enrolled, "
        f"{len(changes)} tier changes at review"
    )
