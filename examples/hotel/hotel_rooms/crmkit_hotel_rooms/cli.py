"""``crmkit rooms ...``: guests' room preferences and stays."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from crmkit.plugin import emit, format_option, pass_crm
from crmkit_hotel_rooms import service


@click.group("rooms")
def rooms() -> None:
    """Guests' room preferences and stays."""


@rooms.command("prefer")
@click.argument("customer")
@click.option("--floor", help="low, middle or high (setting 'floors').")
@click.option("--pillow", help="soft, medium, firm or hypoallergenic (setting 'pillows').")
@click.option("--bed", help="double, king or twin (setting 'beds').")
@click.option("--quiet/--not-quiet", default=None, help="A room away from lifts and the street.")
@click.option("--note", help="Anything else, e.g. 'allergic to feathers'.")
@click.option("--staff", help="Username of the staff member recording it.")
@pass_crm
def prefer(crm: Any, customer: str, floor: str | None, pillow: str | None, bed: str | None,
           quiet: bool | None, note: str | None, staff: str | None) -> None:  # fmt: skip
    """Record CUSTOMER's (id or external id) room preferences; other values stay."""
    guest = crm.customers.resolve(customer)
    found = service.prefer(crm, guest.id, floor=floor, pillow=pillow, bed=bed, quiet=quiet,
                           note=note, staff=staff)  # fmt: skip
    shown = ", ".join(
        f"{k} {({True: 'yes', False: 'no'}).get(v, v)}"
        for k in service.FIELDS
        if (v := found[k]) not in (None, "")
    )
    click.echo(f"room preferences of {guest.name}: {shown}")


@rooms.command("show")
@click.argument("customer")
@format_option()
@pass_crm
def show(crm: Any, customer: str, fmt: str) -> None:
    """CUSTOMER's room preferences and stays."""
    guest = crm.customers.resolve(customer)
    found = service.profile(crm, guest.id) or dict.fromkeys(service.FIELDS)
    stays = service.stays(crm, guest.id)
    row = {"customer": guest.name, **{k: found[k] for k in service.FIELDS}}
    emit([{**row, "stays": stays["count"], "nights": stays["nights"]}], fmt)


@rooms.command("stay")
@click.argument("customer")
@click.option("--arrive", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Arrival date.")
@click.option("--nights", required=True, type=int)
@click.option("--rate", required=True, help="Price of one night, e.g. 120.00.")
@click.option("--hotel", help="Which hotel of the group.")
@click.option("--id", "external_id", help="Reservation number (a repeated one is refused).")
@pass_crm
def stay(crm: Any, customer: str, arrive: dt.datetime, nights: int, rate: str,
         hotel: str | None, external_id: str | None) -> None:  # fmt: skip
    """Record a stay of CUSTOMER: an order paid at check-out with NIGHTS room nights."""
    guest = crm.customers.resolve(customer)
    order = service.record_stay(crm, guest.id, arrive=arrive.date(), nights=nights, rate=rate,
                                hotel=hotel, external_id=external_id)  # fmt: skip
    click.echo(f"stay #{order.id} of {guest.name}: {nights} night(s), {order.amount:.2f}")


@rooms.command("stays")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@pass_crm
def stays(crm: Any, file: str) -> None:
    """Import stays from a CSV FILE: guest, arrive, nights, rate, hotel, reservation."""
    result = service.record_stays(crm, file)
    click.echo(f"stays: stored {result.stored}, already present {len(result.skipped)}")
