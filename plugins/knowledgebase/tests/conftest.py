from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crmkit_knowledgebase import service
from crmkit_knowledgebase.evaluate import read_labelled
from crmkit_knowledgebase.plugin import SAMPLES
from crmkit_knowledgebase.transfer import import_dir

import crmkit
from crmkit.testing import create_postgres_database, drop_postgres_database, postgres_server_url

DATA = Path(__file__).parent / "data"

#: the fields the stand-in for the complaints plugin declares for ``complaint``
COMPLAINT_FIELDS = ("id", "customer_id", "category", "channel", "description", "tracking_code",
                    "received_at")  # fmt: skip


class ComplaintVariables:
    """Stands in for the complaints plugin: contributes the ``complaint`` template variable."""

    CRMKIT_API = ">=1.0,<2"

    @staticmethod
    @crmkit.hookimpl(optionalhook=True)
    def crmkit_knowledgebase_register_template_variables() -> dict[str, dict[str, str]]:
        return {"complaint": {f: f"the complaint's {f}" for f in COMPLAINT_FIELDS}}


@pytest.fixture
def kb(make_crm: Any) -> Any:
    """The knowledge base of a CRM with only this plugin enabled."""
    return service(make_crm(plugins=["knowledgebase"]))


@pytest.fixture
def complaint_variables() -> type:
    """A plugin (a class) contributing the ``complaint`` template variable."""
    return ComplaintVariables


@pytest.fixture
def kb_complaint(make_crm: Any) -> Any:
    """The knowledge base of a CRM where a plugin contributes the ``complaint`` variable."""
    return service(make_crm(plugins=["knowledgebase", ComplaintVariables]))


@pytest.fixture
def samples(kb: Any) -> Any:
    """The knowledge base with the shipped sample articles and reply templates."""
    counts = import_dir(kb, SAMPLES, author="setup")
    assert counts["articles_created"] == 23 and counts["templates_created"] == 20
    return kb


@pytest.fixture
def second_kb(crmkit_backend: str, tmp_path: Path) -> Iterator[Any]:
    """A knowledge base on a second, empty database of the same backend (for round trips)."""
    server = postgres_server_url()
    if crmkit_backend == "sqlite" or server is None:
        url = f"sqlite:///{tmp_path / 'second.db'}"
    else:
        url = create_postgres_database(server)
    crm = crmkit.open(url, plugins=["knowledgebase"], upgrade=True)
    try:
        yield service(crm)
    finally:
        crm.close()
        if url.startswith("postgresql"):
            drop_postgres_database(server, url)


@pytest.fixture(scope="session")
def labelled() -> list[tuple[str, str]]:
    """(expected "kind:ref", message) pairs of the labelled suggestion set."""
    return read_labelled(DATA / "suggest_messages.tsv")
