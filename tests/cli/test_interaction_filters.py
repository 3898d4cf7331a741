"""`crmkit interaction list --direction/--since/--until` (on both backends)."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from crmkit.cli import CliState, cli


def test_interaction_list_filters_by_direction_and_time(make_crm, database_url):
    crm = make_crm(plugins=[])
    alice = crm.customers.add(name="Alice", external_id="A-1")
    day = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    for hours, direction in [(0, "inbound"), (24, "outbound"), (48, "inbound"), (72, "inbound")]:
        crm.interactions.log(
            alice.id, "phone", direction=direction, subject=f"h{hours}",
            occurred_at=day + dt.timedelta(hours=hours),
        )  # fmt: skip

    def listed(*args):
        result = CliRunner().invoke(
            cli,
            ["--database", database_url, "interaction", "list", *args, "--format", "json"],
            obj=CliState(plugins=[]),
        )
        assert result.exit_code == 0, result.output
        return [row["subject"] for row in json.loads(result.output)]

    assert listed("--direction", "outbound") == ["h24"]
    # since inclusive, until exclusive, newest first; a bare date is midnight in the config zone
    assert listed("--since", "2026-05-02", "--until", "2026-05-04") == ["h48", "h24"]
    assert listed("--direction", "inbound", "--since", "2026-05-02") == ["h72", "h48"]
    bad = CliRunner().invoke(
        cli,
        ["--database", database_url, "interaction", "list", "--direction", "sideways"],
        obj=CliState(plugins=[]),
    )
    assert bad.exit_code == 1
    assert bad.output.count("\n") == 1 and "--direction" in bad.output


def test_interaction_log_with_an_external_id_is_idempotent(cli_runner):
    assert cli_runner(["db", "upgrade"]).exit_code == 0
    assert cli_runner(["customer", "add", "--name", "Li Na"]).exit_code == 0
    args = ["interaction", "log", "1", "--channel", "phone", "--external-id", "CALL-1"]
    first = cli_runner(args)
    assert first.exit_code == 0, first.output
    again = cli_runner(args)
    assert again.exit_code == 1 and "CALL-1" in again.output
    listed = cli_runner(["interaction", "list", "--customer", "1", "--format", "json"])
    assert listed.output.count('"CALL-1"') == 1
