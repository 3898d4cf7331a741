"""The hook contract's rules that span plugins: vetoes ask everyone, renamed hooks keep working."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

import crmkit
import crmkit.plugin as ck


def _deal(crm):
    crm.staff.add("rep", "Rita Rep", roles=["sales_rep"])
    customer = crm.customers.add(name="Acme", type="organisation", kind="enterprise")
    return crm.workflows.start("sales", customer.id, "Acme fleet", owner="rep", actor="rep")


class AllowsWithEmptyString:
    CRMKIT_NAME = "lenient"

    @crmkit.hookimpl(tryfirst=True)
    def crmkit_allow_transition(self, ctx, instance, to_stage):
        return ""  # means "allow"; with firstresult this hid every later veto


class AllowsWithFalse:
    CRMKIT_NAME = "lenient2"

    @crmkit.hookimpl(tryfirst=True)
    def crmkit_allow_transition(self, ctx, instance, to_stage):
        return False


class RefusesLost:
    CRMKIT_NAME = "strict"

    @crmkit.hookimpl(trylast=True)
    def crmkit_allow_transition(self, ctx, instance, to_stage):
        return "lost deals need a reason" if to_stage == "lost" else None


@pytest.mark.parametrize("lenient", [AllowsWithEmptyString, AllowsWithFalse])
def test_a_veto_is_not_hidden_by_another_plugins_empty_answer(make_crm, lenient):
    crm = make_crm(plugins=[lenient(), RefusesLost()])
    deal = _deal(crm)
    with pytest.raises(crmkit.TransitionRefused, match="lost deals need a reason"):
        crm.workflows.move(deal.id, "lost", actor="rep")
    assert crm.workflows.get(deal.id).stage == "need_discovery"  # nothing stored
    moved = crm.workflows.move(deal.id, "presentation", actor="rep")
    assert moved.stage == "presentation"


def _publisher_module() -> types.ModuleType:
    """A plugin that publishes a renamed hook, as a bundled plugin's hookspecs.py does."""
    specs = types.ModuleType("crmkit_renamer_hookspecs")

    @ck.hookspec
    def crmkit_renamer_after_things_done(ctx: ck.HookContext, things: list[str]) -> None:
        """Event."""

    specs.crmkit_renamer_after_things_done = crmkit_renamer_after_things_done
    specs.RENAMED_HOOKS = {"crmkit_renamer_things_done": "crmkit_renamer_after_things_done"}

    plugin = types.ModuleType("crmkit_renamer")
    plugin.CRMKIT_API = ">=1.2,<2"

    @ck.hookimpl
    def crmkit_register_hookspecs():
        return specs

    @ck.hookimpl
    def crmkit_after_customers_created(ctx, customers):
        ctx.crm.hook.crmkit_renamer_after_things_done(ctx=ctx, things=[c.name for c in customers])

    plugin.crmkit_register_hookspecs = crmkit_register_hookspecs
    plugin.crmkit_after_customers_created = crmkit_after_customers_created
    sys.modules.setdefault("crmkit_renamer", plugin)
    return plugin


class OldName:
    CRMKIT_NAME = "old_listener"

    def __init__(self):
        self.seen: list[str] = []

    @crmkit.hookimpl
    def crmkit_renamer_things_done(self, ctx, things):
        self.seen.extend(things)


class NewName:
    CRMKIT_NAME = "new_listener"

    def __init__(self):
        self.seen: list[str] = []

    @crmkit.hookimpl
    def crmkit_renamer_after_things_done(self, ctx, things):
        self.seen.extend(things)


def test_an_implementation_under_a_renamed_hooks_old_name_still_runs_with_a_warning(make_crm):
    old, new = OldName(), NewName()
    with pytest.warns(DeprecationWarning, match="crmkit_renamer_things_done, which is now"):
        crm = make_crm(plugins=[_publisher_module(), old, new])
    crm.customers.add(name="Li Na")
    assert old.seen == ["Li Na"]
    assert new.seen == ["Li Na"]  # called once each: the old name is not a second hook
    status = next(s for s in crm.plugin_statuses if s.name == "old_listener")
    assert "crmkit_renamer_after_things_done" in status.hooks


def test_the_new_name_alone_gives_no_warning(make_crm):
    new = NewName()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        crm = make_crm(plugins=[_publisher_module(), new])
    crm.customers.add(name="Wang Wei")
    assert new.seen == ["Wang Wei"]


def test_an_old_name_without_its_publisher_is_a_misspelt_hook(make_crm):
    with pytest.raises(crmkit.PluginError, match="crmkit_renamer_things_done"):
        make_crm(plugins=[OldName()])
