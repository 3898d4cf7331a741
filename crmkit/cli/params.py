"""Shared pieces of the record commands: one-line usage errors, paging, value parsing."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import click

from crmkit.cli import UserError
from crmkit.cli.output import emit
from crmkit.core.entities import Customer, to_money
from crmkit.errors import ValidationError

_MONEY_MAX = Decimal(10) ** 14


class RecordGroup(click.Group):
    """A command group whose usage mistakes (bad option value, unknown option) are one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            raise UserError(f"{exc.format_message()} (see '{where} --help')") from None


def paging(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--limit``, ``--offset`` and ``--page``; the command receives ``limit`` and ``offset``."""
    command = click.option(
        "--page", type=click.IntRange(min=1), default=None,
        help="Page number (1 is the first), LIMIT rows each; instead of --offset.",
    )(command)  # fmt: skip
    command = click.option(
        "--offset", type=click.IntRange(min=0), default=None, help="Rows to skip first."
    )(command)
    command = click.option(
        "--limit", type=click.IntRange(min=0), default=50, show_default=True,
        help="Rows to show; 0 shows every row.",
    )(command)  # fmt: skip
    return command


def time_range(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--since`` (inclusive) and ``--until`` (exclusive); read them with :func:`moment`."""
    command = click.option("--until", default=None, help="Before this date or time.")(command)
    return click.option("--since", default=None, help="From this date or time (inclusive).")(
        command
    )


def window(limit: int, offset: int | None, page: int | None) -> tuple[int | None, int]:
    """(limit or None for all, offset) from the paging options."""
    if offset is not None and page is not None:
        raise UserError("give --offset or --page, not both")
    if page is not None:
        if limit == 0:
            raise UserError("--page needs a --limit above 0 (the page size)")
        offset = (page - 1) * limit
    return (limit or None), (offset or 0)


def emit_page(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    columns: Sequence[str] | None,
    limit: int | None,
    offset: int,
) -> None:
    """Print rows; for a table, say on stderr when a next page may exist."""
    emit(rows, fmt, columns)
    if fmt == "table" and limit is not None and len(rows) == limit:
        page = offset // limit + 2 if offset % limit == 0 else None
        more = f"--page {page}" if page else f"--offset {offset + limit}"
        click.echo(f"(rows {offset + 1}-{offset + len(rows)}; more may follow: {more})", err=True)


def key_values(pairs: Sequence[str], option: str) -> dict[str, str]:
    """``key=value`` strings (as given to ``--attr`` or ``--field``) as a dict."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{option} {pair!r} is not key=value, e.g. {option} vip=true")
        result[key] = value.strip()
    return result


def moment(text: str | None, option: str, timezone: str) -> dt.datetime | None:
    """An ISO date or datetime; without an offset it is in the configured time zone."""
    if text is None:
        return None
    value = text.strip()
    zone = zoneinfo.ZoneInfo(timezone)
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime(day.year, day.month, day.day, tzinfo=zone)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UserError(
            f"{option} {text!r} is not an ISO date or datetime such as 2026-03-01T14:30"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def day(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"{option} {text!r} is not a date such as 2026-03-01") from None


def money(text: str | None, option: str) -> Decimal | None:
    """Decimal money as NUMERIC(18, 4) stores it: at most 4 places, 14 digits before."""
    if text is None:
        return None
    try:
        amount = to_money(text, option)
    except ValidationError as exc:
        raise UserError(str(exc)) from None
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4 and amount != amount.quantize(Decimal("0.0001")):
        raise UserError(f"{option} {text} has more than 4 decimal places")
    if abs(amount) >= _MONEY_MAX:
        raise UserError(f"{option} {text} is too large (at most 14 digits before the point)")
    return amount


def choice(value: str | None, option: str, allowed: Sequence[str]) -> str | None:
    """Check a filter value against its allowed values (one-line error naming them)."""
    if value is not None and value not in allowed:
        raise UserError(f"{option} {value!r} is not valid; use one of: {', '.join(allowed)}")
    return value


def customer(crm: Any, ref: str) -> Customer:
    """A customer by numeric id or external id."""
    return crm.customers.resolve(ref)


def local(crm: Any, value: dt.datetime | None) -> str:
    """A stored (UTC) time in the configured zone, for people to read."""
    return "" if value is None else crm.local_time(value).strftime("%Y-%m-%d %H:%M")
