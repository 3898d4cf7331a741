"""Hook implementations of crmkit-hotel-rooms: light wiring.

This module is imported whenever the plugin is enabled, ``crmkit --help`` included, so it
imports no database code: each hook imports the service (and SQLAlchemy) when it runs, and
the ``rooms`` commands are listed by name until one of them runs (``lazy_command``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import crmkit
import crmkit.plugin as ck

CRMKIT_API = ">=1.4,<2"  # lazy_command (1.4); permissions, audit and routes (1.3)
CRMKIT_NAME = "hotel_rooms"  # also when registered as an object (tests, scripts)
CRMKIT_USES = ("loyalty",)  # adds the `nights` earn rule when loyalty is enabled

HERE = Path(__file__).parent

DEFAULTS: dict[str, Any] = {
    "floors": ["low", "middle", "high"],
    "pillows": ["soft", "medium", "firm", "hypoallergenic"],
    "beds": ["double", "king", "twin"],
    "room_category": "room",
}


def _validate(values: dict[str, Any]) -> None:
    for key in ("floors", "pillows", "beds"):
        choices = values[key]
        if not choices or not all(isinstance(c, str) and c for c in choices):
            raise ValueError(f"{key} must be a non-empty list of names")
    if not isinstance(values["room_category"], str) or not values["room_category"]:
        raise ValueError("room_category must be the order line category of a room night")


@crmkit.hookimpl
def crmkit_register_settings() -> crmkit.SettingsSpec:
    return crmkit.SettingsSpec("hotel_rooms", dict(DEFAULTS), _validate)


@crmkit.hookimpl
def crmkit_register_migrations() -> str:
    return str(HERE / "migrations" / "versions")


@crmkit.hookimpl
def crmkit_register_template_dirs() -> list[str]:
    return [str(HERE / "templates")]


@crmkit.hookimpl
def crmkit_register_permissions() -> tuple[Any, ...]:
    """hotel_rooms.read and hotel_rooms.write (see :mod:`crmkit_hotel_rooms.access`)."""
    from crmkit_hotel_rooms.access import PERMISSIONS

    return PERMISSIONS


@crmkit.hookimpl
def crmkit_register_routes() -> list[Any]:
    """GET /guests/{id} and PATCH /guests/{id}/preferences (see :mod:`.api`)."""
    from crmkit_hotel_rooms.api import routes

    return routes()


@crmkit.hookimpl
def crmkit_register_commands(cli: Any) -> None:
    help = "Guests' room preferences and stays."
    cli.add_command(ck.lazy_command("rooms", "crmkit_hotel_rooms.cli:rooms", help))


@crmkit.hookimpl
def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section | None:
    from crmkit_hotel_rooms import service

    try:
        found = service.profile(crm, customer.id)
    except ck.Forbidden:  # a role without hotel_rooms.read sees no room preferences
        return None
    if found is None:
        return None
    return crmkit.Section(
        title="Room preferences",
        data={**found, "stays": service.stays(crm, customer.id)},
        template="hotel_rooms/section.html",
        name="hotel_rooms",
        order=20,
    )


@crmkit.hookimpl
def crmkit_export_personal_data(ctx: Any, customer: Any) -> dict[str, Any] | None:
    from sqlalchemy import select

    from crmkit_hotel_rooms import service
    from crmkit_hotel_rooms.tables import preferences

    row = ctx.connection.execute(
        select(preferences).where(preferences.c.customer_id == customer.id)
    ).first()
    if row is None:
        return None
    return {"room_preferences": {k: getattr(row, k) for k in service.FIELDS}}


@crmkit.hookimpl
def crmkit_erase_personal_data(ctx: Any, customer: Any) -> None:
    from sqlalchemy import delete

    from crmkit_hotel_rooms.tables import preferences

    ctx.connection.execute(delete(preferences).where(preferences.c.customer_id == customer.id))


@crmkit.hookimpl(optionalhook=True)
def crmkit_loyalty_register_earn_rule_types() -> dict[str, Any]:
    from crmkit_hotel_rooms import service

    return {"nights": service.NightsRule.from_dict}
