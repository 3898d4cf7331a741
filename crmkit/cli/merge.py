"""``crmkit customer duplicates`` and ``crmkit customer merge``: finding and joining duplicates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from crmkit.cli import UserError, pass_crm
from crmkit.cli import params as p
from crmkit.cli.customer import customer
from crmkit.cli.output import emit, format_option

if TYPE_CHECKING:
    from crmkit.core.duplicates import Evidence


def _evidence_text(evidence: tuple[Evidence, ...]) -> str:
    return "; ".join(str(e) for e in evidence)


def _evidence(evidence: tuple[Evidence, ...], fmt: str) -> Any:
    if fmt == "json":
        return [{"kind": e.kind, "value": e.value} for e in evidence]
    return _evidence_text(evidence)


@customer.command("duplicates")
@click.argument("ref", metavar="[CUSTOMER]", required=False)
@click.option(
    "--max-block", type=click.IntRange(min=2), default=50, show_default=True,
    help="A key shared by more customers than this is reported, not paired.",
)  # fmt: skip
@format_option()
@pass_crm
def customer_duplicates(crm: Any, ref: str | None, max_block: int, fmt: str) -> None:
    """List likely duplicates: pairs sharing an e-mail, phone or name, with the evidence.

    With CUSTOMER, the customers that may be the same as that one. E-mails are compared
    trimmed and lower-cased, phones in E.164, names romanised (pinyin) in any word order.
    """
    if ref is not None:
        target = p.customer(crm, ref)
        found = crm.customers.find_duplicates_of(target)
        rows = [
            {"id": c.customer_id, "name": c.name, "evidence": _evidence(c.evidence, fmt)}
            for c in found
        ]
        emit(rows, fmt, ["id", "name", "evidence"])
        return
    report = crm.customers.duplicates(max_block=max_block)
    rows = [
        {
            "first": pair.first_id,
            "first_name": pair.first_name,
            "second": pair.second_id,
            "second_name": pair.second_name,
            "evidence": _evidence(pair.evidence, fmt),
        }
        for pair in report.pairs
    ]
    emit(rows, fmt, ["first", "first_name", "second", "second_name", "evidence"])
    if report.crowded:
        listed = ", ".join(f"{k.kind} {k.value} ({k.count})" for k in report.crowded[:10])
        more = f" and {len(report.crowded) - 10} more" if len(report.crowded) > 10 else ""
        click.echo(
            f"note: {len(report.crowded)} key(s) are shared by more than {max_block} customers "
            f"and are not listed as pairs: {listed}{more}",
            err=True,
        )


def _prefer(pairs: tuple[str, ...]) -> dict[str, str]:
    from crmkit.core import merge as merging  # SQLAlchemy: imported when a command runs

    prefer = p.key_values(pairs, "--prefer")
    for field, choice in prefer.items():
        if choice not in merging.CHOICES:
            raise UserError(
                f"--prefer {field}={choice!r}: say which record's value stays, "
                f"--prefer {field}=kept or --prefer {field}=merged"
            )
    return prefer


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _moves(counts: dict[str, int]) -> str:
    from crmkit.core import merge as merging  # SQLAlchemy: imported when a command runs

    return ", ".join(
        _plural(counts[name], name.removesuffix("s").replace("_", " "))
        for name in merging.MOVED_TABLES
    )


def _preview(crm: Any, kept: Any, merged: Any, prefer: dict[str, str]) -> list[str]:
    from crmkit.core import merge as merging  # SQLAlchemy: imported when a command runs

    merging.check_mergeable(kept, merged)
    decided = merging.plan(crm, kept, merged, prefer)
    if decided.conflicts:
        raise UserError(merging.conflict_message(kept, merged, decided.conflicts))
    lines = [
        f"merging customer {merged.id} ({merged.name}) into customer {kept.id} ({kept.name}):",
        f"  moves {_moves(merging.counts(crm, merged.id))}",
    ]
    if decided.filled:
        lines.append(f"  fills from customer {merged.id}: {', '.join(decided.filled)}")
    for field, choice in sorted(decided.chosen.items()):
        lines.append(f"  {field}: the {choice} record's value stays")
    for purpose, granted in sorted(decided.consents.items()):
        lines.append(f"  consent to {purpose}: {'given' if granted else 'withdrawn'}")
    plugins = merging.plugins_taking_part(crm)
    if plugins:
        lines.append(f"  plugins moving their data: {', '.join(plugins)}")
    lines.append(
        f"  then customer {merged.id} is marked merged into customer {kept.id} (inactive, its "
        "personal data cleared; its id and external id lead to the kept record)"
    )
    return lines


@customer.command("merge")
@click.argument("keep", metavar="KEEP")
@click.argument("other", metavar="OTHER")
@click.option(
    "--prefer", "prefer_", multiple=True, metavar="FIELD=kept|merged",
    help="Which record's value stays where both differ (repeatable), e.g. --prefer email=merged.",
)  # fmt: skip
@click.option("--yes", is_flag=True, help="Merge (without it, show what the merge would do).")
@pass_crm
def customer_merge(crm: Any, keep: str, other: str, prefer_: tuple[str, ...], yes: bool) -> None:
    """Merge customer OTHER into KEEP (ids or external ids); it cannot be undone.

    Interactions, orders, contacts, workflows and consent history move to KEEP; consent
    per purpose is the more restrictive answer; KEEP's empty fields are filled from
    OTHER, and fields both hold differently need --prefer. Every plugin moves its data.
    """
    prefer = _prefer(prefer_)
    kept, merged = p.customer(crm, keep), p.customer(crm, other)
    if kept.id == merged.id:
        raise UserError(f"KEEP and OTHER are both customer {kept.id}; give two customers")
    if not yes:
        for line in _preview(crm, kept, merged, prefer):
            click.echo(line)
        raise UserError(
            f"nothing merged yet; add --yes to merge customer {merged.id} into customer "
            f"{kept.id} (it cannot be undone)"
        )
    result = crm.customers.merge(kept.id, merged.id, prefer=prefer)
    core = result.moved["core"]
    click.echo(
        f"merged customer {merged.id} into customer {kept.id} ({result.kept.name}): "
        f"moved {_moves(core)}"
    )
    if core["filled"]:
        click.echo(f"  filled from customer {merged.id}: {', '.join(core['filled'])}")
    for purpose, granted in sorted(core["consents"].items()):
        click.echo(f"  consent to {purpose}: {'given' if granted else 'withdrawn'}")
    for plugin, summary in result.moved.items():
        if plugin != "core":
            click.echo(f"  {plugin}: {_summary(summary)}")


def _summary(summary: Any) -> str:
    if isinstance(summary, dict):
        return ", ".join(f"{key} {value}" for key, value in summary.items())
    return str(summary)
