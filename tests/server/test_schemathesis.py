"""OpenAPI-driven property test: schemathesis against a live ``crmkit serve`` (SQLite).

Loads the server's own ``/api/v1/openapi.json`` and runs every operation with a bounded,
derandomized set of generated requests (explicit examples and generation only: no
shrinking, no coverage or stateful phases), authenticated as an admin with an API token.
Checks: no 5xx, every response's status is one the document declares, and every body
matches the declared schema. A few records exist first so generated ids sometimes hit
something. The budget: ``MAX_EXAMPLES`` per operation keeps the module around a minute.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import crmkit
from crmkit.core import identity
from crmkit.testing import start_server

MAX_EXAMPLES = 6
#: every plugin shipped with crmkit: their routes are in the document too
PLUGINS = ["loyalty", "complaints", "knowledgebase", "segmentation"]
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: Any) -> Iterator[dict[str, Any]]:
    """A seeded SQLite database behind ``crmkit serve``; its URL and an admin token."""
    folder = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{folder / 'crm.db'}"
    with crmkit.open(url, plugins=PLUGINS, upgrade=True) as crm:
        crm.staff.add("root", "Root", roles=["admin"])
        crm.staff.add("rep", "Rep", roles=["sales_rep"])
        for n in range(1, 4):
            customer = crm.customers.add(
                name=f"Org {n}", type="organisation", owner="rep", region="east"
            )
            crm.customers.add_contact(customer.id, f"Contact {n}")
            crm.interactions.log(customer.id, "phone", subject=f"call {n}")
            crm.orders.add(customer_id=customer.id, amount=Decimal("10.00"), status="paid",
                           occurred_at=dt.datetime(2026, 1, n, tzinfo=dt.UTC))  # fmt: skip
            crm.workflows.start("sales", customer.id, title=f"Deal {n}")
        # ids 1-5 are decoys, so a generated "revoke token 1" leaves the caller's alone
        for n in range(5):
            identity.create_token(crm, "rep", scopes=["customers.read"], name=f"decoy{n}")
        token = identity.create_token(crm, "root", scopes=["*"], name="schemathesis")[0]
    config = folder / "crmkit.toml"
    config.write_text(f'database = "{url}"\nplugins = {json.dumps(PLUGINS)}\n')
    server = start_server(config, cwd=folder)
    try:
        yield {"url": server.url, "token": token}
    finally:
        server.stop()


def _run_operation(
    operation: Any, mode: Any, url: str, headers: dict[str, str], statuses: list[int]
) -> None:
    """Generated requests of one operation in one mode, each sent and validated; the
    statuses answered are appended to ``statuses``."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=headers)
        statuses.append(response.status_code)
        checks = CHECKS if mode == GenerationMode.POSITIVE else [*CHECKS, negative_data_rejection]
        case.validate_response(response, checks=checks, headers=headers)

    run()


@pytest.mark.slow
def test_api_conforms_to_its_openapi_document(live_api: dict[str, Any]) -> None:
    """Every operation of the document: positive data (valid by the schema) and negative
    data (invalid: must be refused with a 4xx, never a 5xx), a few examples each."""
    url = live_api["url"]
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {live_api['token']}"}
    failures: list[str] = []
    operations = 0
    answered: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            statuses = answered.setdefault(f"{operation.label} ({mode.value})", [])
            try:
                _run_operation(operation, mode, url, headers, statuses)
            except Unsatisfiable:  # no invalid value exists for it (a free-text path segment)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect all
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
    assert operations >= 20, f"only {operations} operations in the OpenAPI document"
    # the caller really is authenticated and allowed: the core's lists answered 200
    for path in ("customers", "orders", "interactions", "staff", "audit"):
        assert any(s == 200 for s in answered[f"GET /api/v1/{path} (positive)"]), answered
    refused = [k for k, v in answered.items() if 401 in v and "/auth/login" not in k]
    assert not refused, f"the admin's token was refused (401) by: {refused}"
    assert not failures, f"{len(failures)} failing:\n\n" + "\n\n".join(failures)
