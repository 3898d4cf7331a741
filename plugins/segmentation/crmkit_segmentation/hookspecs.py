"""The hooks the segmentation plugin publishes, and the entities they pass.

Another plugin implements them with ``@crmkit.hookimpl(optionalhook=True)`` (so it still
loads without this plugin) and asks the query hooks through ``crm.call(name, ...)`` after
``crm.has_hook(name)``; it never imports this package. The attrs classes
``crmkit_segmentation.hookspecs.SegmentChange`` and ``Pack`` document the shapes passed and
returned; a plugin reads their attributes (or returns plain dicts) without importing them.

Value-pyramid tier labels, exactly: the keys of the ``pyramid_shares`` setting in its
order, top tier first, then ``small`` (the rest). With the default setting they are
``vip``, ``major``, ``ordinary`` and ``small``, all lowercase. A snapshot keeps the labels
of the settings it was taken with. To know whether a customer is in the top tier, ask
:func:`crmkit_segmentation_vip_customers` rather than comparing a label.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.plugin import hookspec

if TYPE_CHECKING:  # for annotations only
    from crmkit.plugin import CRM, HookContext

#: Implementations under the old names still work, with a ``DeprecationWarning``, until
#: crmkit API 1.3.
RENAMED_HOOKS: dict[str, str] = {
    "crmkit_segmentation_segments_changed": "crmkit_segmentation_after_segments_changed",
    "crmkit_segmentation_packs": "crmkit_segmentation_register_packs",
}

#: ``classify(crm, as_of, scope)``: one row per classified customer, each a dict with
#: ``customer_id`` and ``segment`` (plus any figures worth showing); ``scope`` is the
#: ``--scope`` filters as ``{field: value}``.
Classifier = Callable[["CRM", dt.date, dict[str, str]], list[dict[str, Any]]]


@attrs.frozen
class SegmentChange:
    """One customer's move between two snapshots of a scheme."""

    #: the customer (``customers.id``)
    customer_id: int
    #: the scheme both snapshots are of: ``rfm``, ``abc``, ``pyramid`` or a pack name
    scheme: str
    #: the segment in the previous snapshot; ``None``: the customer was not in it
    from_segment: str | None
    #: the segment in the new snapshot; ``None``: the customer is not in it
    to_segment: str | None
    #: the new snapshot (``segmentation_snapshots.id``)
    snapshot_id: int
    #: the snapshot it is compared with: the latest of the same scheme and scope
    previous_snapshot_id: int
    #: the day the new snapshot classifies for
    as_of: dt.date


@attrs.frozen
class Pack:
    """An industry pack: a named classification that is also a snapshot scheme.

    A plugin may return this shape as a plain dict (or any object with these attributes);
    only ``name`` and ``classify`` are required.
    """

    #: the pack's name, also its scheme name; not ``rfm``, ``abc`` or ``pyramid``
    name: str
    #: a short title for reports (default: the name)
    title: str
    #: one line on what it classifies by (default: empty)
    description: str
    #: the classification, see :data:`Classifier`
    classify: Classifier
    #: segment names, best first (optional): they order movement matrices and let an empty
    #: segment be exported
    labels: tuple[str, ...] = ()


@hookspec(firstresult=True)
def crmkit_segmentation_current_segments(
    crm: CRM, customer_ids: Sequence[int]
) -> dict[int, dict[str, str]]:
    """Each customer's current segment per scheme, from the latest snapshots.

    When: on demand. Transaction: none (reads through ``crm.reading()``, so it joins a
    running transaction). Returns: ``{customer_id: {scheme: segment}}`` for every id asked,
    ``{}`` for a customer in no snapshot. For each scheme the segment is the customer's
    membership in the latest snapshot (by as-of, then id) that includes them; pyramid tiers
    carry the exact labels described above (``vip`` ... ``small`` by default).

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_segmentation_current_segments(crm, customer_ids):
            # a plugin keeping its own classification answers instead of the snapshots
            return {cid: {"rfm": my_rfm_segment(crm, cid)} for cid in customer_ids}
    """


@hookspec(firstresult=True)
def crmkit_segmentation_vip_customers(crm: CRM, customer_ids: Sequence[int]) -> set[int]:
    """The customers among ``customer_ids`` who are in the top value-pyramid tier.

    When: on demand (the complaints plugin asks it to give VIP complaints top priority).
    Transaction: none (reads through ``crm.reading()``). Returns: the set of those ids
    whose current pyramid tier, in the latest ``pyramid`` snapshot (by as-of, then id) that
    includes them, is that snapshot's top tier (the first key of its ``pyramid_shares``,
    ``vip`` by default), whatever the tier is called. Customers in no pyramid snapshot are
    not VIPs; an empty set when none is. Use the answer, never a tier label.

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_segmentation_vip_customers(crm, customer_ids):
            # a plugin that knows its VIPs from elsewhere answers first
            return {cid for cid in customer_ids if cid in my_vip_list(crm)}
    """


@hookspec
def crmkit_segmentation_after_segments_changed(
    ctx: HookContext, changes: Sequence[SegmentChange]
) -> None:
    """Event: customers whose segment changed between two snapshots of a scheme.

    When: ``crmkit segment snapshot`` (or ``take_snapshot``), once per snapshot, only when a
    previous snapshot of the same scheme and scope exists (the latest whose as-of is on or
    before the new one's) and only for the customers whose segment differs, entering and
    leaving customers included. Transaction: the snapshot's, before its commit; raising
    stores nothing of the snapshot. Returns: nothing. ``changes`` is a sequence of
    :class:`SegmentChange`: ``customer_id, scheme, from_segment, to_segment, snapshot_id,
    previous_snapshot_id, as_of`` (``None`` as a segment means not in that snapshot).

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_segmentation_after_segments_changed(ctx, changes):
            for change in changes:
                if change.scheme == "rfm" and change.to_segment == "at risk":
                    ctx.connection.execute(
                        win_back_tasks.insert(), {"customer_id": change.customer_id}
                    )
    """


@hookspec
def crmkit_segmentation_register_packs() -> (
    Pack | Mapping[str, Any] | Sequence[Pack | Mapping[str, Any]] | None
):
    """Contribute industry packs.

    When: whenever packs are listed or run (``crmkit segment packs``, ``segment pack``,
    snapshots of a pack's scheme). Transaction: none. Returns: one :class:`Pack`, or a list
    of them, as plain dicts or objects with ``name``, ``title``, ``description``,
    ``classify(crm, as_of, scope) -> list[dict]`` (each row has ``customer_id`` and
    ``segment``) and optionally ``labels`` (segment names, best first); ``None`` for none.
    Pack names are also snapshot schemes; two packs with one name, or a pack named
    ``rfm``, ``abc`` or ``pyramid``, are a configuration error.

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_segmentation_register_packs():
            return [{"name": "education", "title": "Education",
                     "description": "students and staff", "classify": classify_students,
                     "labels": ["student", "staff"]}]
    """
