"""``crmkit customer duplicates``, ``crmkit customer merge`` and ``crmkit plugins catch-up``."""

from __future__ import annotations

import csv
import io
import json
import logging

import pytest

import crmkit
from crmkit.cli import install_log_handler


@pytest.fixture
def console(cli_runner, make_crm):
    """Run the CLI as the console script does (library warnings become ``warning:`` lines)
    on a database at head."""
    make_crm().close()
    root = logging.getLogger()
    before = list(root.handlers)
    install_log_handler()

    def run(*args: str, plugins=(), ok: bool = True):
        result = cli_runner(list(args), plugins=list(plugins))
        if ok:
            assert result.exit_code == 0, (args, result.output, result.stderr)
        return result

    yield run
    root.handlers[:] = before


def test_adding_a_likely_duplicate_prints_one_warning(console) -> None:
    first = console("customer", "add", "--name", "李娜", "--email", "li@example.cn")
    assert first.stderr == ""
    second = console("customer", "add", "--name", "Li Na", "--email", "Li@Example.cn")
    assert second.stdout == "added customer 2: Li Na\n"
    assert second.stderr == (
        "warning: customer 2 (Li Na) may be a duplicate of customer 1 (李娜: email "
        "li@example.cn, name li na); compare them with 'crmkit customer show', and merge "
        "with 'crmkit customer merge 1 2' if they are the same\n"
    )


def test_duplicates_lists_pairs_with_the_evidence(console) -> None:
    console("customer", "add", "--name", "李娜", "--email", "li@example.cn")
    console("customer", "add", "--name", "Na Li", "--email", "LI@example.cn")
    console("customer", "add", "--name", "Zhang Wei")
    table = console("customer", "duplicates")
    assert table.stdout.splitlines()[0].split() == [
        "first", "first_name", "second", "second_name", "evidence",
    ]  # fmt: skip
    assert "email li@example.cn; name li na" in table.stdout
    as_json = json.loads(console("customer", "duplicates", "--format", "json").stdout)
    assert as_json == [
        {
            "first": 1, "first_name": "李娜", "second": 2, "second_name": "Na Li",
            "evidence": [
                {"kind": "email", "value": "li@example.cn"}, {"kind": "name", "value": "li na"},
            ],
        }
    ]  # fmt: skip
    rows = list(
        csv.DictReader(io.StringIO(console("customer", "duplicates", "--format", "csv").stdout))
    )
    assert rows == [
        {"first": "1", "first_name": "李娜", "second": "2", "second_name": "Na Li",
         "evidence": "email li@example.cn; name li na"}
    ]  # fmt: skip
    one = json.loads(console("customer", "duplicates", "2", "--format", "json").stdout)
    assert [r["id"] for r in one] == [1]
    assert console("customer", "duplicates", "3").stdout.strip() == "(none)"


def test_merge_previews_refuses_conflicts_and_merges_with_yes(console, database_url) -> None:
    console("customer", "add", "--name", "李娜", "--external-id", "C-1", "--consent", "marketing")
    console(
        "customer", "add", "--name", "Li Na", "--phone", "138 0013 8000", "--external-id", "C-2"
    )
    console("interaction", "log", "C-2", "--channel", "phone", "--subject", "call")
    console("customer", "consent", "C-2", "marketing", "--withdraw")

    conflict = console("customer", "merge", "C-1", "C-2", ok=False)
    assert conflict.exit_code == 1
    assert conflict.stderr.startswith(
        "error: customers 1 (kept) and 2 (merged) hold different values for 1 field(s): "
        "name (kept '李娜', merged 'Li Na'); nothing was merged."
    )
    assert "--prefer name=kept" in conflict.stderr

    preview = console("customer", "merge", "C-1", "C-2", "--prefer", "name=kept", ok=False)
    assert preview.exit_code == 1
    lines = preview.stdout.splitlines()
    # then "N consent changes": the merged record's consent history
    assert lines[1].startswith("  moves 1 interaction, 0 orders, 0 contacts, 0 workflow instances")
    assert lines[:1] + lines[2:] == [
        "merging customer 2 (Li Na) into customer 1 (李娜):",
        "  fills from customer 2: phone",
        "  name: the kept record's value stays",
        "  consent to marketing: withdrawn",
        "  then customer 2 is marked merged into customer 1 (inactive, its personal data "
        "cleared; its id and external id lead to the kept record)",
    ]
    assert preview.stderr == (
        "error: nothing merged yet; add --yes to merge customer 2 into customer 1 (it cannot "
        "be undone)\n"
    )
    with crmkit.open(database_url, plugins=[]) as crm:
        assert crm.customers.get(2).merged_into is None

    bad = console("customer", "merge", "1", "2", "--prefer", "name=mine", ok=False)
    assert bad.stderr == (
        "error: --prefer name='mine': say which record's value stays, --prefer name=kept or "
        "--prefer name=merged\n"
    )
    same = console("customer", "merge", "1", "C-1", ok=False)
    assert same.stderr == "error: KEEP and OTHER are both customer 1; give two customers\n"

    done = console("customer", "merge", "C-1", "C-2", "--prefer", "name=kept", "--yes")
    assert done.stdout.splitlines()[0].startswith(
        "merged customer 2 into customer 1 (李娜): moved 1 interaction, 0 orders"
    )
    assert "  filled from customer 2: phone" in done.stdout.splitlines()
    assert "  consent to marketing: withdrawn" in done.stdout.splitlines()
    with crmkit.open(database_url, plugins=[]) as crm:
        kept = crm.customers.get(1)
        assert (kept.name, kept.phone, kept.consents) == (
            "李娜",
            "138 0013 8000",
            {"marketing": False},
        )
        assert crm.customers.get(2).merged_into == 1
    again = console("customer", "merge", "C-1", "C-2", "--yes", ok=False)
    assert again.stderr == "error: customer 2 was already merged into customer 1\n"


class Reconciling:
    CRMKIT_NAME = "reconciling"
    CRMKIT_API = ">=1.2,<2"

    def __init__(self) -> None:
        self.since = []

    @crmkit.hookimpl
    def crmkit_catch_up(self, ctx, since):
        self.since.append(since)
        return "checked 0 orders"


def test_plugins_catch_up_runs_the_plugins_catch_up_with_since_none(console) -> None:
    plugin = Reconciling()
    done = console("plugins", "catch-up", "reconciling", plugins=[plugin])
    assert done.stdout == "plugin 'reconciling' caught up: checked 0 orders\n"
    assert plugin.since == [None]
    missing = console("plugins", "catch-up", "loyalty", plugins=[plugin], ok=False)
    assert missing.stderr == (
        "error: plugin 'loyalty' is not enabled and loaded in this configuration (loaded: "
        "reconciling); enable it, then run 'crmkit plugins catch-up loyalty'\n"
    )
