"""``crmkit demo`` and :mod:`crmkit.demo_data`, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from decimal import Decimal

from click.testing import CliRunner
from sqlalchemy import func, select

import crmkit
from crmkit.cli import CliState, cli
from crmkit.core import tables as t
from crmkit.core.entities import CHANNELS
from crmkit.demo_data import generate, top_share


def totals(crm: crmkit.CRM) -> dict[str, object]:
    with crm.reading() as connection:
        orders = connection.execute(
            select(func.count(), func.sum(t.orders.c.amount)).where(t.orders.c.status == "paid")
        ).one()
        names = connection.scalars(select(t.customers.c.name).order_by(t.customers.c.id)).all()
        channels = set(connection.scalars(select(t.interactions.c.channel).distinct()))
        stages = sorted(
            connection.execute(
                select(t.workflow_instances.c.stage, func.count()).group_by(
                    t.workflow_instances.c.stage
                )
            ).all()
        )
    return {
        "paid_orders": orders[0],
        "revenue": Decimal(str(orders[1])).quantize(Decimal("0.01")),
        "names": names,
        "channels": channels,
        "stages": stages,
    }


class DemoPlugin:
    calls: list[int] = []

    @staticmethod
    @crmkit.hookimpl
    def crmkit_generate_demo_data(crm, rng):
        DemoPlugin.calls.append(rng.randrange(1000))
        return f"test plugin: saw {crm.customers.count()} customers"


def test_same_seed_same_data_and_the_80_20_shape(database_url, tmp_path):
    first = crmkit.open(database_url, plugins=[DemoPlugin], upgrade=True)
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    second = crmkit.open(other_url, plugins=[DemoPlugin], upgrade=True)
    try:
        DemoPlugin.calls.clear()
        a = generate(first, customers=400, seed=7)
        b = generate(second, customers=400, seed=7)
        assert a.revenue == b.revenue and a.orders == b.orders and a.deals_won == b.deals_won
        assert DemoPlugin.calls[0] == DemoPlugin.calls[1]  # the plugin got the same rng state
        assert a.plugin_lines == ["test plugin: saw 400 customers"]
        ta, tb = totals(first), totals(second)
        assert ta == tb
        assert ta["revenue"] == a.revenue
        assert ta["channels"] == set(CHANNELS)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(ta["names"]))  # Chinese names
        assert {"won", "lost"} <= {stage for stage, _ in ta["stages"]}
        # the 80/20 shape, from the stored orders
        with first.reading() as connection:
            per_customer = connection.execute(
                select(func.sum(t.orders.c.amount))
                .where(t.orders.c.status == "paid")
                .group_by(t.orders.c.customer_id)
            ).scalars()
            revenues = [Decimal(str(v)) for v in per_customer]
        assert top_share(revenues, 400) >= Decimal("0.6")
        assert abs(top_share(revenues, 400) - a.top20_share) < Decimal("0.001")
    finally:
        first.close()
        second.close()


def test_another_seed_gives_other_data(tmp_path):
    one = crmkit.open(f"sqlite:///{tmp_path / 'a.db'}", plugins=[], upgrade=True)
    two = crmkit.open(f"sqlite:///{tmp_path / 'b.db'}", plugins=[], upgrade=True)
    with one, two:
        assert (
            generate(one, customers=100, seed=1).revenue
            != generate(two, customers=100, seed=2).revenue
        )


def test_demo_command_builds_and_refuses_a_database_with_customers(database_url):
    env = {"CRMKIT_PLUGINS": ""}
    args = ["--database", database_url, "demo", "--customers", "150", "--seed", "3"]
    result = CliRunner().invoke(cli, args, obj=CliState(), env=env)  # creates the schema
    assert result.exit_code == 0, result.output
    assert "customers: 150 (" in result.stdout
    assert "try next:" in result.stdout
    assert " --as wang.lei customer list" in result.stdout
    assert "token create --staff admin" in result.stdout and " serve " in result.stdout
    with crmkit.open(database_url, plugins=[]) as crm:
        assert crm.customers.count() == 150
        assert len(crm.staff.list(role="sales_manager")) == 1
        assert crm.customers.count(consent="marketing") > 0
    again = CliRunner().invoke(cli, args, obj=CliState(), env=env)
    assert again.exit_code == 1
    assert again.stderr.strip().splitlines() == [
        "error: the database already has 150 customers; the demo needs an empty database "
        "(use --database sqlite:///demo.db for a new one)"
    ]


def test_console_script_demo_writes_crm_db_in_the_current_folder(tmp_path):
    script = shutil.which("crmkit")
    command = [script] if script else [sys.executable, "-c", "from crmkit.cli import main; main()"]
    env = {**os.environ, "CRMKIT_PLUGINS": ""}
    env.pop("CRMKIT_CONFIG", None)
    env.pop("CRMKIT_DATABASE_URL", None)
    done = subprocess.run(
        [*command, "demo", "--customers", "60"], cwd=tmp_path, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "crm.db").is_file()
    with crmkit.open(f"sqlite:///{tmp_path / 'crm.db'}", plugins=[]) as crm:
        assert crm.customers.count() == 60
