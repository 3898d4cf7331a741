"""Workflow instances are owned by active staff only."""

import pytest

import crmkit


def test_a_deactivated_staff_member_cannot_own_a_workflow_instance(make_crm):
    crm = make_crm()
    crm.staff.add("rep", "Rita Rep", roles=["sales_rep"])
    crm.staff.add("gone", "Gone Rep", roles=["sales_rep"])
    customer = crm.customers.add(name="Acme", type="organisation", kind="enterprise")
    deal = crm.workflows.start("sales", customer.id, "Fleet", owner="rep", actor="rep")
    crm.staff.deactivate("gone")
    with pytest.raises(crmkit.Conflict, match="gone"):
        crm.workflows.start("sales", customer.id, "Vans", owner="gone", actor="rep")
    with pytest.raises(crmkit.Conflict, match="gone"):
        crm.workflows.update(deal.id, owner="gone")
    assert crm.workflows.get(deal.id).owner == "rep"
