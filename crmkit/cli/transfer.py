"""``crmkit import`` and ``crmkit export``: customers, orders and interactions as CSV or JSONL."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from crmkit.cli import UserError, cli, pass_crm
from crmkit.transfer.columns import BATCH_SIZE, FORMATS, KINDS

if TYPE_CHECKING:
    from crmkit.transfer.read import RecordReader


def _progress_factory() -> Any:
    """A progress bar on bytes read, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None

    @contextlib.contextmanager
    def progress(label: str, reader: RecordReader) -> Iterator[Any]:
        with click.progressbar(length=max(reader.size, 1), label=label, file=sys.stderr) as bar:
            done = 0

            def tick() -> None:
                nonlocal done
                now = reader.bytes_read
                bar.update(max(now - done, 0))
                done = max(done, now)

            yield tick

    return progress


@cli.command("import")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--encoding", default=None, help="Text encoding of the file (default UTF-8, BOM or not)."
)
@click.option(
    "--input-format",
    type=click.Choice(FORMATS),
    default=None,
    help="csv or jsonl (default: from the extension; .jsonl/.ndjson are JSON Lines).",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Store the valid rows and reject the bad ones (default: any bad row stores nothing).",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --skip-invalid: write each bad row with its line and reason here.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1_000_000),
    default=BATCH_SIZE,
    show_default=True,
    help="Rows per plugin event while storing (the whole import is one transaction).",
)
@click.option(
    "--decimal-comma",
    is_flag=True,
    help="Amounts use a comma before the decimals (1234,50); a dot is then refused.",
)
@pass_crm
def import_command(
    crm: Any,
    kind: str,
    file: str,
    encoding: str | None,
    input_format: str | None,
    skip_invalid: bool,
    rejects: str | None,
    batch_size: int,
    decimal_comma: bool,
) -> None:
    """Import KIND (customers, orders, interactions) from FILE (CSV or JSON Lines).

    Customers: external_id (required), name, email, phone, kind, region,
    province, city, industry, occupation, birth_date; other columns are
    custom attributes. Orders: external_id, customer (its external_id),
    occurred_at, amount, optional cost, currency, status, channel.
    Interactions: customer, channel, occurred_at, optional external_id,
    direction, subject, body, staff. A date or a time without offset is in
    the configured time zone. Amounts are written 1234.50 (no thousands
    separators). Records whose external_id is already stored are skipped
    and counted; the whole import is one transaction.
    """
    if rejects and not skip_invalid:
        raise UserError("--rejects needs --skip-invalid (otherwise a bad row stores nothing)")
    from crmkit.transfer import import_file  # SQLAlchemy: imported when the command runs

    result = import_file(
        crm,
        kind,
        file,
        encoding=encoding,
        input_format=input_format,
        skip_invalid=skip_invalid,
        rejects=rejects,
        batch_size=batch_size,
        progress=_progress_factory(),
        decimal_comma=decimal_comma,
    )
    for line in result.problem_lines():
        click.echo(line, err=True)
    if not result.committed:
        click.echo(result.summary().replace("stored 0", "stored 0 (nothing written)"), err=True)
        raise UserError(
            f"{result.rejected} of {result.read} rows in {file} are invalid; nothing was stored "
            "(fix them, or use --skip-invalid --rejects FILE to store the valid rows)"
        )
    click.echo(result.summary())
    if result.rejected and rejects:
        click.echo(f"rejected rows written to {rejects}")


@cli.command("export")
@click.argument("kind", type=click.Choice(KINDS))
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False), help="File to write."
)
@click.option(
    "--output-format",
    type=click.Choice(FORMATS),
    default=None,
    help="csv or jsonl (default: from the extension).",
)
@pass_crm
def export_command(crm: Any, kind: str, output: str, output_format: str | None) -> None:
    """Export every KIND record to a CSV or JSON Lines file that 'crmkit import' reads back."""
    from crmkit.transfer import export_file  # SQLAlchemy: imported when the command runs

    count = export_file(crm, kind, output, output_format=output_format)
    click.echo(f"exported {count} {kind} to {output}")
