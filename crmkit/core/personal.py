"""Personal data: a person's export (core and every plugin), erasure, and the write guard.

**Every installed plugin holding data.** A plugin that is installed but not loaded in this
CRM (not enabled, or it failed to load) may still hold personal data: its tables stay in the
database when it is disabled. Export and erasure find such plugins (an installed plugin whose
Alembic branch has a revision in ``alembic_version``), load them into a plugin manager of
their own and call their ``crmkit_export_personal_data`` / ``crmkit_erase_personal_data``
in the same transaction as the enabled plugins'. When one of them cannot be run (its import
fails, it was built for another core API, its tables are behind its code, or the revisions
belong to a plugin no longer installed) the export or erasure is refused, naming the plugin
and the fix, and nothing changes: a person is never told their data is gone (or complete)
while a part of it is left out.

**Re-running an erasure** on an erased customer runs every plugin's erase hook (and the
core's) again, completing an erasure a plugin left partial; the first erasure's date stays.

**Permissions and the audit log.** Export needs ``customers.export`` on the customer,
erasure ``customers.erase``; each then reads everything it needs without further checks.
The export holds the customer's audit entries as ``activity`` (with those of records
merged into it). Erasure scrubs the values of those entries (``"[erased]"``), keeping
who did what, when, to which fields, and records its own ``customer.erase`` entry with
field names only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection, bindparam, delete, or_, select, update

from crmkit import hooks
from crmkit import plugins as plugin_loader
from crmkit.core import access, audit, auditlog, migrate, prebuilt
from crmkit.core import tables as t
from crmkit.core.bulk import chunks
from crmkit.core.entities import Customer
from crmkit.core.serialize import jsonable
from crmkit.errors import CrmError, PluginError

if TYPE_CHECKING:
    import pluggy

    from crmkit.crm import CRM

#: ids per query of :func:`erased_or_merged` (well under SQLite's bound-parameter limit)
_CHUNK = 5000


# -- the write guard -------------------------------------------------------------------


def refusal(customer_id: int, erased_at: dt.datetime | None, merged_into: int | None) -> str | None:
    """Why a customer takes no new data (erased, or merged into another), or None."""
    if erased_at is not None:
        return (
            f"customer {customer_id} was erased on {erased_at:%Y-%m-%d}; "
            "an erased customer takes no new data"
        )
    if merged_into is not None:
        return (
            f"customer {customer_id} was merged into customer {merged_into}; "
            f"write to customer {merged_into} instead"
        )
    return None


def write_state(connection: Connection, customer_id: int) -> Any | None:
    """What a write about one customer reads of it, in one prebuilt query: its ``owner``
    (for the permission check), ``erased_at`` and ``merged_into`` (for :func:`refusal`);
    None when there is no such customer. Call it with the write's own connection."""
    found = prebuilt.rows(connection, _WRITE_STATE, {"customer_id": customer_id})
    return found[0] if found else None


_WRITE_STATE = select(
    t.customers.c.owner, t.customers.c.erased_at, t.customers.c.merged_into
).where(t.customers.c.id == bindparam("customer_id"))


def erased_or_merged(connection: Connection, customer_ids: Iterable[int]) -> dict[int, str]:
    """The customers among ``customer_ids`` that take no new data, with the reason for each.

    The bulk form of ``crm.customers.require_writable``: one query per 5,000 distinct ids,
    so a batch of an import costs one query, not one per row. Ids that may be written to
    (and ids of no customer) are absent. Call it with the write's own connection
    (``ctx.connection``) so the answer holds for the transaction.
    """
    found: dict[int, str] = {}
    c = t.customers.c
    for chunk in chunks(iter(sorted(set(customer_ids))), _CHUNK):
        rows = connection.execute(
            select(c.id, c.erased_at, c.merged_into).where(
                c.id.in_(chunk), or_(c.erased_at.is_not(None), c.merged_into.is_not(None))
            )
        )
        for row in rows:
            reason = refusal(row.id, row.erased_at, row.merged_into)
            if reason:
                found[row.id] = reason
    return found


# -- plugins that hold data but are not loaded ----------------------------------------


@attrs.frozen
class Dormant:
    """Installed plugins not loaded in this CRM whose tables are in the database."""

    pm: pluggy.PluginManager | None = None
    names: tuple[str, ...] = ()


#: revisions of a plugin's versions folder (and its heads), by folder: code does not change
#: while the process runs
_branches: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
_known: dict[tuple[tuple[str, str], ...], frozenset[str]] = {}


def _known_revisions(crm: CRM, folders: Mapping[str, str]) -> frozenset[str]:
    key = tuple(sorted(folders.items()))
    if key not in _known:
        _known[key] = frozenset(
            migrate.known_revisions(migrate.alembic_config(crm.engine, folders))
        )
    return _known[key]


def _branch(crm: CRM, name: str, folder: str) -> tuple[frozenset[str], frozenset[str]]:
    """The revisions of plugin ``name``'s branch in ``folder``, and its heads."""
    if folder not in _branches:
        config = migrate.alembic_config(crm.engine, {name: folder})
        migrate.check_plugin_folders(config)
        revisions = migrate.known_revisions(config) - _known_revisions(crm, {})
        heads = set(migrate.head_revisions(config)) & revisions
        _branches[folder] = (frozenset(revisions), frozenset(heads))
    return _branches[folder]


def _migrations_folder(pm: pluggy.PluginManager, name: str) -> str | None:
    for impl in pm.hook.crmkit_register_migrations.get_hookimpls():
        if impl.plugin_name == name:
            folder = impl.function()
            return str(folder) if folder else None
    return None


def _fix(name: str, why: str) -> str:
    if why.startswith("its tables are at"):
        return (
            f"enable {name!r} and run 'crmkit db upgrade' (you may disable it again after), "
            "then run this again"
        )
    if why.startswith("it was built for"):
        return f"install a version of {name!r} built for this crmkit, then run this again"
    return (
        f"fix or reinstall it (pip install --force-reinstall crmkit-{name}), then run this "
        "again; uninstall it only after removing its tables ('crmkit db downgrade "
        f"{name}@base' with it enabled)"
    )


def dormant_plugins(crm: CRM, connection: Connection, doing: str) -> Dormant:
    """Load the installed plugins that hold tables in the database but are not loaded in
    ``crm``; :class:`PluginError` naming any that cannot be run (``doing``: "erase customer
    3", for the message). Cheap when there are none: one read of ``alembic_version``."""
    from alembic.runtime.migration import MigrationContext  # only writes that erase or merge

    current = set(MigrationContext.configure(connection).get_current_heads())
    foreign = current - _known_revisions(crm, migrate.plugin_version_dirs(crm.pm))
    if not foreign:
        return Dormant()
    pm = plugin_loader.PluginManager()
    pm.add_hookspecs(hooks)
    names: list[str] = []
    blocked: dict[str, str] = {}  # plugins holding data that cannot run, and why
    unloadable: dict[str, str] = {}  # plugins that may hold the rest, and why not loaded
    for name, entry in sorted(plugin_loader.installed().items()):
        if name in crm.plugin_names or not foreign:
            continue
        try:
            pm.register(entry.load(), name=name)
            folder = _migrations_folder(pm, name)
            revisions, heads = _branch(crm, name, folder) if folder else (frozenset(), frozenset())
        except Exception as exc:  # a broken plugin is named, not a crash
            unloadable[name] = f"it cannot be loaded ({type(exc).__name__}: {exc})"
            if pm.has_plugin(name):
                pm.unregister(name=name)
            continue
        held = foreign & revisions
        if not held:
            pm.unregister(name=name)
            continue
        foreign -= held
        problem = plugin_loader.check_api(name, pm.get_plugin(name))
        if problem:
            blocked[name] = f"it was built for another core: {problem}"
        elif not held & heads:
            blocked[name] = (
                f"its tables are at revision {', '.join(sorted(held))}, older than its code "
                f"({', '.join(sorted(heads))})"
            )
        else:
            names.append(name)
    if foreign:
        blocked.update(unloadable)
    if blocked:
        reasons = "; ".join(
            f"plugin {name!r} is installed and holds data in this database, but {why}: "
            f"{_fix(name, why)}"
            for name, why in sorted(blocked.items())
        )
        raise PluginError(
            f"cannot {doing} while a plugin holding personal data cannot run: {reasons}; "
            f"nothing was {'erased' if doing.startswith('erase') else 'exported'}",
            plugin=sorted(blocked)[0],
        )
    if foreign:
        raise PluginError(
            f"cannot {doing}: the database holds tables of a plugin that is not installed "
            f"(migration revision {', '.join(sorted(foreign))}), so its personal data could "
            "not be reached; install that plugin again (its tables are still there) and run "
            "this again"
        )
    return Dormant(pm, tuple(names))


def _each(
    pm: pluggy.PluginManager | None, hook: str, arguments: Mapping[str, Any], doing: str
) -> Iterator[tuple[str, Any]]:
    """Call each implementation of ``hook`` on its own: (plugin name, result); an error
    names the plugin. The core's own implementations (``crmkit.*``) are called unnamed."""
    if pm is None:
        return
    for name, call in plugin_loader.each_implementation(pm, hook):
        try:
            result = call(arguments)
        except CrmError as exc:
            raise type(exc)(f"plugin {name!r} failed to {doing}: {exc}") from exc
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} failed to {doing}: {type(exc).__name__}: {exc}; "
                f"nothing was {'erased' if hook == 'crmkit_erase_personal_data' else 'exported'}",
                plugin=name,
            ) from exc
        yield name, result


# -- export --------------------------------------------------------------------------


def export(crm: CRM, customer_id: int) -> dict[str, Any]:
    """Everything held on a customer, core and plugins, as JSON-ready data.

    Plugins installed but not enabled that hold tables in the database export their
    part too (see the module's documentation). Needs ``customers.export`` on the customer.
    """
    authorised(crm, "customers.export", customer_id)
    with crm.transaction() as ctx, access.trusted(crm):
        customer = crm.customers._get(customer_id)
        dormant = dormant_plugins(crm, ctx.connection, f"export customer {customer_id}")
        data: dict[str, Any] = {
            "customer": attrs.asdict(customer),
            "consent_history": [
                attrs.asdict(change) for change in crm.customers.consent_history(customer_id)
            ],
            "contacts": [attrs.asdict(c) for c in crm.customers.contacts(customer_id)],
            "interactions": [
                attrs.asdict(i) for i in crm.interactions.list(customer_id=customer_id, limit=None)
            ],
            "orders": [
                attrs.asdict(o) for o in crm.orders.list(customer_id=customer_id, limit=None)
            ],
            "workflows": [
                {
                    **attrs.asdict(w),
                    "history": [attrs.asdict(h) for h in crm.workflows.history(w.id)],
                }
                for w in crm.workflows.list(customer_id=customer_id)
            ],
            "activity": [
                auditlog.as_dict(entry) for entry in auditlog.of_customer(crm, customer_id)
            ],
            "plugins": {},
        }
        arguments = {"ctx": ctx, "customer": customer}
        doing = f"export customer {customer_id}"
        # called one by one so each part is filed under the plugin that gave it
        for pm in (crm.pm, dormant.pm):
            for name, part in _each(pm, "crmkit_export_personal_data", arguments, doing):
                if part:
                    data["plugins"][name] = part
        return jsonable(data)


def authorised(crm: CRM, action: str, customer_id: int) -> None:
    """Authorise the actor for ``action`` on the customer (NotFound when there is none or
    it is outside the actor's scope; Forbidden without the permission)."""
    access.require(crm, action)
    customer = crm.customers._get(customer_id)
    access.authorise(crm, action, customer_id, owner=customer.owner)


# -- erasure -------------------------------------------------------------------------


@attrs.frozen
class Erasure:
    """What :func:`erase` did."""

    #: the customer after the erasure
    customer: Customer
    #: True when the customer had been erased before (this run completed that erasure)
    again: bool
    #: every plugin whose erase hook ran, enabled or not
    plugins: tuple[str, ...]
    #: of these, the installed plugins that are not enabled, loaded for the erasure
    loaded: tuple[str, ...]


def erase(crm: CRM, customer_id: int, *, actor: str | None = None) -> Erasure:
    """Erase a person's data everywhere; order totals stay (anonymised) for statistics.

    Every installed plugin holding tables in the database erases its part, enabled or not;
    an erased customer may be erased again to complete a partial erasure. Needs
    ``customers.erase`` on the customer.
    """
    authorised(crm, "customers.erase", customer_id)
    with crm.transaction(actor=actor) as ctx, access.trusted(crm):
        before = crm.customers._get(customer_id)
        doing = f"erase customer {customer_id}"
        dormant = dormant_plugins(crm, ctx.connection, doing)
        ran: list[str] = []
        arguments = {"ctx": ctx, "customer": before}
        for pm in (crm.pm, dormant.pm):
            for name, _ in _each(pm, "crmkit_erase_personal_data", arguments, doing):
                if not name.startswith("crmkit."):
                    ran.append(name)
        _erase_core(ctx, customer_id, before.erased_at or ctx.now)
        scrub(ctx, customer_id, before)
        after = crm.customers._get(customer_id)
        crm.fire(ctx, "crmkit_after_customers_updated", customers=[after], previous=[before])
        ctx.changes.customers_updated.append(after)
        return Erasure(
            customer=after,
            again=before.erased_at is not None,
            plugins=tuple(sorted(set(ran))),
            loaded=dormant.names,
        )


#: what the core's erasure clears besides the profile fields it lists
ERASED_PARTS = ("attributes", "consents", "consent_changes", "contacts", "interactions",
                "workflow titles, fields and transition reasons")  # fmt: skip


def scrub(ctx: Any, customer_id: int, before: Customer) -> None:
    """Scrub the values of the customer's audit entries (and of records merged into it),
    then record ``customer.erase`` naming what was cleared, without values."""
    ids = auditlog.customer_ids(ctx.connection, customer_id)
    for one in ids:
        audit.scrub_customer(ctx.connection, one)
    cleared = [f for f in _ERASED_FIELDS if getattr(before, f, None) is not None]
    ctx.audit(
        "customer.erase",
        "customer",
        customer_id,
        customer_id=customer_id,
        changes={
            **{field: [audit.ERASED, None] for field in cleared},
            "erased": [None, [*cleared, *ERASED_PARTS]],
        },
    )


_ERASED_FIELDS = ("name", "external_id", "email", "phone", "address", "birth_date",
                  "occupation", "city")  # fmt: skip


def _erase_core(ctx: Any, customer_id: int, erased_at: dt.datetime) -> None:
    connection = ctx.connection
    for table in (t.contacts, t.consents, t.consent_changes, t.interactions):
        connection.execute(delete(table).where(table.c.customer_id == customer_id))
    connection.execute(
        update(t.workflow_instances)
        .where(t.workflow_instances.c.customer_id == customer_id)
        .values(title="(erased)", fields={})
    )
    # the reasons given when moving the customer's deals and cases are free text about them
    connection.execute(
        update(t.workflow_transitions)
        .where(
            t.workflow_transitions.c.instance_id.in_(
                select(t.workflow_instances.c.id).where(
                    t.workflow_instances.c.customer_id == customer_id
                )
            )
        )
        .where(t.workflow_transitions.c.reason != "")
        .values(reason="(erased)")
    )
    connection.execute(
        update(t.customers)
        .where(t.customers.c.id == customer_id)
        .values(
            name=f"erased customer {customer_id}",
            external_id=None,
            email=None,
            phone=None,
            address=None,
            birth_date=None,
            occupation=None,
            city=None,
            attributes={},
            status="inactive",
            updated_at=ctx.now,
            erased_at=erased_at,
            version=t.customers.c.version + 1,
        )
    )
