from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crmkit_knowledgebase import service
from crmkit_knowledgebase.evaluate import read_labelled
from crmkit_knowledgebase.plugin import SAMPLES
from crmkit_knowledgebase.transfer import import_dir

DATA = Path(__file__).parent / "data"


@pytest.fixture
def kb(make_crm: Any) -> Any:
    """The knowledge base of a CRM with only this plugin enabled."""
    return service(make_crm(plugins=["knowledgebase"]))


@pytest.fixture
def samples(kb: Any) -> Any:
    """The knowledge base with the shipped sample articles and reply templates."""
    counts = import_dir(kb, SAMPLES, author="setup")
    assert counts["articles_created"] == 23 and counts["templates_created"] == 21
    return kb


@pytest.fixture(scope="session")
def labelled() -> list[tuple[str, str]]:
    """(expected "kind:ref", message) pairs of the labelled suggestion set."""
    return read_labelled(DATA / "suggest_messages.tsv")
