from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.fixture
def setup(make_crm: Any) -> Any:
    crm = make_crm(plugins=["complaints"])
    crm.staff.add("boss", "Bea Boss", roles=["manager"])
    crm.staff.add("ann", "Ann Agent", roles=["complaint_handler"], manager="boss")
    crm.staff.add("sam", "Sam Sales", roles=["sales"])
    alice = crm.customers.add(name="Alice Li", email="alice@example.com")
    vip = crm.customers.add(name="Victor VIP", attributes={"vip": True})
    return crm, alice, vip
