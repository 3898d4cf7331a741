"""``crmkit audit list``: the audit log, newest first (needs ``audit.read``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from crmkit.cli import cli, pass_crm
from crmkit.cli.output import emit, format_option
from crmkit.cli.params import CustomerRefType, DateTimeType

if TYPE_CHECKING:
    from crmkit.core.auditlog import AuditService

#: crmkit.core.auditlog.MAX_LIMIT, repeated so that ``crmkit --help`` imports no SQLAlchemy
#: (tests/cli/test_startup.py checks they agree)
MAX_LIMIT = 10_000

COLUMNS = ["id", "at", "actor", "on_behalf_of", "action", "entity", "entity_id",
           "customer_id", "changes", "request_id"]  # fmt: skip


@cli.group()
def audit() -> None:
    """The audit log: who changed what, when (needs the audit.read permission)."""


def audit_service(crm: Any) -> AuditService:
    """The CRM's audit log reader (``crm.audit_log``)."""
    from crmkit.core.auditlog import AuditService

    service = getattr(crm, "audit_log", None)
    return service if isinstance(service, AuditService) else AuditService(crm)


def changes_text(changes: dict[str, Any]) -> str:
    """``field: before -> after`` pairs on one line (the table's changes column)."""
    parts = []
    for field, values in changes.items():
        if isinstance(values, list) and len(values) == 2:
            before, after = (json.dumps(v, ensure_ascii=False) for v in values)
            parts.append(f"{field}: {before} -> {after}")
        else:
            parts.append(f"{field}: {json.dumps(values, ensure_ascii=False)}")
    return "; ".join(parts)


def _customer_id(crm: Any, ref: str) -> int:
    """The customer id of ``ref`` (external id first, then a number). The audit log may
    name erased and merged customers, and reading it needs audit.read, not customers.read,
    so the reference is looked up without the customer read check."""
    found = crm.customers.ids_by_external_id([ref]).get(ref)
    if found is not None:
        return found
    if ref.isdigit():
        return int(ref)
    raise click.BadParameter(f"no customer has external id {ref!r}", param_hint="--customer")


@audit.command("list")
@click.option(
    "--customer",
    "customer_ref",
    type=CustomerRefType(),
    default=None,
    help="Only entries about this customer (id or external id; records merged into it too).",
)
@click.option(
    "--staff",
    default=None,
    help="Only entries by this actor (a staff username, cli:<user>, token:<id>:<user>) "
    "or recorded on their behalf.",
)
@click.option("--action", default=None, help="Only this action, or actions starting so "
              "(customer.update, customer., import).")  # fmt: skip
@click.option(
    "--since", type=DateTimeType(), default=None, help="Only entries at or after this time."
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=50,
    show_default=True,
    help="At most this many entries (newest first).",
)
@format_option()
@pass_crm
def audit_list(
    crm: Any,
    customer_ref: str | None,
    staff: str | None,
    action: str | None,
    since: Any,
    limit: int,
    fmt: str,
) -> None:
    """List audit entries, newest first: who (actor, on behalf of), when, what (action,
    entity, id), the customer and the changed fields before -> after."""
    from crmkit.core.auditlog import as_dict

    service = audit_service(crm)
    customer_id = None
    if customer_ref is not None:
        customer_id = _customer_id(crm, customer_ref)
    found = service.list(
        customer_id=customer_id, actor=staff, action=action, since=since, limit=limit
    )
    rows = []
    for entry in found:
        row = as_dict(entry)
        row["at"] = crm.local_time(entry.at).isoformat(timespec="seconds")
        if fmt == "table":
            row["changes"] = changes_text(entry.changes)
        elif fmt == "csv":
            row["changes"] = json.dumps(entry.changes, ensure_ascii=False, sort_keys=True)
        rows.append(row)
    emit(rows, fmt, COLUMNS)
