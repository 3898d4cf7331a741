from __future__ import annotations

from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty.testing import at, program


@pytest.fixture
def club(make_crm: Any) -> Any:
    """(crm, service, customer) with the club program loaded and the customer enrolled."""
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program())
    alice = crm.customers.add(name="Alice Li", email="alice@example.com")
    service.enrol(alice.id, at=at(2025, 1, 1))
    return crm, service, alice
