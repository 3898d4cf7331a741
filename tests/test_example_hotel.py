"""examples/hotel: the hotel group's CRM runs end to end and gives the expected results.

In process, every ``step`` of ``examples/hotel/run.sh`` runs through the CLI with the example's
own plugin registered as an object (on SQLite and PostgreSQL), then the results are checked
through the plugins' services. Separately, ``run.sh`` itself runs in a fresh virtual
environment where the ``hotel_rooms`` plugin is installed from its folder like any package.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shlex
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner

import crmkit
from crmkit.cli import CliState, cli

REPO = Path(__file__).parents[1]
EXAMPLE = REPO / "examples" / "hotel"
SHIPPED = ["loyalty", "complaints", "knowledgebase", "segmentation"]
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "hotel.db*")
UTC = dt.UTC


def script_steps() -> list[list[str]]:
    """The crmkit commands of run.sh (lines ``step ARGS...``, continuations joined)."""
    text = (EXAMPLE / "run.sh").read_text(encoding="utf-8").replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[1:]
        for line in text.splitlines()
        if line.strip().startswith("step ")
    ]


@pytest.fixture
def rooms_plugin(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "hotel_rooms"))
    import crmkit_hotel_rooms.plugin

    return crmkit_hotel_rooms.plugin


@pytest.fixture
def hotel(tmp_path, monkeypatch, database_url, rooms_plugin):
    """A copy of the example, with every step of run.sh run in process; returns a helper."""
    for name in ("CRMKIT_PLUGINS", "CRMKIT_CONFIG", "CRMKIT_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "hotel"
    shutil.copytree(EXAMPLE, root, ignore=SKIP)
    monkeypatch.chdir(root)  # run.sh runs in its folder: relative paths as in the script
    config = str(root / "crmkit.toml")
    plugins = [*SHIPPED, rooms_plugin]

    def invoke(*args: str, code: int = 0):
        state = CliState(config=config, database=database_url, plugins=plugins)
        result = CliRunner().invoke(cli, list(args), obj=state)
        assert result.exit_code == code, f"crmkit {shlex.join(args)}:\n{result.output}"
        return result

    outputs = {}
    for step in script_steps():
        if step == ["db", "upgrade"]:  # the command reads plugins from the config file only
            crmkit.open(config, database=database_url, plugins=plugins, upgrade=True).close()
            continue
        outputs[shlex.join(step)] = invoke(*step).output
    crm = crmkit.open(config, database=database_url, plugins=plugins)
    yield crm, invoke, outputs
    crm.close()


def test_run_script_steps_give_the_hotel_results(hotel):
    from crmkit_complaints.service import service as complaints
    from crmkit_knowledgebase.service import service as kb
    from crmkit_loyalty.service import loyalty

    crm, invoke, outputs = hotel
    guests = crm.customers.ids_by_external_id(["G-1001", "G-1002", "G-1003", "G-1004", "G-1005"])
    ana, li, tom, marta = (guests[g] for g in ("G-1001", "G-1002", "G-1003", "G-1004"))

    # loyalty counted in nights: a point per night, tiers on nights in 12 months, a free night
    club = loyalty(crm)
    assert club.program().name == "nights"
    tiers = {c: (club.member(c).tier, club.member(c).balance) for c in (ana, li, tom, marta)}
    assert tiers == {
        ana: ("silver", 3 + 4 + 5),
        li: ("gold", 14 + 10 + 8 - 10),  # 32 nights, then a free night for 10 points
        tom: ("classic", 2),
        marta: ("classic", 6),
    }
    statement = club.statement(li)
    earned = [e["points"] for e in statement["entries"] if e["kind"] == "earn"]
    assert earned == [14, 10, 8]
    assert (
        "redeemed 'free-night' for 10 points; balance 22" in outputs["loyalty redeem 2 free-night"]
    )

    # complaints: due times on the desk's calendar (Lisbon, two shifts, weekends, holidays)
    noise, housekeeping = complaints(crm).list()
    assert (noise.customer_id, noise.priority, noise.department) == (tom, "normal", "front office")
    # Friday 22:00 local: 1 desk hour that night, then Saturday from 09:00 (UTC+1)
    assert noise.first_response_due_at == dt.datetime(2026, 7, 4, 9, 0, tzinfo=UTC)
    # 24 desk hours: 1 on Friday, 12 on Saturday, 11 on Sunday from 09:00 -> 20:00 local
    assert noise.resolution_due_at == dt.datetime(2026, 7, 5, 19, 0, tzinfo=UTC)
    # Ana is a VIP: urgent, 0.5 h / 4 h; Wednesday 10 June is a holiday on the calendar
    assert (housekeeping.customer_id, housekeeping.priority) == (ana, "urgent")
    assert housekeeping.first_response_due_at == dt.datetime(2026, 6, 9, 22, 0, tzinfo=UTC)
    assert housekeeping.resolution_due_at == dt.datetime(2026, 6, 11, 9, 30, tzinfo=UTC)

    # the knowledge base of house rules and FAQs, in English and Chinese
    hit = kb(crm).search("quiet hours")[0].article
    assert (hit.slug, hit.category) == ("quiet-hours", "house rules")
    assert [h.article.slug for h in kb(crm).search("dogs")] == ["pets"]
    assert kb(crm).search("早餐")[0].article.slug == "breakfast-zh"
    assert kb(crm).search("escalating", audience="public") == []  # staff-only article
    suggested = outputs["kb suggest --text 'The party next door was so loud I could not sleep'"]
    assert suggested.splitlines()[2].split()[:3] == ["1", "template", "noise-apology"]

    # the travel segmentation pack classifies the guests by nights and trips
    travel = json.loads(
        invoke("segment", "pack", "travel", "--as-of", "2026-11-30", "--format", "json").output
    )
    segments = {r["customer_id"]: r["segment"] for r in travel}
    assert segments == {ana: "silver", li: "gold", tom: "member", marta: "lapsed"}

    # the room-preference profile is a section of the 360 view, beside the plugins' own
    view = crm.customers.view(ana)
    sections = {s.name: s for s in view.sections}
    assert {"hotel_rooms", "loyalty", "complaints"} <= set(sections)
    rooms = sections["hotel_rooms"]
    assert (rooms.title, rooms.data["floor"], rooms.data["pillow"]) == (
        "Room preferences",
        "high",
        "firm",
    )
    assert rooms.data["quiet"] is True and rooms.data["stays"] == {"count": 3, "nights": 12}
    html = crm.templates.get_template(rooms.template).render(**rooms.data)
    assert "<dd>firm</dd>" in html and "12 nights in 3 stays" in html
    assert "hotel_rooms" not in {s.name for s in crm.customers.view(li).sections}
    shown = list(
        csv.DictReader(io.StringIO(invoke("rooms", "show", "G-1003", "--format", "csv").output))
    )
    assert shown == [
        {"customer": "Tom Baker", "floor": "low", "pillow": "hypoallergenic", "bed": "twin",
         "quiet": "", "note": "", "stays": "1", "nights": "2"}
    ]  # fmt: skip

    check_bad_input_changes_nothing(crm, invoke)

    # personal data: exported, then deleted on erasure
    exported = crm.customers.export(ana)
    assert exported["plugins"]["hotel_rooms"]["room_preferences"]["note"] == (
        "sparkling water in the room"
    )
    crm.customers.erase(ana)
    assert "hotel_rooms" not in crm.customers.export(ana)["plugins"]
    assert "hotel_rooms" not in {s.name for s in crm.customers.view(ana).sections}


def check_bad_input_changes_nothing(crm: crmkit.CRM, invoke) -> None:
    """Bad preferences and a bad stays file: one-line errors, nothing stored."""
    before = crm.customers.export(crm.customers.resolve("G-1001").id)["plugins"]["hotel_rooms"]
    bad = invoke("rooms", "prefer", "G-1001", "--floor", "penthouse", "--pillow", "soft", code=1)
    assert bad.output == (
        "error: floor 'penthouse' is not offered; use one of: low, middle, high "
        "(the floors setting of [hotel_rooms] in crmkit.toml)\n"
    )
    missing = invoke("rooms", "prefer", "G-9999", "--floor", "high", code=1)
    assert missing.output.startswith("error: ") and "G-9999" in missing.output
    nothing = invoke("rooms", "prefer", "G-1001", code=1)
    assert "give at least one preference" in nothing.output
    stay = invoke("rooms", "stay", "G-1005", "--arrive", "2026-03-01", "--nights", "0",
                  "--rate", "100", code=1)  # fmt: skip
    assert "nights must be a whole number of at least 1" in stay.output
    after = crm.customers.export(crm.customers.resolve("G-1001").id)["plugins"]["hotel_rooms"]
    assert after == before
    Path("bad-stays.csv").write_text(
        "guest,arrive,nights,rate,reservation\n"
        "G-1005,2026-03-01,2,100.00,R-9001\n"
        "G-1005,2026-03-09,two,100.00,R-9002\n"
    )
    bad_file = invoke("rooms", "stays", "bad-stays.csv", code=1)
    assert bad_file.output.startswith("error: bad-stays.csv, line 3: ")
    assert crm.orders.list(customer_id=crm.customers.resolve("G-1005").id) == []  # not even R-9001
    again = invoke("rooms", "stays", "stays.csv")
    assert again.output == "stays: stored 0, already present 8\n"


def test_hotel_rooms_works_without_loyalty_and_has_its_own_branch(make_crm, rooms_plugin):
    from crmkit_hotel_rooms import service

    crm = make_crm(plugins=[rooms_plugin])  # no loyalty: its optional hook is simply unused
    assert crm.plugin_names == ["hotel_rooms"]
    assert "hotel_rooms0001" in crm.current_revisions()
    guest = crm.customers.add(name="Eve Early", external_id="G-1")
    order = service.record_stay(crm, guest.id, arrive=dt.date(2026, 3, 1), nights=3, rate="99.50")
    assert (
        order.amount
        == crmkit.Order(customer_id=guest.id, occurred_at=order.occurred_at, amount="298.50").amount
    )
    # check-out at 11:00 on the configured time zone's day three nights later
    assert crm.local_time(order.occurred_at).date() == dt.date(2026, 3, 4)
    assert [(line.quantity, line.category) for line in order.lines] == [(3, "room")]
    service.prefer(crm, guest.id, pillow="soft")
    service.prefer(crm, guest.id, floor="low")  # other values stay
    assert service.profile(crm, guest.id)["pillow"] == "soft"
    assert service.stays(crm, guest.id) == {"count": 1, "nights": 3}

    # its migration and tables.py agree
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from crmkit.core.tables import metadata

    def ours(obj, name, type_, reflected, compare_to):
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return bool(table) and table.startswith("hotel_rooms")

    with crm.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": ours, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []


def test_enabling_hotel_rooms_keeps_the_help_screen_light(tmp_path):
    # plugin.py is imported for `crmkit --help`: it must load no database code, nor its commands
    probe = f"""
import json, sys
sys.path.insert(0, {str(EXAMPLE / "hotel_rooms")!r})
from crmkit.cli import CliState, cli
import crmkit_hotel_rooms.plugin as rooms
try:
    cli.main(["--help"], obj=CliState(config={str(tmp_path / "crmkit.toml")!r},
             database="sqlite:///{tmp_path / "x.db"}", plugins=[rooms]))
except SystemExit:
    pass
print("\\n" + json.dumps(sorted(sys.modules)))
"""
    (tmp_path / "crmkit.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert "rooms" in done.stdout and "Guests' room preferences and stays." in done.stdout
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "crmkit_hotel_rooms.plugin" in modules
    heavy = {"sqlalchemy", "alembic", "jinja2", "crmkit_hotel_rooms.cli"}
    assert not modules & heavy, sorted(modules & heavy)


@pytest.mark.slow
def test_run_script_in_a_fresh_environment_with_the_plugin_installed(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the core and the shipped plugins as installed here (their .pth files are processed too)
    outer = [p for p in site.getsitepackages() if "site-packages" in p]
    (Path(purelib) / "outer_site.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in outer)
    )
    root = tmp_path / "hotel"
    shutil.copytree(EXAMPLE, root, ignore=SKIP)
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps"]
    pip += ["--no-build-isolation", "--no-index", str(root / "hotel_rooms")]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    shutil.rmtree(root / "hotel_rooms")  # the script must use the installed copy
    launcher = env_dir / "bin" / "crmkit"  # crmkit's console script, for this environment
    launcher.write_text(f"#!{python}\nfrom crmkit.cli import main\nmain()\n")
    launcher.chmod(0o755)

    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    environment["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{environment['PATH']}"
    result = subprocess.run(
        ["bash", str(root / "run.sh")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    out = result.stdout
    assert "hotel_rooms0001" in out  # its own migration branch
    assert "stays: stored 8, already present 0" in out
    assert "redeemed 'free-night' for 10 points; balance 22" in out
    assert "2026-07-04T09:00:00+00:00" in out  # Tom's complaint, due on the desk's calendar
    travel = out.split("segment pack travel", 1)[1]
    assert [line.split()[:2] for line in travel.splitlines()[3:7]] == [
        ["1", "silver"], ["2", "gold"], ["3", "member"], ["4", "lapsed"]
    ]  # fmt: skip
    assert (root / "hotel.db").is_file()
