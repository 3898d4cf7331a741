"""Merging a duplicate customer into the one kept: ``crm.customers.merge(kept_id, merged_id)``.

In one transaction: the merged record's interactions, orders, contacts, workflow
instances and consent history move to the kept one; consent per purpose becomes the
more restrictive answer of the two (a withdrawal beats a grant), recorded as a consent
change with source ``merge``; empty profile fields and attributes of the kept record are
filled from the merged one, and where both hold different values the caller chooses
(``prefer={"email": "merged"}``), else nothing changes and :class:`MergeConflict` lists
the fields. Then every plugin moves its own data (``crmkit_merge_customers``, each
called on its own so its summary is recorded under its name), the merged record is
marked ``merged_into`` the kept one (inactive, its personal data cleared, its id and
external id kept so old references resolve and say where the customer went), and a
``customer_merges`` row records what moved.

Needs ``customers.merge`` on both customers. Audited as ``customer.merge`` twice: on
the kept customer (the fields that changed, ``merged_from``) and on the merged record
(``merged_into``). Audit entries are not moved: each stays on the id it was recorded
for, and the kept customer's activity and export gather the entries of the records
merged into it (:func:`crmkit.core.auditlog.customer_ids`). Both records' ``version``
is bumped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, delete, func, insert, select, update

from crmkit import plugins as plugin_loader
from crmkit.core import access, duplicates
from crmkit.core import tables as t
from crmkit.core.entities import Customer
from crmkit.core.serialize import jsonable
from crmkit.errors import Conflict, CrmError, PluginError, ValidationError

if TYPE_CHECKING:
    from crmkit.crm import CRM

#: Profile fields a merge fills or asks about. ``external_id`` stays with each record
#: (it is unique, and the merged record keeps answering to its own).
MERGE_FIELDS = (
    "type", "kind", "status", "name", "email", "phone", "address", "region", "province",
    "city", "industry", "occupation", "birth_date", "owner",
)  # fmt: skip

#: The core rows that follow the customer, by table.
MOVED_TABLES = {
    "interactions": t.interactions,
    "orders": t.orders,
    "contacts": t.contacts,
    "workflow_instances": t.workflow_instances,
    "consent_changes": t.consent_changes,
}

CHOICES = ("kept", "merged")


@attrs.frozen
class FieldConflict:
    """A field (or custom attribute) both records hold with different values."""

    field: str
    kept: Any
    merged: Any


@attrs.frozen
class MergePlan:
    """What a merge would change on the kept record, before anything is written."""

    kept: Customer
    merged: Customer
    profile: dict[str, Any]  # profile fields of the kept record that change, new values
    attributes: dict[str, Any]  # the kept record's attributes after the merge (as stored)
    filled: tuple[str, ...]  # fields and attributes taken from the merged record
    chosen: dict[str, str]  # conflicting field -> "kept" or "merged", as the caller chose
    conflicts: tuple[FieldConflict, ...]  # conflicts nobody chose: the merge is refused
    consents: dict[str, bool]  # purposes whose answer changes on the kept record


@attrs.frozen
class MergeResult:
    """A merge that was stored: the ``customer_merges`` row, with both records after it."""

    id: int
    kept: Customer
    merged: Customer
    at: dt.datetime
    actor: str | None
    moved: dict[str, Any]  # {"core": {...counts...}, "<plugin>": its summary}


class MergeConflict(Conflict):
    """Both records hold different values for some fields; ``conflicts`` lists them."""

    def __init__(self, message: str, conflicts: tuple[FieldConflict, ...]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


# -- the plan ---------------------------------------------------------------------------------
def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _same(field: str, kept: Any, merged: Any, region: str | None) -> bool:
    """Equal as far as a person can tell: e-mail case, phone formats, case and spacing."""
    if field == "email":
        return duplicates.email_key(kept) == duplicates.email_key(merged)
    if field == "phone":
        return bool(duplicates.phone_keys(kept, region) & duplicates.phone_keys(merged, region))
    if isinstance(kept, str) and isinstance(merged, str):
        return " ".join(kept.split()).casefold() == " ".join(merged.split()).casefold()
    return bool(kept == merged)


def _check_prefer(
    prefer: Mapping[str, str], kept: Customer, merged: Customer, raw: dict[int, dict[str, Any]]
) -> None:
    known = set(MERGE_FIELDS) | set(raw[kept.id]) | set(raw[merged.id])
    for field, choice in prefer.items():
        if field == "external_id":
            raise ValidationError(
                "external_id is not merged: each record keeps its own (the merged one goes "
                "on answering to it); remove it from the choices",
                field=field,
            )
        if field not in known:
            raise ValidationError(
                f"cannot choose {field!r}: it is neither a profile field "
                f"({', '.join(MERGE_FIELDS)}) nor an attribute of customer {kept.id} or "
                f"{merged.id}",
                field=field,
            )
        if choice not in CHOICES:
            raise ValidationError(
                f"choice {field}={choice!r} is not valid; use {field}=kept or {field}=merged",
                field=field,
            )


def _consents(kept: Customer, merged: Customer) -> dict[str, bool]:
    """Purposes whose answer changes on the kept record: the more restrictive one wins."""
    changed: dict[str, bool] = {}
    for purpose, granted in merged.consents.items():
        mine = kept.consents.get(purpose)
        result = granted if mine is None else (mine and granted)
        if result != mine:
            changed[purpose] = result
    return changed


def plan(
    crm: CRM,
    kept: Customer,
    merged: Customer,
    prefer: Mapping[str, str] | None = None,
    *,
    raw_attributes: dict[int, dict[str, Any]] | None = None,
) -> MergePlan:
    """Compare two records field by field; nothing is written.

    ``raw_attributes`` are the stored attribute values by customer id (read when not
    given), so that the kept record's attributes are written back exactly as stored.
    """
    raw = raw_attributes or _raw_attributes(crm, [kept.id, merged.id])
    prefer = dict(prefer or {})
    _check_prefer(prefer, kept, merged, raw)
    region = duplicates.default_region(crm)
    profile: dict[str, Any] = {}
    attributes = dict(raw[kept.id])
    filled: list[str] = []
    chosen: dict[str, str] = {}
    conflicts: list[FieldConflict] = []
    values = [(f, getattr(kept, f), getattr(merged, f), None) for f in MERGE_FIELDS]
    names = sorted(set(raw[kept.id]) | set(raw[merged.id]))
    values += [(n, raw[kept.id].get(n), raw[merged.id].get(n), n) for n in names]
    for field, mine, theirs, attribute in values:
        if _empty(theirs) or _same(field, mine, theirs, region):
            continue
        if _empty(mine):
            filled.append(field)
            take = True
        elif field in prefer:
            chosen[field] = prefer[field]
            take = prefer[field] == "merged"
        else:
            conflicts.append(FieldConflict(field, mine, theirs))
            continue
        if take and attribute is None:
            profile[field] = theirs
        elif take:
            attributes[attribute] = theirs
    return MergePlan(
        kept=kept,
        merged=merged,
        profile=profile,
        attributes=attributes,
        filled=tuple(filled),
        chosen=chosen,
        conflicts=tuple(conflicts),
        consents=_consents(kept, merged),
    )


def conflict_message(kept: Customer, merged: Customer, conflicts: tuple[FieldConflict, ...]) -> str:
    """Which fields differ, with both values, and how to choose."""
    listed = ", ".join(f"{c.field} (kept {c.kept!r}, merged {c.merged!r})" for c in conflicts)
    first = conflicts[0].field
    return (
        f"customers {kept.id} (kept) and {merged.id} (merged) hold different values for "
        f"{len(conflicts)} field(s): {listed}; nothing was merged. Choose which value stays "
        f"for each: prefer={{{first!r}: 'kept' or 'merged', ...}} "
        f"(on the command line: --prefer {first}=kept or --prefer {first}=merged)"
    )


def _raw_attributes(crm: CRM, ids: list[int]) -> dict[int, dict[str, Any]]:
    with crm.reading() as connection:
        rows = connection.execute(
            select(t.customers.c.id, t.customers.c.attributes).where(t.customers.c.id.in_(ids))
        )
        return {row.id: dict(row.attributes or {}) for row in rows}


def check_mergeable(kept: Customer, merged: Customer) -> None:
    """Refuse a merge of a record into itself, or of an erased or already merged one."""
    if kept.id == merged.id:
        raise ValidationError(
            f"customer {kept.id} cannot be merged into itself; give two different customers"
        )
    for role, customer in (("merged", merged), ("kept", kept)):
        if customer.erased_at is not None:
            raise Conflict(
                f"customer {customer.id} was erased on {customer.erased_at:%Y-%m-%d}; an "
                f"erased customer cannot be {role} in a merge"
            )
    if merged.merged_into is not None:
        raise Conflict(
            f"customer {merged.id} was already merged into customer {merged.merged_into}"
        )
    if kept.merged_into is not None:
        raise Conflict(
            f"customer {kept.id} was merged into customer {kept.merged_into}; merge into "
            f"customer {kept.merged_into} instead"
        )


def counts(crm: CRM, customer_id: int) -> dict[str, int]:
    """How many core rows of each moved table belong to ``customer_id``."""
    with crm.reading() as connection:
        return {
            name: connection.scalar(
                select(func.count()).select_from(table).where(table.c.customer_id == customer_id)
            )
            for name, table in MOVED_TABLES.items()
        }


def plugins_taking_part(crm: CRM) -> list[str]:
    """Names of the plugins that move their data in a merge (implement the hook)."""
    return [name for name, _ in plugin_loader.each_implementation(crm.pm, MERGE_HOOK)]


MERGE_HOOK = "crmkit_merge_customers"


# -- the merge --------------------------------------------------------------------------------
def merge(
    crm: CRM,
    kept_id: int,
    merged_id: int,
    *,
    prefer: Mapping[str, str] | None = None,
    actor: str | None = None,
) -> MergeResult:
    """Merge customer ``merged_id`` into ``kept_id`` (see the module doc); one transaction."""
    if kept_id == merged_id:
        raise ValidationError(
            f"customer {kept_id} cannot be merged into itself; give two different customers"
        )
    access.require(crm, "customers.merge")
    check = not access.is_trusted(crm)
    with crm.transaction(actor=actor) as ctx, access.trusted(crm):
        connection = ctx.connection
        # both rows locked (PostgreSQL) in id order, so crossing merges cannot interleave
        connection.execute(
            select(t.customers.c.id)
            .where(t.customers.c.id.in_([kept_id, merged_id]))
            .order_by(t.customers.c.id)
            .with_for_update()
        ).all()
        kept, merged = crm.customers._get(kept_id), crm.customers._get(merged_id)
        if check:
            _authorise(crm, kept, merged)
        check_mergeable(kept, merged)
        decided = plan(crm, kept, merged, prefer)
        if decided.conflicts:
            raise MergeConflict(
                conflict_message(kept, merged, decided.conflicts), decided.conflicts
            )
        moved: dict[str, Any] = {"core": _move_core(ctx, decided)}
        kept_now = crm.customers._get(kept_id)
        for name, call in plugin_loader.each_implementation(crm.pm, MERGE_HOOK):
            summary = _call_plugin(name, call, ctx, kept_now, merged)
            if summary is not None:
                moved[name] = jsonable(summary)
        _retire(ctx, merged, kept_id)
        merge_id = connection.scalar(
            insert(t.customer_merges).returning(t.customer_merges.c.id),
            {
                "kept_id": kept_id,
                "merged_id": merged_id,
                "at": ctx.now,
                "actor": ctx.actor.label,
                "moved": moved,
            },
        )
        kept_after, merged_after = crm.customers._get(kept_id), crm.customers._get(merged_id)
        _audit(ctx, kept, kept_after, merged, merge_id)
        crm.fire(ctx, "crmkit_after_customers_updated", customers=[kept_after], previous=[kept])
        ctx.changes.customers_updated.extend([kept_after, merged_after])
        result = MergeResult(merge_id, kept_after, merged_after, ctx.now, ctx.actor.label, moved)
        ctx.changes.other.setdefault("customer_merges", []).append(result)
        return result


def _authorise(crm: CRM, kept: Customer, merged: Customer) -> None:
    """``customers.merge`` on both records (outside the actor's scope: NotFound); called
    inside the merge's own trusted block, so it asks the permissions directly."""
    from crmkit.core.permissions import Resource

    for customer in (kept, merged):
        crm.authorise("customers.merge", Resource.customer(customer.id, owner=customer.owner))


def _audit(ctx: Any, kept: Customer, kept_after: Customer, merged: Customer, merge_id: int) -> None:
    from crmkit.core.customers import audited_values

    ctx.audit(
        "customer.merge",
        "customer",
        kept.id,
        customer_id=kept.id,
        before={**audited_values(kept), "merged_from": None},
        after={**audited_values(kept_after), "merged_from": merged.id, "merge": merge_id},
    )
    ctx.audit(
        "customer.merge",
        "customer",
        merged.id,
        customer_id=merged.id,
        changes={"merged_into": [None, kept.id], "merge": [None, merge_id]},
    )


def _move_core(ctx: Any, decided: MergePlan) -> dict[str, Any]:
    connection = ctx.connection
    kept, merged = decided.kept, decided.merged
    summary: dict[str, Any] = {}
    for name, table in MOVED_TABLES.items():
        summary[name] = connection.execute(
            update(table).where(table.c.customer_id == merged.id).values(customer_id=kept.id)
        ).rowcount
    # records merged earlier into the merged one now point at the kept one (one hop)
    summary["merged_records"] = connection.execute(
        update(t.customers)
        .where(t.customers.c.merged_into == merged.id)
        .values(merged_into=kept.id)
    ).rowcount
    connection.execute(
        update(t.customers)
        .where(t.customers.c.id == kept.id)
        .values(
            **decided.profile,
            attributes=decided.attributes,
            updated_at=ctx.now,
            version=t.customers.c.version + 1,
        )
    )
    for purpose, granted in decided.consents.items():
        row = {
            "customer_id": kept.id,
            "purpose": purpose,
            "granted": granted,
            "changed_at": ctx.now,
            "source": "merge",
        }
        connection.execute(
            delete(t.consents).where(
                and_(t.consents.c.customer_id == kept.id, t.consents.c.purpose == purpose)
            )
        )
        connection.execute(insert(t.consents), row)
        connection.execute(insert(t.consent_changes), {**row, "actor": ctx.actor.label})
    summary["filled"] = list(decided.filled)
    summary["chosen"] = dict(decided.chosen)
    summary["consents"] = dict(decided.consents)
    return summary


def _call_plugin(
    name: str, call: Callable[[Mapping[str, Any]], Any], ctx: Any, kept: Customer, merged: Customer
) -> Any:
    try:
        return call({"ctx": ctx, "kept": kept, "merged": merged})
    except Exception as exc:
        what = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CrmError) else str(exc)
        raise PluginError(
            f"plugin {name!r} failed to merge customer {merged.id} into customer "
            f"{kept.id}: {what}; nothing of the merge was stored",
            plugin=name,
        ) from exc


def _retire(ctx: Any, merged: Customer, kept_id: int) -> None:
    """Mark the merged record: inactive, merged into the kept one, personal data cleared
    (it all moved to the kept record or was replaced by a chosen value)."""
    personal = {
        column.name: None
        for column in t.customers.columns
        if column.info.get("personal") and column.nullable
    }
    ctx.connection.execute(
        update(t.customers)
        .where(t.customers.c.id == merged.id)
        .values(
            **personal,
            name=f"(merged into customer {kept_id})",
            attributes={},
            status="inactive",
            merged_into=kept_id,
            updated_at=ctx.now,
            version=t.customers.c.version + 1,
        )
    )
    ctx.connection.execute(delete(t.consents).where(t.consents.c.customer_id == merged.id))


__all__ = [
    "FieldConflict",
    "MergeConflict",
    "MergePlan",
    "MergeResult",
    "check_mergeable",
    "merge",
    "plan",
]
