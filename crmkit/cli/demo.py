"""``crmkit demo``: build a realistic, seeded demo data set and say what to try next."""

from __future__ import annotations

import time

import click

from crmkit.cli import CliState, cli, common_options


@cli.command("demo")
@click.option("--customers", type=click.IntRange(1, 1_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same data.")
@common_options
@click.pass_context
def demo(ctx: click.Context, customers: int, seed: int) -> None:
    """Fill an empty database with demo customers, orders, interactions and deals.

    Uses the configured database, or --database URL, or ./crm.db when there
    is no crmkit.toml; the schema is created when missing. Enabled plugins
    add their own demo data.
    """
    from crmkit.demo_data import generate

    state = ctx.ensure_object(CliState)
    started = time.perf_counter()
    crm = state.open(upgrade=True)
    ctx.call_on_close(state.close)
    summary = generate(crm, customers=customers, seed=seed)
    where = crm.engine.url.render_as_string(hide_password=True)
    click.echo(f"built the demo in {where} (seed {seed}, {time.perf_counter() - started:.1f}s):")
    for line in summary.lines():
        click.echo(f"  {line}")
    database = f" --database {where}" if state.database else ""
    click.echo("try next:")
    for command in (
        f"crmkit{database} customer list --region 华东",
        f"crmkit{database} customer show C00001",
        f"crmkit{database} export orders --output orders.csv",
        f"crmkit{database} plugins list",
        f"crmkit{database} --as wang.lei customer list   # a sales rep sees their own",
        f"crmkit{database} audit list --limit 10",
        f"crmkit{database} token create --staff admin --scopes '*' --expires never",
        f"crmkit{database} serve   # then: curl -H 'Authorization: Bearer crm_...' "
        "http://127.0.0.1:8000/api/v1/customers",
    ):
        click.echo(f"  {command}")
