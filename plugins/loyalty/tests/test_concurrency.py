"""Two (or more) processes redeeming from one member at the same moment, on both backends.

Each process opens its own CRM on the same database and waits at a barrier, then
redeems; the member's points can be spent only once.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty.testing import assert_consistent, at, pay

import crmkit


def _redeem(url: str, customer_id: int, barrier: Any, results: Any) -> None:
    crm = crmkit.open(url, plugins=["loyalty"])
    try:
        service = loyalty(crm)
        service.program("club")  # warm up (parse, connect) before the race
        barrier.wait(timeout=60)
        try:
            service.redeem(customer_id, "mug", program="club")
            results.put("ok")
        except crmkit.CrmError as exc:
            results.put(f"refused: {exc}")
    finally:
        crm.close()


@pytest.mark.parametrize(("balance", "racers", "winners"), [(100, 2, 1), (250, 6, 2)])
def test_parallel_redemptions_never_spend_the_same_points(
    club, database_url: str, balance: int, racers: int, winners: int
) -> None:
    crm, service, alice = club
    pay(crm, alice.id, str(balance), at(2025, 1, 1))
    assert service.balance(alice.id) == balance
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(racers)
    results = context.Queue()
    processes = [
        context.Process(target=_redeem, args=(database_url, alice.id, barrier, results))
        for _ in range(racers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert outcomes.count("ok") == winners, outcomes
    assert all("has" in o and "points" in o for o in outcomes if o != "ok"), outcomes
    assert service.balance(alice.id) == balance - 100 * winners
    assert service.balance(alice.id) >= 0
    assert_consistent(service)
