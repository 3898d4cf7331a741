"""Shared pieces of the record commands: one-line usage errors, paging, value parsing."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import zoneinfo
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import click

from crmkit.cli import UserError
from crmkit.cli.output import emit
from crmkit.core.entities import Customer, to_money
from crmkit.errors import CrmError, ValidationError


@functools.cache
def _money_limits() -> tuple[Any, ...]:
    """What the money columns hold (NUMERIC(18, 4)), read from the table definition."""
    # SQLAlchemy is imported when an amount is parsed, not when a command module loads
    from crmkit.core import tables as t
    from crmkit.core.bulk import money_limits

    return money_limits(t.orders.c.amount)


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
    """Decimal money in the one money format (``1234.50``: a dot before the decimals, no
    thousands separators; ``1,50`` is refused), as NUMERIC(18, 4) stores it: at most 4
    places, 14 digits before the point."""
    if text is None:
        return None
    try:
        amount = to_money(text, option)
    except ValidationError as exc:
        raise UserError(str(exc)) from None
    from crmkit.core.bulk import money_problem

    problem = money_problem(amount, *_money_limits())
    if problem is not None:
        raise UserError(f"{option} {problem}")
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


# --------------------------------------------------------------------------
# click parameter types for plugin commands (exported by crmkit.plugin).
# Each converts on parse, so a bad value is one usage line naming the option.
# --------------------------------------------------------------------------


class DateType(click.ParamType):
    """A calendar date such as ``2026-03-01``; the command receives a :class:`datetime.date`."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a date such as 2026-03-01", param, ctx)


class DateTimeType(click.ParamType):
    """An ISO date or datetime; the command receives a timezone-aware :class:`datetime.datetime`.

    A value without an offset is in the configured ``timezone`` (read from the
    run's crmkit.toml); a date alone means its midnight there.
    """

    name = "datetime"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value
        zone = "UTC"
        state = ctx.find_object(_cli_state()) if ctx is not None else None
        if state is not None:
            # a configuration error surfaces when the command opens the CRM
            with contextlib.suppress(CrmError):
                zone = state.load_config().timezone
        try:
            return moment(str(value), "", zone)
        except UserError:
            self.fail(
                f"{value!r} is not an ISO date or datetime such as 2026-03-01T14:30", param, ctx
            )


class AmountType(click.ParamType):
    """A decimal amount of money (``199.00``); the command receives a :class:`~decimal.Decimal`.

    At most 4 decimal places and 14 digits before the point (NUMERIC(18, 4)).
    Never a float.
    """

    name = "amount"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Decimal):
            return value
        try:
            return money(str(value), "amount")
        except UserError as exc:
            self.fail(str(exc.message).removeprefix("amount "), param, ctx)


class IdType(click.ParamType):
    """A record id: a whole number >= 1; the command receives an :class:`int`."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        text = str(value).strip()
        if not text.isdigit() or int(text) < 1:
            self.fail(f"{value!r} is not a record id (a whole number from 1)", param, ctx)
        return int(text)


class CustomerRefType(click.ParamType):
    """A customer reference: a numeric id or an external id, passed on as text.

    Resolve it inside the command with ``crm.customers.resolve(ref)``, which
    raises :class:`crmkit.NotFound` naming the reference.
    """

    name = "customer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        if not text:
            self.fail("a customer reference (id or external id) cannot be empty", param, ctx)
        return text


def _cli_state() -> type:
    from crmkit.cli import CliState  # the root module imports this one

    return CliState


DATE = DateType()
DATETIME = DateTimeType()
AMOUNT = AmountType()
ID = IdType()
CUSTOMER = CustomerRefType()
