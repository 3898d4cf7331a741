"""SLA policies: which policy governs a complaint, validating and storing policies, and
re-applying them (and the calendar) to open complaints without losing accrued or paused
time.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, bindparam, insert, select, update

from crmkit.plugin import CHANNELS, ValidationError
from crmkit_complaints import sla
from crmkit_complaints import tables as t
from crmkit_complaints.access import audit_batch
from crmkit_complaints.records import Policy, as_complaint

if TYPE_CHECKING:
    from crmkit_complaints.service import ComplaintService

#: complaints read and written per round trip by :func:`recompute`
RECOMPUTE_PAGE = 5000


def policies(svc: ComplaintService, connection: Any = None) -> dict[tuple[str, str], Policy]:
    found = {(p["priority"], p["channel"]): Policy(**p) for p in svc.settings["sla_policies"]}
    query = select(t.sla_policies)
    if connection is None:
        with svc.crm.reading() as connection:
            rows = connection.execute(query).all()
    else:
        rows = connection.execute(query).all()
    for row in rows:
        values = {k: v for k, v in row._mapping.items() if k != "id"}
        found[(row.priority, row.channel)] = Policy(**values)
    return found


def policy_for(
    svc: ComplaintService, priority: str, channel: str, connection: Any = None
) -> Policy:
    return governing(policies(svc, connection), priority, channel)


def governing(table: Mapping[tuple[str, str], Policy], priority: str, channel: str) -> Policy:
    """The policy for ``priority`` and ``channel``: exact, priority, channel, fallback."""
    for key in ((priority, channel), (priority, "*"), ("*", channel), ("*", "*")):
        if key in table:
            return table[key]
    raise ValidationError(  # settings validation guarantees a ("*", "*") policy
        "no SLA policy matches; add one for priority '*' and channel '*'"
    )


def targets(policy: Policy) -> dict[str, Any]:
    """A policy's targets as stored on a complaint (round: 0.29 h is 1044 s, not 1043)."""
    return {
        "first_response_target_s": round(policy.first_response_hours * 3600),
        "resolution_target_s": round(policy.resolution_hours * 3600),
        "warn_ratio": policy.warn_ratio,
        "clock": policy.clock,
    }


def check_policy(raw: Mapping[str, Any], settings: Mapping[str, Any], where: str) -> Policy:
    """A policy from settings or the command line, validated (ValidationError naming
    ``where`` and the key)."""
    keys = {f.name for f in attrs.fields(Policy)}
    if unknown := set(raw) - keys:
        raise ValidationError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(keys)}")
    priority, channel = raw.get("priority", "*"), raw.get("channel", "*")
    if priority != "*" and priority not in settings["priorities"]:
        raise ValidationError(
            f"{where}: priority {priority!r} is not one of {settings['priorities']} or '*'"
        )
    if channel != "*" and channel not in CHANNELS:
        raise ValidationError(f"{where}: channel {channel!r} is not one of {CHANNELS} or '*'")
    for key in ("first_response_hours", "resolution_hours"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValidationError(f"{where}: {key} must be a positive number of hours")
    ratio = raw.get("warn_ratio", 0.75)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise ValidationError(f"{where}: warn_ratio must be above 0 and at most 1")
    clock = raw.get("clock", "business")
    if clock not in ("business", "wall"):
        raise ValidationError(f"{where}: clock must be 'business' or 'wall'")
    return Policy(
        priority=priority,
        channel=channel,
        first_response_hours=float(raw["first_response_hours"]),
        resolution_hours=float(raw["resolution_hours"]),
        warn_ratio=float(ratio),
        clock=clock,
    )


def set_policy(
    svc: ComplaintService,
    priority: str,
    channel: str,
    *,
    first_response_hours: float,
    resolution_hours: float,
    warn_ratio: float = 0.75,
    clock: str = "business",
) -> int:
    policy = check_policy(
        {
            "priority": priority,
            "channel": channel,
            "first_response_hours": first_response_hours,
            "resolution_hours": resolution_hours,
            "warn_ratio": warn_ratio,
            "clock": clock,
        },
        svc.settings,
        "policy",
    )
    with svc.crm.transaction() as ctx:
        ctx.connection.execute(
            t.sla_policies.delete().where(
                and_(t.sla_policies.c.priority == priority, t.sla_policies.c.channel == channel)
            )
        )
        ctx.connection.execute(insert(t.sla_policies), attrs.asdict(policy))
        # the calendar is unchanged: complaints whose targets stay the same keep their dues
        changed = recompute(svc, priority=priority, channel=channel, targets_only=True)
        ctx.audit(
            "complaints.policy",
            "sla_policy",
            f"{priority}/{channel}",
            after={**attrs.asdict(policy), "complaints_recomputed": changed},
        )
        return changed


def recompute(
    svc: ComplaintService,
    *,
    priority: str = "*",
    channel: str = "*",
    targets_only: bool = False,
    page: int = RECOMPUTE_PAGE,
) -> int:
    c = t.complaints
    with svc.crm.transaction() as ctx:
        conn = ctx.connection
        table = policies(svc, conn)
        query = select(c).where(c.c.closed_at.is_(None)).order_by(c.c.id).limit(page)
        if priority != "*":
            query = query.where(c.c.priority == priority)
        if channel != "*":
            query = query.where(c.c.channel == channel)
        if conn.dialect.name == "postgresql":  # a concurrent move must not be overwritten
            query = query.with_for_update()
        changed, last = 0, 0
        while rows := conn.execute(query.where(c.c.id > last)).all():
            last = rows[-1].id
            log = sla.pause_log(conn, rows[0].id, last, ended_only=True)
            updates = [
                found
                for row in rows
                if (found := _recomputed(svc, row, table, log, targets_only)) is not None
            ]
            if updates:
                keys = [k for k in updates[0] if k != "_id"]
                conn.execute(
                    update(c)
                    .where(c.c.id == bindparam("_id"))
                    .values({k: bindparam(k) for k in keys}),
                    updates,
                )
            changed += len(updates)
        if changed:
            counts = {"priority": priority, "channel": channel, "complaints": changed}
            audit_batch(ctx, "complaints.recompute", "sla_policy", None, counts=counts)
        return changed


def _recomputed(
    svc: ComplaintService,
    row: Any,
    table: Mapping[tuple[str, str], Policy],
    log: Mapping[int, sla.PauseLog],
    targets_only: bool,
) -> dict[str, Any] | None:
    """A complaint row's new targets, paused time and dues (``_id``: its id), or None
    when nothing changes."""
    old = as_complaint(row)
    new_targets = targets(governing(table, old.priority, old.channel))
    if targets_only and all(getattr(old, k) == v for k, v in new_targets.items()):
        return None
    cal = sla.clock(svc, new_targets["clock"])
    paused = sum((cal.duration(a, b) for a, b, _ in log.get(old.id, ())), sla.ZERO)
    new = attrs.evolve(old, **new_targets, paused_us=sla.microseconds(paused))
    values = {**new_targets, "paused_us": new.paused_us, **sla.dues(svc, new)}
    if all(getattr(old, k) == v for k, v in values.items()):
        return None
    return {"_id": old.id, **values}
