"""`crmkit order list --text/--owner/--region/--channel` (on both backends)."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from crmkit.cli import CliState, cli


def test_order_list_filters_by_text_owner_region_and_channel(make_crm, database_url):
    crm = make_crm(plugins=[])
    crm.staff.add("mei", name="Mei")
    north = crm.customers.add(name="Zhang Wei", external_id="ACME-1", region="North", owner="mei")
    south = crm.customers.add(name="Li 100% Tea_Shop", external_id="B-2", region="South")
    day = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    for n, (customer, channel) in enumerate(
        [(north, "web"), (south, "store"), (north, "store"), (south, "web")]
    ):
        crm.orders.add(
            customer_id=customer.id, external_id=f"SO-{n}", amount="10", channel=channel,
            occurred_at=day + dt.timedelta(days=n),
        )  # fmt: skip

    def listed(*args):
        result = CliRunner().invoke(
            cli,
            ["--database", database_url, "order", "list", *args, "--format", "json"],
            obj=CliState(plugins=[]),
        )
        assert result.exit_code == 0, result.output
        return [row["external_id"] for row in json.loads(result.output)]

    assert listed("--text", "acme") == ["SO-2", "SO-0"]  # customer external id, any case
    assert listed("--text", "zhang") == ["SO-2", "SO-0"]  # customer name
    assert listed("--text", "so-3") == ["SO-3"]  # order number
    # % and _ are plain characters, not LIKE wildcards
    assert listed("--text", "100%") == ["SO-3", "SO-1"]
    assert listed("--text", "1_0") == []  # would match "100" as a wildcard
    assert listed("--owner", "mei") == ["SO-2", "SO-0"]
    assert listed("--region", "South", "--channel", "web") == ["SO-3"]
    assert listed("--text", "nobody") == []
    assert listed("--region", "North", "--since", "2026-05-02") == ["SO-2"]


def test_text_filters_are_case_insensitive_substrings_everywhere(make_crm):
    crm = make_crm(plugins=[])
    tea = crm.customers.add(name="Li 100% Tea_Shop", email="LI@Example.com", phone="+86 10 5555")
    crm.customers.add(name="Li 1000 Teas")
    crm.interactions.log(tea.id, "email", subject="Refund REQUEST", body="about 50% off_cut")
    crm.interactions.log(tea.id, "phone", subject="callback", body="about 500 offcut")

    def names(text):
        return sorted(c.name for c in crm.customers.list(text=text))

    def subjects(text):
        return sorted(i.subject for i in crm.interactions.list(text=text))

    assert names("tea_shop") == ["Li 100% Tea_Shop"]
    assert names("100%") == ["Li 100% Tea_Shop"]
    assert names("example.COM") == ["Li 100% Tea_Shop"]
    assert names("10 55") == ["Li 100% Tea_Shop"]
    assert names("li 100") == ["Li 100% Tea_Shop", "Li 1000 Teas"]
    assert subjects("refund request") == ["Refund REQUEST"]
    assert subjects("50%") == ["Refund REQUEST"]
    assert subjects("f_c") == ["Refund REQUEST"]
    assert subjects("about") == ["Refund REQUEST", "callback"]
