"""The crmkit hook contract: every way a plugin can extend crmkit.

This module is the plugin author's main page. A plugin is a module (or an
object) registered under the entry-point group ``crmkit`` whose functions are
decorated with :data:`crmkit.hookimpl` and named after one of the hooks below::

    # crmkit_hello/__init__.py
    import crmkit

    CRMKIT_API = ">=1.0,<2"          # core API versions this plugin supports

    @crmkit.hookimpl
    def crmkit_after_orders_created(ctx, orders):
        for order in orders:
            ...

Three kinds of hook, named by a grammar:

* **contributions** — ``crmkit_register_<things>`` and a few ``crmkit_<noun>``
  hooks; called at start-up or on demand; they *return* things (every
  plugin's answer is collected into a list).
* **events** — ``crmkit_after_<things>_<done>``; called inside the write's
  transaction, after the rows are stored and before the commit; they receive a
  **sequence** of entities (a bulk import calls them once per batch, never once
  per row) and return nothing. Raising aborts the whole write: nothing of it is
  stored, and the error names the plugin.
* **vetoes** — ``crmkit_allow_<thing>``; every plugin is asked, and the
  change is refused when any returns a reason (a non-empty string); ``None``,
  ``""`` and ``False`` all mean "allow" and never hide another plugin's veto.

Arguments are passed by name; an implementation may accept any subset of
them. Hook arguments have no defaults (pluggy never passes defaults).

Every event receives ``ctx``, a :class:`crmkit.core.context.HookContext`:
``ctx.crm`` (the open CRM), ``ctx.connection`` (the SQLAlchemy connection of
the running transaction: use it for your own reads and writes so they commit
or roll back with the change), ``ctx.settings`` (all settings, yours under your
plugin's name), ``ctx.now`` (timezone-aware time of the change) and
``ctx.actor`` (who is acting: a :class:`crmkit.core.actors.Actor`; store
``ctx.actor.label`` in your own columns) and ``ctx.audit(...)`` (append an audit
entry in the same transaction; every write should record one).

Plugins publish their own hooks for other plugins in a ``hookspecs.py``
module of their package, returned from :func:`crmkit_register_hookspecs`, and
named by the same grammar with the plugin's name after ``crmkit_``:
``crmkit_<plugin>_register_<things>`` (or ``crmkit_<plugin>_<noun>`` for an
on-demand query), ``crmkit_<plugin>_after_<things>_<done>``,
``crmkit_<plugin>_allow_<thing>``. They are listed below, a section per
plugin. Call them through ``ctx.crm.hook`` after checking
``ctx.crm.has_hook(name)``, so you keep working when nobody implements them;
implement another plugin's hook with ``@crmkit.hookimpl(optionalhook=True)``,
so your plugin still loads when that plugin is absent.

A renamed hook keeps its old name for one minor API version: the hookspecs
module lists ``RENAMED_HOOKS = {"old": "new"}``, and an implementation under
the old name is called as the new hook, with a ``DeprecationWarning``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # imported for annotations only; keeps this module import-light
    import datetime as dt
    import random

    import click

    from crmkit.core.actors import Actor
    from crmkit.core.context import HookContext
    from crmkit.core.entities import (
        AttributeDefinition,
        Customer,
        Interaction,
        Order,
        Section,
        SettingsSpec,
        TimelineEntry,
    )
    from crmkit.core.permissions import PermissionSpec, Resource
    from crmkit.core.workflow import Transition, WorkflowDefinition, WorkflowInstance
    from crmkit.crm import CRM
    from crmkit.server.routing import Route

#: Version of this hook contract and of the public Python API. A plugin
#: declares the versions it supports with ``CRMKIT_API = ">=1.0,<2"``; minor
#: versions only add hooks or optional arguments, majors may break.
#: 1.1: an import batch's ``crmkit_after_orders_created`` gets a
#: ``crmkit.StoredOrders`` (still a ``Sequence[Order]``) with ``ids``.
#: 1.2: the public plugin API is drawn (:mod:`crmkit.plugin`); plugin hooks
#: follow the naming grammar (old names work, deprecated, until 1.3);
#: ``crmkit_allow_transition`` asks every plugin.
#: 1.3: actors, permissions and the audit log (``ctx.actor`` is an
#: :class:`~crmkit.core.actors.Actor`, ``ctx.audit``, ``crm.authorise``);
#: ``crmkit_register_permissions``, ``crmkit_permission_allowed``,
#: ``crmkit_register_routes``.
#: 1.4: :func:`crmkit.plugin.lazy_command`: a plugin's command group is listed
#: by name and help, its module imported only when the command runs.
#: 1.5: :meth:`HookContext.before_commit <crmkit.core.context.HookContext.before_commit>`:
#: work run once in the transaction, just before it commits.
#: 1.6: ``crm.connection_scope(keep=True)`` and ``crm.release_kept_connections()`` (a
#: thread keeps its connection from one scope to the next: the server's handler threads).
#: Entities are converted and checked when made and when a service takes them, no longer
#: on each assignment to a field (what is stored is checked as before).
#: 1.7: ``Route(quick=True)``: bounded handlers run on the worker's event loop thread;
#: ``crm.connection_scope(lock_wait_ms=...)``; :func:`crmkit.plugin.driver_rows` (a hot
#: read on the driver's cursor).
#: 1.8: :meth:`HookContext.before_next_write
#: <crmkit.core.context.HookContext.before_next_write>`: work a plugin keeps from one
#: event runs before any other write joins the transaction, or before it commits.
API_VERSION = "1.8"

hookspec = pluggy.HookspecMarker("crmkit")
hookimpl = pluggy.HookimplMarker("crmkit")


# --------------------------------------------------------------------------
# Contributions: called at start-up or on demand; return things.
# --------------------------------------------------------------------------


@hookspec
def crmkit_register_migrations() -> str | None:
    """Return the folder of your Alembic migration branch, or ``None``.

    When: once, whenever crmkit builds its migration environment (``crmkit db
    upgrade``, ``crm.upgrade()``, ``crmkit.open(..., upgrade=True)``).
    Transaction: none; migrations run later in their own transaction.
    Returns: an absolute path to a ``versions`` folder whose revisions form one
    branch: the first has ``down_revision = None`` and ``branch_labels =
    ("<plugin>",)``. Do not ``depends_on`` core revisions: crmkit upgrades the
    core to head before any plugin branch, so your foreign keys to core
    tables always resolve, and your branch stays independent (a disabled or
    uninstalled plugin's revisions are set aside, never block the others).
    Define your tables with SQLAlchemy Core on
    :data:`crmkit.core.tables.metadata` so autogenerate sees them.

    Example::

        @crmkit.hookimpl
        def crmkit_register_migrations():
            return str(Path(__file__).parent / "migrations" / "versions")
    """


@hookspec
def crmkit_register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``crmkit`` command line.

    When: once per CLI run, before the command line is parsed into a
    subcommand (also for ``crmkit --help``), and only for enabled plugins.
    Transaction: none. Returns: nothing; call ``cli.add_command(...)``. Inside a
    command, get the open CRM with :func:`crmkit.plugin.pass_crm`.

    Add a :func:`crmkit.plugin.lazy_command`: its name and one-line help are all
    ``crmkit --help`` needs, and the module holding the real command (and what it
    imports: SQLAlchemy, numpy ...) loads only when the command runs. A command or
    group added directly still works, but its module's imports then slow every
    ``crmkit`` run, ``--help`` included.

    Example::

        @crmkit.hookimpl
        def crmkit_register_commands(cli):
            help = "Points, tiers and rewards."  # the same as the group's docstring
            cli.add_command(lazy_command("loyalty", "crmkit_loyalty.cli:loyalty", help))
    """


@hookspec
def crmkit_register_template_dirs() -> Sequence[str]:
    """Return folders of Jinja2 templates to stack over the core's.

    When: once, when the CRM's template environment is first built.
    Transaction: none. Returns: a list of folder paths. Lookup order is the
    integrator's ``templates`` setting, then plugins' folders, then the
    core's; ``{% extends "default:customer_360.html" %}`` reaches the core's
    own copy of a template you override.

    Example::

        @crmkit.hookimpl
        def crmkit_register_template_dirs():
            return [str(Path(__file__).parent / "templates")]
    """


@hookspec
def crmkit_register_workflows() -> Sequence[WorkflowDefinition]:
    """Return workflow definitions (:class:`crmkit.core.workflow.WorkflowDefinition`).

    When: once, when the CRM opens. Transaction: none. Returns: a list of
    definitions; names must be unique across the core, the configuration
    file and every plugin (a clash is a configuration error naming both).
    ``WorkflowDefinition.from_dict`` builds one from TOML-shaped data.

    Example::

        @crmkit.hookimpl
        def crmkit_register_workflows():
            return [WorkflowDefinition.from_dict("complaint", COMPLAINT_FLOW)]
    """


@hookspec
def crmkit_register_attributes() -> Sequence[AttributeDefinition]:
    """Declare typed custom attributes of customers.

    When: once, when the CRM opens. Transaction: none. Returns: a list of
    :class:`crmkit.core.entities.AttributeDefinition` (type ``string``,
    ``integer``, ``decimal``, ``date``, ``boolean`` or ``choice``). Declared
    attributes are validated and converted on every write; undeclared ones
    are stored as text. A name declared twice with different types is a
    configuration error.

    Example::

        @crmkit.hookimpl
        def crmkit_register_attributes():
            return [AttributeDefinition("vip", "boolean", description="VIP customer")]
    """


@hookspec
def crmkit_register_settings() -> SettingsSpec:
    """Declare your settings: defaults and a validator.

    When: once, when the CRM opens, before any other hook of yours runs.
    Transaction: none. Returns: a :class:`crmkit.core.entities.SettingsSpec`
    whose ``name`` is the ``crmkit.toml`` table the integrator overrides it
    in. Unknown keys in that table, or a validator raising ``ValueError``,
    stop start-up with an error naming the file, table and key.

    Example::

        @crmkit.hookimpl
        def crmkit_register_settings():
            return SettingsSpec("loyalty", {"points_per_unit": 1})
    """


@hookspec
def crmkit_register_hookspecs() -> object:
    """Return the ``hookspecs`` module holding this plugin's own hooks.

    When: once, at plugin loading, after every enabled plugin is registered
    and before hook names are checked. Transaction: none. Returns: a module
    (or class) for ``PluginManager.add_hookspecs``, conventionally
    ``crmkit_<plugin>/hookspecs.py``. Name the hooks by the grammar
    (``crmkit_<plugin>_register_<things>``, ``crmkit_<plugin>_after_<things>_<done>``,
    ``crmkit_<plugin>_allow_<thing>``), type them, and give each the same
    When / Transaction / Returns / Example docstring as the core's. The module may
    set ``RENAMED_HOOKS = {"old_name": "new_name"}``: implementations under an old
    name are then called as the new hook, with a ``DeprecationWarning``.

    Example::

        # crmkit_hello/hookspecs.py
        @crmkit.plugin.hookspec
        def crmkit_hello_after_greetings_sent(ctx: HookContext, greetings: Sequence[str]) -> None:
            "..."

        # crmkit_hello/plugin.py
        @crmkit.hookimpl
        def crmkit_register_hookspecs():
            return hookspecs
    """


@hookspec
def crmkit_customer_360_section(crm: CRM, customer: Customer) -> Section | None:
    """Contribute one section of the customer 360 view.

    When: each time a customer's 360 view is built (``crmkit customer show``,
    ``crm.customers.view(id)``). Each plugin's implementation is called on its
    own (hook wrappers do not apply). Transaction: a read-only connection; reads
    never fire events. Returns: a :class:`crmkit.plugin.Section` (title,
    JSON-ready ``data``, optional HTML ``template``; set ``name`` to your
    plugin's name) or ``None`` when you have nothing for this customer.

    Rendering: HTML renders ``template`` with the section's data; the text form
    renders the sibling template with ``.txt`` instead of ``.html`` when you
    ship one (no HTML escaping), else a readable key/value list of ``data``.
    A section whose hook raises, returns something that is not a ``Section``, or
    whose template fails, becomes an error section naming your plugin (HTML,
    JSON and text); the rest of the view renders and the error is logged with
    its traceback (logger ``crmkit.core.view360`` / ``crmkit.cli.page360``).

    Example::

        @crmkit.hookimpl
        def crmkit_customer_360_section(crm, customer):
            balance = points_balance(crm, customer.id)
            if balance is not None:
                return Section("Loyalty", {"balance": balance},
                               template="loyalty/section.html")
    """


@hookspec
def crmkit_generate_demo_data(crm: CRM, rng: random.Random) -> str | None:
    """Add this plugin's demo data after the core's demo set is built.

    When: once per ``crmkit demo`` run, after the core's customers, orders,
    interactions and deals exist. Transaction: open your own writes through
    ``crm`` (each service call is its own transaction). ``rng`` is seeded:
    use only it for randomness so the demo reproduces. Returns: one line
    saying what you built, or ``None``.

    Example::

        @crmkit.hookimpl
        def crmkit_generate_demo_data(crm, rng):
            ids = [c.id for c in crm.customers.iterate()]
            for customer_id in rng.sample(ids, k=min(10, len(ids))):
                enrol(crm, customer_id)
            return "enrolled 10 customers in the demo program"
    """


@hookspec
def crmkit_export_personal_data(ctx: HookContext, customer: Customer) -> dict[str, Any] | None:
    """Return everything this plugin holds about ``customer``, JSON-ready.

    When: ``crm.customers.export(id)``. Transaction: the export's read
    transaction (``ctx.connection``). Returns: a JSON-ready dict, filed in the
    export as ``export["plugins"][<your plugin's name>]``, or ``None`` when you
    hold nothing (then your plugin does not appear under ``"plugins"``).
    Like erasure, the export loads an installed plugin that holds tables in the
    database even when it is not enabled: do not rely on your settings table
    being present in ``ctx.settings`` (use your defaults).

    Example::

        @crmkit.hookimpl
        def crmkit_export_personal_data(ctx, customer):
            rows = ctx.connection.execute(select(notes).where(notes.c.customer_id == customer.id))
            return {"notes": [row.text for row in rows]} or None
    """


@hookspec
def crmkit_erase_personal_data(ctx: HookContext, customer: Customer) -> None:
    """Remove or anonymise this plugin's personal data about ``customer``.

    When: ``crm.customers.erase(id)``, before the core anonymises the
    customer, and again whenever an erasure is re-run (it must be idempotent).
    Installed plugins that hold tables in the database are loaded for the
    erasure even when they are not enabled, so no personal data is left
    behind. Transaction: the erasure's transaction; raising aborts the
    whole erasure. Keep figures needed for statistics (amounts, counts) but
    drop what identifies the person. Returns: nothing.

    Example::

        @crmkit.hookimpl
        def crmkit_erase_personal_data(ctx, customer):
            ctx.connection.execute(delete(notes).where(notes.c.customer_id == customer.id))
    """


@hookspec
def crmkit_merge_customers(
    ctx: HookContext, kept: Customer, merged: Customer
) -> dict[str, Any] | None:
    """Move this plugin's data from ``merged`` (a duplicate) to ``kept``.

    When: ``crm.customers.merge(kept_id, merged_id)`` / ``crmkit customer merge``,
    after the core moved its own rows (interactions, orders, contacts, consent,
    attributes) and before ``merged`` is marked as merged into ``kept`` (it then
    takes no writes). Transaction: the merge's; raising aborts the whole merge,
    nothing moves. Join what must be joined (a points ledger and its balance,
    membership), re-link what belongs to the person (cases, sends), recompute
    what is derived. Returns: a JSON-ready summary of what moved (``{"entries":
    12, "points": 340}``), recorded with the merge, or ``None`` when you hold
    nothing about ``merged``.

    Example::

        @crmkit.hookimpl
        def crmkit_merge_customers(ctx, kept, merged):
            moved = ctx.connection.execute(
                update(notes).where(notes.c.customer_id == merged.id)
                .values(customer_id=kept.id)
            ).rowcount
            return {"notes": moved} if moved else None
    """


@hookspec
def crmkit_catch_up(ctx: HookContext, since: dt.datetime | None) -> str | None:
    """Reconcile this plugin with what changed in the core while it was not running.

    When: on the first write after the plugin is enabled again on a database
    that was written while it was disabled (``since`` is when it was last seen
    enabled), and on demand by ``crmkit plugins catch-up NAME`` (``since`` is
    ``None``: reconcile everything). Work from the core's records (orders and
    their statuses, customers), never from events you missed; it must be
    idempotent, because it may run more than once over the same changes.
    Transaction: its own write transaction (``ctx.connection``). Returns: one
    line saying what was reconciled (``"reversed 3 refunded orders"``), or
    ``None`` when nothing needed it.

    Example::

        @crmkit.hookimpl
        def crmkit_catch_up(ctx, since):
            refunded = refunded_orders_still_earning(ctx.connection)
            for order_id in refunded:
                reverse(ctx, order_id)
            return f"reversed {len(refunded)} refunded orders" if refunded else None
    """


@hookspec
def crmkit_customer_timeline(
    crm: CRM, customer: Customer, limit: int
) -> Sequence[TimelineEntry] | None:
    """Contribute entries to a customer's timeline (replies sent, cases opened ...).

    When: each time a customer's timeline is shown (the 360 view, ``crmkit
    interaction list --customer``). Transaction: a read-only connection
    (``crm.reading()``). Returns: at most ``limit`` of the customer's latest
    :class:`crmkit.plugin.TimelineEntry` (``at``, ``kind``, ``title``, ``body``,
    ``source``), newest first; the core merges them with the interactions by time.

    Example::

        @crmkit.hookimpl
        def crmkit_customer_timeline(crm, customer, limit):
            return [TimelineEntry(at=s.sent_at, kind="reply", title=s.subject,
                                  source="knowledgebase") for s in sends(crm, customer.id, limit)]
    """


# --------------------------------------------------------------------------
# Events: inside the write's transaction, after the rows are stored.
# --------------------------------------------------------------------------


@hookspec
def crmkit_after_customers_created(ctx: HookContext, customers: Sequence[Customer]) -> None:
    """Customers were created (one call per batch on bulk paths).

    Transaction: the creating transaction; raise to abort it. ``customers``
    carry their new ids. Returns: nothing.

    Example::

        @crmkit.hookimpl
        def crmkit_after_customers_created(ctx, customers):
            ctx.connection.execute(members.insert(), [{"customer_id": c.id} for c in customers])
    """


@hookspec
def crmkit_after_customers_updated(
    ctx: HookContext, customers: Sequence[Customer], previous: Sequence[Customer]
) -> None:
    """Customers were changed; ``previous[i]`` is ``customers[i]`` before the change.

    Transaction: the updating transaction; raise to abort it. Fired for
    edits, consent changes and erasure. Returns: nothing.

    Example::

        @crmkit.hookimpl
        def crmkit_after_customers_updated(ctx, customers, previous):
            lost = [c.id for c, p in zip(customers, previous)
                    if p.consent.get("marketing") and not c.consent.get("marketing")]
            ctx.connection.execute(delete(mailing).where(mailing.c.customer_id.in_(lost)))
    """


@hookspec
def crmkit_after_interactions_created(
    ctx: HookContext, interactions: Sequence[Interaction]
) -> None:
    """Interactions were logged (one call per batch on bulk paths).

    Transaction: the logging transaction; raise to abort it. Returns: nothing.

    Example::

        @crmkit.hookimpl
        def crmkit_after_interactions_created(ctx, interactions):
            for interaction in interactions:
                if interaction.channel == "email" and "complaint" in interaction.subject.lower():
                    ...  # open a complaint linked to the interaction
    """


@hookspec
def crmkit_after_orders_created(ctx: HookContext, orders: Sequence[Order]) -> None:
    """Orders were stored (one call per batch of an import, never per row).

    Transaction: the creating transaction; raise to abort it. Orders skipped
    because their ``external_id`` already existed are not included. An
    import's batch holds up to ``--batch-size`` orders (50,000 by default),
    each with its id, no lines and ``occurred_at`` in UTC; compare times as
    instants, never by zone. It arrives as a :class:`crmkit.StoredOrders`
    (API 1.1): its Order entities are built when first read, and
    ``orders.ids`` gives the ids without building them, for a listener that
    reads the batch back in SQL. Returns: nothing.

    Example::

        @crmkit.hookimpl
        def crmkit_after_orders_created(ctx, orders):
            paid = [o for o in orders if o.status == "paid"]
            ctx.connection.execute(points.insert(), [...])
    """


@hookspec
def crmkit_after_orders_updated(
    ctx: HookContext, orders: Sequence[Order], previous: Sequence[Order]
) -> None:
    """Orders changed (status to paid, refunded, cancelled, ...).

    ``previous[i]`` is ``orders[i]`` before the change. Transaction: the
    updating transaction; raise to abort it. Returns: nothing.

    Example::

        @crmkit.hookimpl
        def crmkit_after_orders_updated(ctx, orders, previous):
            refunded = [o for o, p in zip(orders, previous)
                        if o.status == "refunded" and p.status != "refunded"]
            reverse_points(ctx.connection, refunded)
    """


@hookspec
def crmkit_after_workflow_transitions(ctx: HookContext, transitions: Sequence[Transition]) -> None:
    """Workflow instances moved (or started: ``from_stage`` is ``None``).

    Transaction: the moving transaction; raise to abort it. Each
    :class:`crmkit.core.workflow.Transition` names the instance, workflow,
    stages, actor, time and reason. Returns: nothing.

    Example::

        @crmkit.hookimpl
        def crmkit_after_workflow_transitions(ctx, transitions):
            won = [t for t in transitions if t.workflow == "sales" and t.to_stage == "won"]
            ...
    """


@hookspec
def crmkit_after_commit(crm: CRM, changes: Any) -> None:
    """A write committed; do side effects that must not happen on rollback.

    When: right after the commit of any write that fired events. Transaction:
    none (the change is durable). ``changes`` is a
    :class:`crmkit.core.context.Changes` listing what the write stored, by
    kind. Errors here are reported but cannot undo the commit. Returns:
    nothing. Use it for notifications and e-mails.

    Example::

        @crmkit.hookimpl
        def crmkit_after_commit(crm, changes):
            for order in changes.orders_created:
                send_receipt(order)
    """


@hookspec
def crmkit_register_permissions() -> Sequence[PermissionSpec]:
    """Declare your plugin's permissions and which default roles hold them.

    When: once, when the CRM opens. Transaction: none. Returns: a sequence of
    :class:`crmkit.plugin.PermissionSpec`, each named ``<plugin>.<verb>``, with
    ``default_grants`` mapping a default role (``sales_rep``, ``sales_manager``,
    ``cost_accounting``, ``technical_support``, ``complaint_handler``, ``manager``) to a
    scope (``own``, ``team``, ``all``); ``admin`` holds every permission anyway. Check
    them in your service methods with ``crm.authorise("<plugin>.<verb>", resource)``;
    ``[roles.<name>]`` tables of crmkit.toml may change any role's grants.

    Example::

        @crmkit.hookimpl
        def crmkit_register_permissions():
            return [
                PermissionSpec("loyalty.read", "see members, balances and statements",
                               default_grants={"sales_rep": "own", "manager": "all"}),
                PermissionSpec("loyalty.adjust", "grant or take points by hand",
                               default_grants={"manager": "all"}),
            ]
    """


@hookspec
def crmkit_register_routes() -> Sequence[Route]:
    """Add HTTP API routes, mounted under ``/api/v1/<plugin>/``.

    When: once, when ``crmkit serve`` builds its application. Transaction: none here; a
    route's handler runs in a worker thread with the request's actor bound
    (``crm.acting_as``), so the service methods it calls authorise and audit as that
    actor. Returns: a sequence of :class:`crmkit.plugin.Route`; their paths are relative
    to the plugin's prefix, their body/query/response attrs classes go into the OpenAPI
    document, and every route sits behind the same sign-in (unless ``public=True``),
    body limits and problem documents as the core's.

    Example::

        @crmkit.hookimpl
        def crmkit_register_routes():
            return [Route("GET", "/members/{customer_id:int}", get_member,
                          summary="A member's balance and tier", response=Member)]
    """


@hookspec
def crmkit_permission_allowed(
    crm: CRM, actor: Actor, action: str, resource: Resource | None
) -> bool | str | None:
    """Add a rule to every permission check: refuse with ``False`` or a reason.

    When: on every ``crm.authorise(action, resource)``, after the actor's roles granted
    the permission (and a token's scopes allowed it). Transaction: the caller's, if any
    (read through ``crm.reading()``). Returns: ``None`` or ``True`` for no objection;
    ``False`` or a non-empty string refuses (the string is the reason shown). Every
    plugin is asked; any refusal wins. Keep it cheap: it runs on every service call.

    Example::

        @crmkit.hookimpl
        def crmkit_permission_allowed(crm, actor, action, resource):
            if action == "customers.erase" and actor.kind == "token":
                return "erasure is not allowed through API tokens"
    """


# --------------------------------------------------------------------------
# Vetoes: every plugin answers; the first reason refuses.
# --------------------------------------------------------------------------


@hookspec
def crmkit_allow_transition(
    ctx: HookContext, instance: WorkflowInstance, to_stage: str
) -> str | None:
    """Refuse a workflow transition by returning the reason, or allow it with ``None``.

    When: before a transition is stored, after the engine's own checks
    (allowed move, roles, required fields). Transaction: the moving
    transaction. Returns: ``None`` (or ``""`` or ``False``) to allow; a
    non-empty string refuses, and the user sees it as the reason. Every
    enabled plugin is asked, whatever the others answered; the first reason,
    in hook call order, is the one shown.

    Example::

        @crmkit.hookimpl
        def crmkit_allow_transition(ctx, instance, to_stage):
            if to_stage == "won" and not instance.value:
                return "a won deal needs a value"
    """
