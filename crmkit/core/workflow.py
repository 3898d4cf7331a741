"""Workflow definitions as data, and the records the engine keeps.

A definition lists stages; each stage says who is responsible (roles), what
to do next (a checklist), which fields must be set to enter it, where it may
go next, and whether it ends the workflow. Definitions come from TOML (the
``[workflows.<name>]`` tables of ``crmkit.toml``, or a file) and from plugins
(``crmkit_register_workflows``). The sales pipeline is the built-in
``sales`` workflow (``crmkit/core/workflows/sales.toml``).

TOML shape::

    [workflows.onboarding]
    title = "Customer onboarding"
    initial = "welcome"

    [[workflows.onboarding.stages]]
    name = "welcome"
    roles = ["account_manager"]
    next_steps = ["Call the customer", "Send the welcome pack"]
    to = ["training"]

    [[workflows.onboarding.stages]]
    name = "training"
    required_fields = ["trainer"]
    to = ["done"]

    [[workflows.onboarding.stages]]
    name = "done"
    terminal = true
    outcome = "won"
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from crmkit.errors import ConfigError

OUTCOMES = ("won", "lost", None)


@attrs.frozen
class Stage:
    """One stage of a workflow: who may move it on (``roles``), the fields it needs,
    where it may go (``to``), whether it ends the instance."""

    name: str
    title: str = ""
    roles: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    required_fields: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    terminal: bool = False
    outcome: str | None = None  # "won" or "lost" for terminal stages that count in conversion


@attrs.frozen
class WorkflowDefinition:
    """A workflow (the sales pipeline is one): its stages and the initial stage, read from TOML."""

    name: str
    stages: tuple[Stage, ...]
    initial: str
    title: str = ""
    source: str = "config"

    def stage(self, name: str) -> Stage:
        """The stage called ``name``; raises :class:`ValidationError` for an unknown one."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def stage_names(self) -> list[str]:
        """The stages' names in definition order."""
        return [s.name for s in self.stages]

    @classmethod
    def from_dict(
        cls, name: str, data: dict[str, Any], source: str = "config"
    ) -> WorkflowDefinition:
        """Build and check a definition from TOML-shaped data; errors name the key."""
        where = f"{source}: workflows.{name}"

        def fail(message: str) -> ConfigError:
            return ConfigError(f"{where}: {message}")

        known = {"title", "initial", "stages"}
        if unknown := set(data) - known:
            raise fail(f"unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        raw_stages = data.get("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            raise fail("needs a non-empty list of [[stages]]")
        stages = [_stage_from_dict(i, raw, fail) for i, raw in enumerate(raw_stages)]
        names = [s.name for s in stages]
        _check_links(stages, names, fail)
        initial = data.get("initial", names[0])
        if initial not in names:
            raise fail(f"initial stage {initial!r} is not one of its stages")
        return cls(
            name=name,
            stages=tuple(stages),
            initial=initial,
            title=str(data.get("title", name.replace("_", " ").title())),
            source=source,
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> list[WorkflowDefinition]:
        """Read every ``[workflows.<name>]`` table of a TOML file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read workflow file {path}: {exc}") from None
        return [cls.from_dict(n, d, source=str(path)) for n, d in data.get("workflows", {}).items()]


_STAGE_KEYS = frozenset(f.name for f in attrs.fields(Stage))


def _stage_from_dict(index: int, raw: Any, fail: Callable[[str], ConfigError]) -> Stage:
    """Stage number ``index`` (from 0) of a definition, checked; errors through ``fail``."""
    if not isinstance(raw, dict) or not raw.get("name"):
        raise fail(f"stage {index + 1} needs a name")
    if unknown := set(raw) - _STAGE_KEYS:
        raise fail(f"stage {raw['name']!r}: unknown keys {sorted(unknown)}")
    if raw.get("outcome") not in OUTCOMES:
        raise fail(f"stage {raw['name']!r}: outcome must be 'won' or 'lost'")
    return Stage(
        name=str(raw["name"]),
        title=str(raw.get("title", "")) or str(raw["name"]).replace("_", " ").title(),
        roles=tuple(raw.get("roles", ())),
        next_steps=tuple(raw.get("next_steps", ())),
        required_fields=tuple(raw.get("required_fields", ())),
        to=tuple(raw.get("to", ())),
        terminal=bool(raw.get("terminal", False)),
        outcome=raw.get("outcome"),
    )


def _check_links(stages: list[Stage], names: list[str], fail: Callable[[str], ConfigError]) -> None:
    """Stage names are unique, every stage goes to known stages or ends the workflow."""
    if len(set(names)) != len(names):
        raise fail("stage names must be unique")
    for stage in stages:
        for target in stage.to:
            if target not in names:
                raise fail(f"stage {stage.name!r} goes to unknown stage {target!r}")
        if not stage.to and not stage.terminal:
            raise fail(f"stage {stage.name!r} has no 'to' stages and is not terminal")


@attrs.define
class WorkflowInstance:
    """One run of a workflow for a customer (a deal, a complaint, ...)."""

    workflow: str
    customer_id: int
    title: str
    stage: str
    created_at: dt.datetime
    stage_entered_at: dt.datetime
    value: Decimal | None = None
    due_on: dt.date | None = None
    owner: str | None = None
    fields: dict[str, Any] = attrs.field(factory=dict)
    closed_at: dt.datetime | None = None
    id: int | None = None


@attrs.frozen
class Transition:
    """One recorded move: who moved which instance from where to where, when and why."""

    instance_id: int
    workflow: str
    from_stage: str | None
    to_stage: str
    actor: str | None
    at: dt.datetime
    reason: str = ""
    id: int | None = None


@attrs.frozen
class StageFigures:
    """Time-in-stage and conversion figures of one stage."""

    stage: str
    entered: int
    current: int
    left: int
    mean_hours_in_stage: float | None
    won: int
    conversion: float | None  # share of instances that entered this stage and were won
