"""``crmkit loyalty ...``: programs, members, points, rewards and reports."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import click

from crmkit.plugin import emit, format_option, jsonable, pass_crm, render
from crmkit_loyalty.service import loyalty

program_option = click.option(
    "--program", "-p", default=None, help="Program name (default: the only enabled program)."
)


def _as_of(value: str | None) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date such as 2026-12-31") from None


def _datetime(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.combine(_as_of(value), dt.time(), dt.UTC)


def _entry_rows(entries: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "customer_id": e.customer_id,
            "kind": e.kind,
            "points": e.points,
            "occurred_at": e.occurred_at,
            "cause": e.reward_code or e.rule or "",
        }
        for e in entries
    ]


@click.group("loyalty")
def loyalty_group() -> None:
    """Loyalty programs: points, tiers, rewards, expiry."""


# -- programs ---------------------------------------------------------------------------


@loyalty_group.group("programs", invoke_without_command=True)
@click.pass_context
def programs(ctx: click.Context) -> None:
    """List programs (or load, show, enable, disable one)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(programs_list)


@programs.command("list")
@format_option()
@pass_crm
def programs_list(crm: Any, fmt: str = "table") -> None:
    """Stored programs with state and member counts."""
    emit(loyalty(crm).programs(), fmt, ["name", "title", "enabled", "version", "members", "source"])


@programs.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--disabled", is_flag=True, help="Store the program without enabling it.")
@pass_crm
def programs_load(crm: Any, file: str, disabled: bool) -> None:
    """Validate and store the program in FILE (TOML); replaces a program of the same name."""
    program = loyalty(crm).load_program_file(file, enabled=not disabled)
    state = "disabled" if disabled else "enabled"
    click.echo(
        f"program {program.name!r} loaded ({state}): {len(program.tiers)} tiers, "
        f"{len(program.rules)} earn rules, {len(program.rewards)} rewards"
    )


@programs.command("show")
@click.argument("name", required=False)
@pass_crm
def programs_show(crm: Any, name: str | None) -> None:
    """The stored definition of a program, as JSON."""
    program = loyalty(crm).program(name)
    click.echo(json.dumps(program.data, indent=2, ensure_ascii=False))


@programs.command("enable")
@click.argument("name")
@pass_crm
def programs_enable(crm: Any, name: str) -> None:
    """Enable a program: orders start earning in it."""
    loyalty(crm).set_enabled(name, True)
    click.echo(f"program {name!r} enabled")


@programs.command("disable")
@click.argument("name")
@pass_crm
def programs_disable(crm: Any, name: str) -> None:
    """Disable a program: no more earning; balances stay."""
    loyalty(crm).set_enabled(name, False)
    click.echo(f"program {name!r} disabled")


@loyalty_group.command("rewards")
@program_option
@format_option()
@pass_crm
def rewards(crm: Any, program: str | None, fmt: str) -> None:
    """The rewards catalogue."""
    rows = [
        {**attrs.asdict(r), "available": "unlimited" if r.available is None else r.available}
        for r in loyalty(crm).rewards(program)
    ]
    emit(rows, fmt, ["code", "title", "points", "available", "valid_from", "valid_until", "value"])


# -- members ----------------------------------------------------------------------------


@loyalty_group.command("enrol")
@click.argument("customer_id", type=int)
@program_option
@click.option("--referred-by", type=int, default=None, help="Customer id of the referrer.")
@pass_crm
def enrol(crm: Any, customer_id: int, program: str | None, referred_by: int | None) -> None:
    """Enrol a customer in a program."""
    member = loyalty(crm).enrol(customer_id, program=program, referred_by=referred_by)
    click.echo(
        f"customer {customer_id} enrolled in {member.program!r} (tier {member.tier or '-'}, "
        f"balance {member.balance})"
    )


@loyalty_group.command("balance")
@click.argument("customer_id", type=int)
@program_option
@format_option()
@pass_crm
def balance(crm: Any, customer_id: int, program: str | None, fmt: str) -> None:
    """A member's tier and balance."""
    service = loyalty(crm)
    m = service.member(customer_id, program=program)
    tier = service.program(m.program).tier(m.tier)
    days = crm.settings["loyalty"]["expiring_soon_days"]
    row = {
        "customer_id": customer_id,
        "program": m.program,
        "tier": m.tier,
        "balance": m.balance,
        "discount": tier.discount if tier else Decimal(0),
        f"expiring_in_{days}_days": service.expiring(customer_id, days, program=m.program),
        "clawback_due": m.clawback_due,
    }
    emit([row], fmt)


@loyalty_group.command("price")
@click.argument("customer_id", type=int)
@click.argument("amount")
@program_option
@format_option()
@pass_crm
def price(crm: Any, customer_id: int, amount: str, program: str | None, fmt: str) -> None:
    """The member price of AMOUNT for a member: their tier's discount taken off."""
    result = loyalty(crm).member_price(customer_id, amount, program=program)
    if fmt == "table":
        click.echo(
            f"member price {result['price']} ({result['tier'] or '-'}: "
            f"{(result['discount'] * 100).normalize():f}% off {result['amount']})"
        )
    else:
        emit([result], fmt)


@loyalty_group.command("statement")
@click.argument("customer_id", type=int)
@program_option
@format_option("table", "json", "csv", "html")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file.")
@pass_crm
def statement(
    crm: Any, customer_id: int, program: str | None, fmt: str, output: str | None
) -> None:
    """A member's statement: every ledger entry with its cause and the running balance."""
    s = loyalty(crm).statement(customer_id, program=program)
    if fmt == "html":
        template = crm.templates.get_template("loyalty/statement.html")
        text = template.render(s=s, as_of=dt.datetime.now(dt.UTC).date())
    elif fmt == "json":
        text = json.dumps(jsonable(s), indent=2, ensure_ascii=False)
    else:
        head = (
            f"{s['program_title']}: {s['customer_name']} — tier {s['tier'] or '-'}, "
            f"balance {s['balance']}"
        )
        body = render(s["entries"], fmt, ["occurred_at", "kind", "points", "balance", "cause"])
        text = body if fmt == "csv" else f"{head}\n{body}"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"statement written to {output}")
    else:
        click.echo(text)


@loyalty_group.command("members")
@program_option
@click.option("--tier", default=None, help="Only members of this tier.")
@click.option("--limit", type=int, default=None)
@format_option()
@pass_crm
def members(crm: Any, program: str | None, tier: str | None, limit: int | None, fmt: str) -> None:
    """Members by tier (highest first), then balance."""
    emit(loyalty(crm).members(program=program, tier=tier, limit=limit), fmt)


# -- points -----------------------------------------------------------------------------


@loyalty_group.command("redeem")
@click.argument("customer_id", type=int)
@click.argument("reward")
@program_option
@click.option("--quantity", type=int, default=1, show_default=True)
@click.option(
    "--staff",
    default=None,
    help="The staff member the operator records it for (default: who acts, --as STAFF).",
)
@pass_crm
def redeem(
    crm: Any, customer_id: int, reward: str, program: str | None, quantity: int, staff: str | None
) -> None:
    """Spend a member's points on a reward."""
    service = loyalty(crm)
    entry = service.redeem(customer_id, reward, program=program, quantity=quantity, actor=staff)
    left = service.balance(customer_id, program=entry.program)
    click.echo(f"redeemed {reward!r} for {-entry.points} points; balance {left}")


# a negative POINTS (-20) is an argument, not an unknown option
@loyalty_group.command("adjust", context_settings={"ignore_unknown_options": True})
@click.argument("customer_id", type=int)
@click.argument("points", type=int)
@click.option("--reason", required=True, help="Why (required; shown on the statement).")
@click.option(
    "--staff",
    default=None,
    help="The staff member the operator records it for (default: who acts, --as STAFF).",
)
@program_option
@pass_crm
def adjust(
    crm: Any, customer_id: int, points: int, reason: str, staff: str | None, program: str | None
) -> None:
    """Add (or, negative, remove) points by hand, with a reason."""
    service = loyalty(crm)
    entry = service.adjust(customer_id, points, reason=reason, staff=staff, program=program)
    left = service.balance(customer_id, program=entry.program)
    click.echo(f"adjusted customer {customer_id} by {points:+d} points; balance {left}")


@loyalty_group.command("earn")
@program_option
@pass_crm
def earn(crm: Any, program: str | None) -> None:
    """Earn on stored paid orders that have not earned yet (safe to repeat)."""
    seen = loyalty(crm).earn_existing(program=program)
    click.echo(f"{seen} paid orders checked")


@loyalty_group.command("catch-up")
@pass_crm
def catch_up(crm: Any) -> None:
    """Reconcile with what happened while loyalty was off: reverse refunded orders' points,
    earn on paid orders that never earned, join merged members, erase erased ones (safe
    to repeat)."""
    done = loyalty(crm).catch_up()
    click.echo(done or "loyalty: nothing to catch up")


@loyalty_group.command("expire")
@click.option("--as-of", "as_of", required=True, help="Expire points due by this date.")
@program_option
@format_option()
@pass_crm
def expire(crm: Any, as_of: str, program: str | None, fmt: str) -> None:
    """Expire points earned more than the program's expiry months ago (oldest first)."""
    entries = loyalty(crm).expire(_as_of(as_of), program=program)
    if fmt == "table":
        click.echo(f"{len(entries)} members lost {-sum(e.points for e in entries)} points")
    else:
        emit(_entry_rows(entries), fmt)


@loyalty_group.command("birthdays")
@click.option("--as-of", "as_of", default=None, help="Award for birthdays in this date's month.")
@program_option
@pass_crm
def birthdays(crm: Any, as_of: str | None, program: str | None) -> None:
    """Award the birthday bonus (once a year per member)."""
    entries = loyalty(crm).award_birthdays(_as_of(as_of), program=program)
    click.echo(f"{len(entries)} birthday bonuses awarded")


@loyalty_group.command("review-tiers")
@click.option("--as-of", "as_of", required=True, help="End of the qualifying window.")
@program_option
@format_option()
@pass_crm
def review_tiers(crm: Any, as_of: str, program: str | None, fmt: str) -> None:
    """Periodic review: move members up or down to the tier their window measure meets."""
    changes = loyalty(crm).review_tiers(_as_of(as_of), program=program)
    rows = [
        {
            "customer_id": c.customer_id,
            "program": c.program,
            "from": c.from_tier,
            "to": c.to_tier,
            "measure": c.measure,
        }
        for c in changes
    ]
    emit(rows, fmt, ["customer_id", "program", "from", "to", "measure"])


# -- reports ----------------------------------------------------------------------------


@loyalty_group.command("liability")
@program_option
@format_option()
@pass_crm
def liability(crm: Any, program: str | None, fmt: str) -> None:
    """Outstanding points valued at their redemption value, per program and tier."""
    emit(loyalty(crm).liability(program=program), fmt)


@loyalty_group.command("what-if")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--since", default=None, help="Replay orders from this date.")
@click.option("--until", default=None, help="Replay orders before this date.")
@click.option("--members-of", default=None, help="Replay only members of this program.")
@format_option("table", "json")
@pass_crm
def what_if(
    crm: Any, file: str, since: str | None, until: str | None, members_of: str | None, fmt: str
) -> None:
    """Replay past orders through the candidate program in FILE; writes nothing."""
    report = loyalty(crm).what_if(
        file, since=_datetime(since), until=_datetime(until), members_of=members_of
    )
    if fmt == "json":
        click.echo(json.dumps(jsonable(report), indent=2, ensure_ascii=False))
        return
    for key in ("program", "orders", "members", "spend", "points", "cost", "cost_share"):
        label = "cost % of spend" if key == "cost_share" else key
        click.echo(f"{label:>16}: {report[key]}")
    for rule, points in sorted(report["points_by_rule"].items()):
        click.echo(f"{'rule ' + rule:>16}: {points}")
    for tier, count in report["members_by_tier"].items():
        click.echo(f"{'tier ' + tier:>16}: {count} members")
