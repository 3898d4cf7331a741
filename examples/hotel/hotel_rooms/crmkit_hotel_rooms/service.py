"""Room preferences, stays, and the ``nights`` earn rule for the loyalty plugin.

Permissions (:mod:`crmkit_hotel_rooms.access`): ``hotel_rooms.read`` to see a guest's
preferences and stays, ``hotel_rooms.write`` to record preferences; both scoped to the
customers a role works on (front desk staff hold the service roles: every guest). Stays are
core orders: recording them needs the core's ``orders.write``. Every change of preferences
records a ``room_preferences.update`` audit entry with the fields before and after.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import zoneinfo
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy import and_, func, insert, select, update

import crmkit
import crmkit.plugin as ck
from crmkit.plugin import (
    BulkResult,
    PreconditionFailed,
    Resource,
    ValidationError,
    to_money,
)
from crmkit_hotel_rooms.access import READ, WRITE
from crmkit_hotel_rooms.tables import preferences

FIELDS = ("floor", "pillow", "bed", "quiet", "note")
CHECK_IN = dt.time(15, 0)
CHECK_OUT = dt.time(11, 0)


def settings(crm: crmkit.CRM) -> dict[str, Any]:
    return crm.settings["hotel_rooms"]


def _choice(crm: crmkit.CRM, field: str, value: str | None, key: str) -> str | None:
    allowed = settings(crm)[key]
    if value is not None and value not in allowed:
        raise ValidationError(
            f"{field} {value!r} is not offered; use one of: {', '.join(allowed)} "
            f"(the {key} setting of [hotel_rooms] in crmkit.toml)",
            field=field,
        )
    return value


def prefer(
    crm: crmkit.CRM,
    customer_id: int,
    *,
    floor: str | None = None,
    pillow: str | None = None,
    bed: str | None = None,
    quiet: bool | None = None,
    note: str | None = None,
    staff: str | None = None,
    expected: str | None = None,
) -> dict[str, Any]:
    """Set a guest's room preferences; only the values given change. Returns the profile.

    ``expected``: the profile's :func:`etag` the caller read (HTTP ``If-Match``); when it
    changed since, :class:`PreconditionFailed` and nothing is written."""
    changes = {
        "floor": _choice(crm, "floor", floor, "floors"),
        "pillow": _choice(crm, "pillow", pillow, "pillows"),
        "bed": _choice(crm, "bed", bed, "beds"),
        "quiet": quiet,
        "note": note.strip() if note is not None else None,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise ValidationError(
            "give at least one preference: --floor, --pillow, --bed, --quiet or --note"
        )
    crm.authorise(WRITE, Resource.customer(customer_id))
    with crm.transaction(actor=staff) as ctx:
        crm.customers.get(customer_id)  # NotFound names the customer
        if staff:
            crm.staff.get(staff)
        query = select(preferences).where(preferences.c.customer_id == customer_id)
        row = ctx.connection.execute(query.with_for_update()).first()
        before = {k: getattr(row, k) for k in FIELDS} if row is not None else {}
        if expected is not None and expected != etag(_profile(row)):
            raise PreconditionFailed(
                "the guest's room preferences changed since you read them; read them again"
            )
        values = {**changes, "updated_by": ctx.actor.label, "updated_at": ctx.now}
        done = ctx.connection.execute(
            update(preferences).where(preferences.c.customer_id == customer_id).values(values)
        )
        if not done.rowcount:
            ctx.connection.execute(insert(preferences).values(customer_id=customer_id, **values))
        ctx.audit("room_preferences.update", "room_preferences", customer_id,
                  customer_id=customer_id, before=before, after={**before, **changes})  # fmt: skip
    return profile(crm, customer_id) or {}


def _profile(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: getattr(row, k) for k in (*FIELDS, "updated_by", "updated_at")}


def etag(found: dict[str, Any] | None) -> str:
    """The ETag of a profile: the first 16 hex of the SHA-256 of its canonical JSON."""
    text = json.dumps(ck.jsonable(found), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def profile(crm: crmkit.CRM, customer_id: int) -> dict[str, Any] | None:
    """A guest's room preferences, or None when none were recorded."""
    crm.authorise(READ, Resource.customer(customer_id))
    with crm.reading() as connection:
        row = connection.execute(
            select(preferences).where(preferences.c.customer_id == customer_id)
        ).first()
    return _profile(row)


def stay_order(
    crm: crmkit.CRM,
    customer_id: int,
    *,
    arrive: dt.date,
    nights: int,
    rate: Decimal | str,
    hotel: str | None = None,
    external_id: str | None = None,
) -> dict[str, Any]:
    """The core order of a stay, paid at check-out: one line of ``nights`` room nights."""
    if isinstance(nights, bool) or not isinstance(nights, int) or nights < 1:
        raise ValidationError(f"nights must be a whole number of at least 1, not {nights!r}")
    price = to_money(rate, "rate")
    if price < 0:
        raise ValidationError(f"rate must not be negative, not {price}", field="rate")
    zone = zoneinfo.ZoneInfo(crm.config.timezone)
    leave = dt.datetime.combine(arrive + dt.timedelta(days=nights), CHECK_OUT, tzinfo=zone)
    return {
        "customer_id": customer_id,
        "occurred_at": leave,
        "amount": price * nights,
        "external_id": external_id,
        "channel": "visit",
        "lines": [
            {
                "product": f"Room night, {hotel}" if hotel else "Room night",
                "quantity": nights,
                "price": price,
                "category": settings(crm)["room_category"],
            }
        ],
    }


def record_stay(crm: crmkit.CRM, customer_id: int, **stay: Any) -> crmkit.Order:
    """Record one stay (see :func:`stay_order` for the arguments)."""
    return crm.orders.add(stay_order(crm, customer_id, **stay))


def record_stays(crm: crmkit.CRM, path: str | Path) -> BulkResult:
    """Import stays from a CSV file (guest, arrive, nights, rate, hotel, reservation).

    Every row is checked first and an error names the file and line; then all stays are
    stored in one transaction (a reservation already stored is skipped).
    """
    path = Path(path)
    orders = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"guest", "arrive", "nights", "rate"} - set(reader.fieldnames or ())
        if missing:
            raise ValidationError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                guest = crm.customers.resolve(row["guest"].strip())
                arrive = dt.date.fromisoformat(row["arrive"].strip())
                nights = int(row["nights"])
                orders.append(
                    stay_order(
                        crm,
                        guest.id,
                        arrive=arrive,
                        nights=nights,
                        rate=row["rate"],
                        hotel=row.get("hotel") or None,
                        external_id=row.get("reservation") or None,
                    )  # fmt: skip
                )
            except (crmkit.CrmError, ValueError) as exc:
                raise ValidationError(f"{path}, line {line}: {exc}") from None
    with crm.transaction():
        return crm.orders.add_many(orders)


def stays(crm: crmkit.CRM, customer_id: int) -> dict[str, Any]:
    """Number of paid stays and room nights of a guest."""
    crm.authorise(READ, Resource.customer(customer_id))
    category = settings(crm)["room_category"]
    with crm.reading() as connection:
        row = connection.execute(
            select(func.count(func.distinct(ck.orders.c.id)), func.sum(ck.order_lines.c.quantity))
            .select_from(ck.orders.join(ck.order_lines))
            .where(
                and_(
                    ck.orders.c.customer_id == customer_id,
                    ck.orders.c.status == "paid",
                    ck.order_lines.c.category == category,
                )
            )
        ).one()
    return {"count": row[0], "nights": int(row[1] or 0)}


@attrs.frozen
class NightsRule:
    """Loyalty earn rule: points per room night on the order's lines of ``categories``."""

    points_per_night: int = 1
    categories: tuple[str, ...] = ("room",)
    name: str = "nights"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NightsRule:
        unknown = set(data) - {"type", "name", "points_per_night", "categories"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; known: points_per_night, categories")
        per = data.get("points_per_night", 1)
        if isinstance(per, bool) or not isinstance(per, int) or per < 1:
            raise ValueError(f"points_per_night must be a whole number >= 1, not {per!r}")
        categories = data.get("categories", ["room"])
        if isinstance(categories, str) or not all(isinstance(c, str) for c in categories):
            raise ValueError(f"categories must be a list of names, not {categories!r}")
        return cls(per, tuple(categories), str(data.get("name", "nights")))

    def bonus(self, order: Any, member: Any) -> int:
        nights = sum(
            (line.quantity for line in order.lines if line.category in self.categories),
            Decimal(0),
        )
        return int(nights) * self.points_per_night
