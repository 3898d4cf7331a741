"""The customer 360 page (``crmkit customer show --format html``), also in headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import crmkit
from crmkit.cli import CliState, cli, install_log_handler
from crmkit.cli.page360 import data_lines, text_template_name
from crmkit.plugin import TimelineEntry
from crmkit.testing import artifacts_dir, chromium

CORE_SECTIONS = [
    "section-profile", "section-attributes", "section-consent", "section-contacts",
    "section-timeline", "section-orders", "section-workflows", "section-activity",
]  # fmt: skip


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def visits_plugin(folder: Path) -> type:
    """A test plugin: a 360 section rendered from its own template folder."""
    (folder / "visits").mkdir(parents=True)
    (folder / "visits" / "section.html").write_text(
        '<ul class="visits">{% for v in visits %}<li data-store="{{ v.store }}">{{ v.store }}: '
        "{{ v.note }}</li>{% endfor %}</ul>",
        encoding="utf-8",
    )

    class Visits:
        @staticmethod
        @crmkit.hookimpl
        def crmkit_register_template_dirs() -> list[str]:
            return [str(folder)]

        @staticmethod
        @crmkit.hookimpl
        def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section | None:
            if customer.type != "organisation":
                return None
            return crmkit.Section(
                title="Store visits",
                name="visits",
                template="visits/section.html",
                data={"visits": [
                    {"store": "Shanghai <One>", "note": "<script>alert(1)</script> asked for samples"},
                    {"store": "Hangzhou", "note": "signed the visit book"},
                ]},
                order=10,
            )  # fmt: skip

    return Visits


class Notes:
    """A test plugin whose section has no template: the page renders its data."""

    @staticmethod
    @crmkit.hookimpl
    def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section:
        return crmkit.Section(
            title="Notes & flags",
            data={"flags": ["key account", "pays late"], "score": 7,
                  "history": [{"when": "2026-01-02", "what": "upgraded"}]},
            order=20,
        )  # fmt: skip


class Elements(HTMLParser):
    """Collects the text inside each element that has an id."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.text: dict[str, str] = {}
        self.tags: list[str] = []
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        ident = dict(attrs).get("id")
        if ident:
            self.order.append(ident)
            self.text[ident] = ""
        if tag not in ("meta", "br", "img", "link", "input"):
            self._open.append((tag, ident))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident:
                self.text[ident] += data


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    return parser


@pytest.fixture
def shop(make_crm: Any, database_url: str, tmp_path: Path) -> Any:
    plugins = [visits_plugin(tmp_path / "templates"), Notes]
    populate(make_crm(plugins=plugins))
    return database_url, plugins, tmp_path


def populate(crm: crmkit.CRM) -> None:
    """An organisation with contacts, consent, attributes, interactions, orders and a deal."""
    crm.staff.add("ann", "Ann Lee", roles=["sales_rep"])
    acme = crm.customers.add(
        name="Acme <Trading> 有限公司", type="organisation", external_id="C-1", region="华东",
        owner="ann", email="info@acme.example", attributes={"segment": "wholesale"},
        consents={"marketing": True},
    )  # fmt: skip
    crm.customers.set_consent(acme.id, "profiling", False)
    crm.customers.add_contact(acme.id, "Wang Fang", role="buyer", phone="+86 21 5555 0101")
    crm.interactions.log(acme.id, "phone", subject="First call", occurred_at=at(2026, 1, 5, 9))
    crm.interactions.log(
        acme.id, "email", subject="Quote <b>sent</b>", body="Line one\nline two",
        occurred_at=at(2026, 2, 1, 10), direction="outbound", staff="ann",
    )  # fmt: skip
    crm.orders.add(customer_id=acme.id, external_id="O-100", amount="1234.50",
                   occurred_at=at(2026, 2, 3), lines=[{"product": "Tea", "quantity": "3",
                                                       "price": "411.50"}])  # fmt: skip
    crm.orders.add(customer_id=acme.id, external_id="O-101", amount="99.00",
                   occurred_at=at(2026, 2, 4), status="refunded")  # fmt: skip
    deal = crm.workflows.start("sales", acme.id, "Fleet renewal", value="50000", owner="ann")
    crm.workflows.move(deal.id, "presentation", actor="ann")


def show(url: str, plugins: list[Any], *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["--database", url, "customer", "show", *args], obj=CliState(plugins=plugins),
        env={"CRMKIT_PLUGINS": ""},
    )  # fmt: skip


def write_page(shop: Any) -> Path:
    url, plugins, tmp_path = shop
    page = tmp_path / "acme.html"
    result = show(url, plugins, "C-1", "--format", "html", "--output", str(page))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {page}"
    return page


def test_page_has_every_section_with_a_stable_id(shop: Any) -> None:
    page = write_page(shop).read_text(encoding="utf-8")
    found = parse(page)
    sections = [i for i in found.order if i.startswith("section-")]
    assert sections == [*CORE_SECTIONS, "section-plugin-visits", "section-plugin-notes-flags"]
    text = found.text
    profile = " ".join(text["section-profile"].split())
    assert "Paid orders1 Revenue1,234.50 Last order2026-02-03 00:00" in profile  # paid only
    assert "region华东" in profile and "ownerann" in profile
    assert "segment" in text["section-attributes"] and "wholesale" in text["section-attributes"]
    consent = " ".join(text["section-consent"].split())
    assert "marketing given" in consent and "profiling withdrawn" in consent
    assert "contact not given" in consent
    assert "Wang Fang" in text["section-contacts"] and "buyer" in text["section-contacts"]
    timeline = text["section-timeline"]
    assert timeline.index("Quote <b>sent</b>") < timeline.index("First call")  # newest first
    assert "O-100" in text["section-orders"] and "Tea × 3.00" in text["section-orders"]
    assert "refunded" in text["section-orders"]
    assert "Fleet renewal" in text["section-workflows"]
    assert "Product presentation" in text["section-workflows"]
    assert "Present the products that meet the need" in text["section-workflows"]
    assert "Shanghai <One>: <script>alert(1)</script> asked" in text["section-plugin-visits"]
    notes = text["section-plugin-notes-flags"]
    assert "key account, pays late" in notes and "upgraded" in notes and "7" in notes
    # autoescaped: customer text and plugin data are text, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "Acme &lt;Trading&gt; 有限公司" in page and "Quote &lt;b&gt;sent&lt;/b&gt;" in page
    # self-contained: inline CSS only, nothing fetched
    assert "<style>" in page
    assert not {"script", "link", "img", "iframe"} & set(found.tags)
    assert "http://" not in page and "https://" not in page and "url(" not in page


def test_page_without_plugins_has_only_the_core_sections(shop: Any) -> None:
    url, _, _ = shop
    result = show(url, [], "1", "--format", "html")
    assert result.exit_code == 0, result.output
    found = parse(result.stdout)
    assert [i for i in found.order if i.startswith("section-")] == CORE_SECTIONS


def test_text_and_json_include_plugin_sections(shop: Any) -> None:
    url, plugins, _ = shop
    data = json.loads(show(url, plugins, "C-1", "--format", "json").stdout)
    assert [s["title"] for s in data["sections"]] == ["Store visits", "Notes & flags"]
    assert data["sections"][0]["data"]["visits"][1]["store"] == "Hangzhou"
    assert data["totals"]["revenue"] == "1234.50" and len(data["orders"]) == 2
    assert [i["subject"] for i in data["interactions"]] == ["Quote <b>sent</b>", "First call"]
    text = show(url, plugins, "C-1").stdout
    assert "Store visits:" in text and "Notes & flags:" in text
    assert "contacts:\n  Wang Fang, buyer, +86 21 5555 0101" in text


def test_integrator_extends_the_core_page(make_crm: Any, database_url: str, tmp_path: Path) -> None:
    crm = make_crm()
    crm.customers.add(name="Guest <1>", attributes={"room": "1204"})
    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "customer_360.html").write_text(
        '{% extends "default:customer_360.html" %}'
        "{% block style %}#section-rooms { border-color: gold; }{% endblock %}"
        '{% block after_sections %}<section id="section-rooms"><h2>Rooms</h2>'
        "<p>{{ customer.name }} in {{ customer.attributes.room }}</p></section>{% endblock %}",
        encoding="utf-8",
    )
    config = tmp_path / "crmkit.toml"
    config.write_text(
        f'database = "{database_url}"\nplugins = []\ntemplates = "pages"\n', encoding="utf-8"
    )
    result = CliRunner().invoke(
        cli, ["--config", str(config), "customer", "show", "1", "--format", "html"],
        obj=CliState(), env={"CRMKIT_PLUGINS": ""},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = parse(result.stdout)
    assert [i for i in found.order if i.startswith("section-")] == [*CORE_SECTIONS, "section-rooms"]
    assert found.text["section-rooms"] == "RoomsGuest <1> in 1204"
    assert "#section-rooms { border-color: gold; }" in result.stdout
    assert "Guest &lt;1&gt; in 1204" in result.stdout


@pytest.mark.browser
def test_page_in_headless_chromium(tmp_path: Path) -> None:
    # once, on SQLite: the page's content is checked on both backends above
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    plugins = [visits_plugin(tmp_path / "templates"), Notes]
    with crmkit.open(url, plugins=plugins, upgrade=True) as crm:
        populate(crm)
    page = write_page((url, plugins, tmp_path))
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    found = parse(dom)
    sections = [i for i in found.order if i.startswith("section-")]
    assert sections == [*CORE_SECTIONS, "section-plugin-visits", "section-plugin-notes-flags"]
    assert "Shanghai <One>: <script>alert(1)</script> asked" in found.text["section-plugin-visits"]
    assert 'data-store="Hangzhou"' in dom and "<script>" not in dom
    assert "Fleet renewal" in found.text["section-workflows"]
    assert "1,234.50 EUR" in found.text["section-orders"]
    shot = artifacts_dir() / "customer_360.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1800", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000


# -- a broken plugin never takes the view down ------------------------------------------------


class Broken:
    """A test plugin whose 360 section raises."""

    CRMKIT_NAME = "broken"

    @staticmethod
    @crmkit.hookimpl
    def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section:
        raise ZeroDivisionError("no visits to divide by")


class Strange:
    """A test plugin whose 360 hook returns something that is not a Section."""

    CRMKIT_NAME = "strange"

    @staticmethod
    @crmkit.hookimpl
    def crmkit_customer_360_section(crm: Any, customer: Any) -> Any:
        return {"title": "not a section"}


def failed_records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == logging.ERROR]


def test_a_raising_section_becomes_an_error_section_naming_its_plugin(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url, plugins, _ = shop
    plugins = [*plugins, Broken, Strange]
    # HTML: the plugin's section says what failed; every other section is there
    page = show(url, plugins, "C-1", "--format", "html")
    assert page.exit_code == 0, page.output
    found = parse(page.stdout)
    sections = [i for i in found.order if i.startswith("section-")]
    assert sections == [
        *CORE_SECTIONS, "section-plugin-visits", "section-plugin-notes-flags",
        "section-plugin-broken", "section-plugin-strange",
    ]  # fmt: skip
    broken = " ".join(found.text["section-plugin-broken"].split())
    assert broken == (
        "broken This section could not be shown: plugin 'broken' failed to build its section: "
        "ZeroDivisionError: no visits to divide by"
    )
    assert 'class="plugin failed"' in page.stdout and 'data-plugin="broken"' in page.stdout
    assert (
        "plugin 'strange' returned a dict, not a crmkit.Section"
        in found.text["section-plugin-strange"]
    )
    assert "Hangzhou: signed the visit book" in found.text["section-plugin-visits"]
    # JSON: an error section carries "error"; the others are unchanged
    data = json.loads(show(url, plugins, "C-1", "--format", "json").stdout)
    by_name = {s["name"]: s for s in data["sections"]}
    assert by_name["broken"]["error"] == (
        "plugin 'broken' failed to build its section: ZeroDivisionError: no visits to divide by"
    )
    assert by_name["broken"]["data"]["plugin"] == "broken"
    assert "error" not in by_name["visits"] and by_name["visits"]["data"]["visits"]
    # text: one error line under the section's title
    text = show(url, plugins, "C-1")
    assert text.exit_code == 0
    assert (
        "broken:\n  error: plugin 'broken' failed to build its section: ZeroDivisionError: "
        "no visits to divide by\n" in text.stdout
    )
    assert "Store visits:" in text.stdout and "orders (2, newest first):" in text.stdout
    # logged with the traceback by the core, never printed by the library
    records = failed_records(caplog, "crmkit.core.view360")
    assert records and all(r.exc_info for r in records if "broken" in r.getMessage())
    assert any(isinstance(r.exc_info[1], ZeroDivisionError) for r in records if r.exc_info)
    assert "Traceback" not in page.stderr + text.stderr


def test_a_section_whose_template_fails_becomes_an_error_section(
    make_crm: Any, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "templates"
    (folder / "fragile").mkdir(parents=True)
    (folder / "fragile" / "section.html").write_text("{{ visits | sum }} visits", "utf-8")

    class Fragile:
        CRMKIT_NAME = "fragile"

        @staticmethod
        @crmkit.hookimpl
        def crmkit_register_template_dirs() -> list[str]:
            return [str(folder)]

        @staticmethod
        @crmkit.hookimpl
        def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section:
            return crmkit.Section(
                title="Fragile", name="fragile", template="fragile/section.html",
                data={"visits": ["one", "two"]}, order=5,
            )  # fmt: skip

    class Missing:
        @staticmethod
        @crmkit.hookimpl
        def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section:
            return crmkit.Section(title="Missing", name="missing", template="missing/nope.html")

    plugins = [Fragile, Missing, Notes]
    crm = make_crm(plugins=plugins)
    crm.customers.add(name="Ann")
    page = show(database_url, plugins, "1", "--format", "html")
    assert page.exit_code == 0, page.output
    found = parse(page.stdout)
    fragile = " ".join(found.text["section-plugin-fragile"].split())
    assert fragile.startswith(
        "Fragile This section could not be shown: plugin 'fragile': the section 'Fragile' could "
        "not be shown: its html template 'fragile/section.html' failed: TypeError: "
    )
    missing = " ".join(found.text["section-plugin-missing"].split())
    assert "its template 'missing/nope.html' is in no template folder" in missing
    assert "crmkit_register_template_dirs" in missing
    assert "key account, pays late" in found.text["section-plugin-notes-flags"]
    records = failed_records(caplog, "crmkit.cli.page360")
    assert len(records) == 2 and all(r.exc_info for r in records)
    assert "Traceback" not in page.stderr
    # the text form has no .txt template to fail: the data is listed
    text = show(database_url, plugins, "1").stdout
    assert "Fragile:\n  visits:\n    - one\n    - two\n" in text


def test_the_command_line_shows_a_logged_failure_as_one_warning_line(
    make_crm: Any, database_url: str
) -> None:
    crm = make_crm(plugins=[Broken])
    crm.customers.add(name="Ann")
    root = logging.getLogger()
    before = list(root.handlers)
    install_log_handler()  # what the crmkit console script does
    try:
        quiet = show(database_url, [Broken], "1")
        verbose = CliRunner().invoke(
            cli, ["--verbose", "--database", database_url, "customer", "show", "1"],
            obj=CliState(plugins=[Broken]), env={"CRMKIT_PLUGINS": ""},
        )  # fmt: skip
    finally:
        root.handlers[:] = before
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == (
        "warning: customer 1, 360 view: plugin 'broken' failed to build its section: "
        "ZeroDivisionError: no visits to divide by\n"
    )
    assert verbose.stderr.startswith(quiet.stderr + "Traceback (most recent call last):")
    assert "ZeroDivisionError: no visits to divide by" in verbose.stderr.splitlines()[-1]


# -- sections in the text form ----------------------------------------------------------------


def test_text_form_lists_a_sections_data_readably(
    make_crm: Any, database_url: str, tmp_path: Path
) -> None:
    class Loyal:
        @staticmethod
        @crmkit.hookimpl
        def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section:
            return crmkit.Section(
                title="Loyalty", name="loyal",
                data={
                    "tier": "gold", "points_balance": Decimal("12345.50"), "member": True,
                    "since": dt.date(2024, 5, 1), "last_earned": at(2026, 3, 1, 16, 30),
                    "expires": None, "会员等级": "金卡",
                    "address": {"city": "上海", "rooms": {"home": 3}},
                    "rewards": ["free night", "late check-out"], "vouchers": [],
                    "history": [{"when": "2026-01-02", "points": 120}, {"when": "2026-02-03",
                                                                       "points": 80}],
                },
            )  # fmt: skip

    make_crm(plugins=[Loyal]).customers.add(name="Ann")
    config = tmp_path / "crmkit.toml"
    config.write_text(f'database = "{database_url}"\ntimezone = "Asia/Shanghai"\n', "utf-8")
    result = CliRunner().invoke(
        cli, ["--config", str(config), "customer", "show", "1"], obj=CliState(plugins=[Loyal]),
        env={"CRMKIT_PLUGINS": ""},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    section = result.stdout.split("Loyalty:\n", 1)[1].splitlines()
    assert section == [
        "  tier:           gold",
        "  points balance: 12,345.50",
        "  member:         yes",
        "  since:          2024-05-01",
        "  last earned:    2026-03-02 00:30",  # in the display time zone
        "  expires:        -",
        "  会员等级:       金卡",
        "  address:",
        "    city: 上海",
        "    rooms:",
        "      home: 3",
        "  rewards:",
        "    - free night",
        "    - late check-out",
        "  vouchers:       (none)",
        "  history:",
        "    - when:   2026-01-02",
        "      points: 120",
        "    - when:   2026-02-03",
        "      points: 80",
    ]
    assert "{" not in result.stdout.split("Loyalty:", 1)[1]  # no raw JSON


def test_a_plugin_gives_its_text_form_with_a_txt_template(shop: Any) -> None:
    url, plugins, tmp_path = shop
    (tmp_path / "templates" / "visits" / "section.txt").write_text(
        "{% for v in visits %}{{ v.store }} -- {{ v.note }}\n{% endfor %}", encoding="utf-8"
    )
    text = show(url, plugins, "C-1").stdout
    assert text_template_name("visits/section.html") == "visits/section.txt"
    # rendered without HTML escaping, indented under the title
    assert (
        "Store visits:\n  Shanghai <One> -- <script>alert(1)</script> asked for samples\n"
        "  Hangzhou -- signed the visit book\nNotes & flags:\n" in text
    )
    # the HTML form still uses the .html template, escaped
    assert "&lt;script&gt;" in show(url, plugins, "C-1", "--format", "html").stdout


def test_a_failing_txt_template_becomes_an_error_section_in_text(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url, plugins, tmp_path = shop
    (tmp_path / "templates" / "visits" / "section.txt").write_text(
        "{{ visits | sum }}", encoding="utf-8"
    )
    result = show(url, plugins, "C-1")
    assert result.exit_code == 0, result.output
    assert (
        "Store visits:\n  error: plugin 'visits': the section 'Store visits' could not be shown: "
        "its text template 'visits/section.txt' failed: TypeError: " in result.stdout
    )
    assert "Notes & flags:\n  flags:\n    - key account\n" in result.stdout
    assert failed_records(caplog, "crmkit.cli.page360")


def test_data_lines_nest_and_align() -> None:
    assert data_lines({}) == ["(none)"]
    assert data_lines(["a", {"b_c": 1, "d": [2, 3]}], indent=1) == [
        " - a",
        " - b c: 1",
        "   d:",
        "     - 2",
        "     - 3",
    ]
    assert data_lines({"note": "two\nlines", "n": Decimal("-1234567.5")}) == [
        "note: two",
        "      lines",
        "n:    -1,234,567.5",
    ]


# -- consent: history, and what withdrawn profiling means (issue 14) --------------------------


def test_the_360_shows_the_consent_history_and_that_analyses_leave_the_customer_out(
    shop: Any,
) -> None:
    url, plugins, _ = shop
    text = show(url, plugins, "C-1").stdout
    assert "  consent: marketing yes, profiling withdrawn" in text
    assert (
        "  profiling consent withdrawn: analyses (segments, snapshots, clusters, lifetime "
        "value) leave this customer out" in text
    )
    history = text.split("consent history (oldest first):\n", 1)[1].splitlines()
    # the local operator who recorded them is named since issue 15 ("by python:<user>")
    assert re.search(r"marketing given \(create, by python:\S+\)$", history[0]), history[0]
    assert re.search(r"profiling withdrawn \(by python:\S+\)$", history[1]), history[1]
    data = json.loads(show(url, plugins, "C-1", "--format", "json").stdout)
    assert data["analyses"] == {
        "included": False,
        "reason": "profiling consent withdrawn: analyses (segments, snapshots, clusters, "
        "lifetime value) leave this customer out",
    }
    assert [(h["purpose"], h["granted"], h["source"]) for h in data["consent_history"]] == [
        ("marketing", True, "create"), ("profiling", False, None),
    ]  # fmt: skip
    page = show(url, plugins, "C-1", "--format", "html").stdout
    consent = " ".join(parse(page).text["section-consent"].split())
    assert "analyses (segments, snapshots, clusters, lifetime value) leave this customer out" in (
        consent
    )
    assert "History" in consent
    assert "marketinggivencreate" in consent.replace(" ", "")  # cells of the history row
    assert 'id="analyses-excluded"' in page


def test_a_customer_who_did_not_withdraw_profiling_is_analysed(make_crm: Any, database_url: str):
    crm = make_crm()
    crm.customers.add(name="Ann", consents={"profiling": True})
    text = show(database_url, [], "1").stdout
    assert "leave this customer out" not in text
    data = json.loads(show(database_url, [], "1", "--format", "json").stdout)
    assert data["analyses"] == {"included": True, "reason": None}
    assert 'id="analyses-excluded"' not in show(database_url, [], "1", "--format", "html").stdout


# -- the timeline merges the plugins' entries with the interactions ---------------------------


class Replies:
    """A test plugin contributing timeline entries (as complaints and knowledgebase do)."""

    CRMKIT_NAME = "replies"

    @staticmethod
    @crmkit.hookimpl
    def crmkit_customer_timeline(crm: Any, customer: Any, limit: int) -> list[Any]:
        entries = [
            TimelineEntry(
                at=at(2026, 2, 2, 8), kind="reply", title="We are <sorry>", body="Refund sent"
            ),
            TimelineEntry(at=at(2025, 12, 24), kind="case", title="Case opened", source="cases"),
        ]
        return entries[:limit]


class BrokenTimeline:
    CRMKIT_NAME = "broken_timeline"

    @staticmethod
    @crmkit.hookimpl
    def crmkit_customer_timeline(crm: Any, customer: Any, limit: int) -> list[Any]:
        raise KeyError("no such table")


def test_the_timeline_merges_plugin_entries_by_time(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url, plugins, _ = shop
    plugins = [*plugins, Replies, BrokenTimeline]
    data = json.loads(show(url, plugins, "C-1", "--format", "json").stdout)
    assert [(e["kind"], e["title"], e["source"]) for e in data["timeline"]] == [
        ("reply", "We are <sorry>", "replies"),
        ("interaction", "Quote <b>sent</b>", "crmkit"),
        ("interaction", "First call", "crmkit"),
        ("case", "Case opened", "cases"),
    ]
    assert data["timeline"][1]["channel"] == "email" and data["timeline"][1]["staff"] == "ann"
    text = show(url, plugins, "C-1").stdout
    timeline = text.split("timeline (4, newest first):\n", 1)[1].splitlines()[:4]
    assert timeline[0].endswith("replies reply: We are <sorry>")
    assert timeline[1].endswith("email outbound: Quote <b>sent</b>")
    assert timeline[3].endswith("cases case: Case opened")
    page = show(url, plugins, "C-1", "--format", "html").stdout
    found = " ".join(parse(page).text["section-timeline"].split())
    assert (
        found.index("We are <sorry>")
        < found.index("Quote <b>sent</b>")
        < found.index("Case opened")
    )
    assert "We are &lt;sorry&gt;" in page and 'data-kind="reply"' in page
    # the raising plugin is logged and left out; the rest shows
    records = failed_records(caplog, "crmkit.core.view360")
    assert any("broken_timeline" in r.getMessage() and r.exc_info for r in records)
    # the limit holds for the merged timeline
    short = json.loads(show(url, plugins, "C-1", "--format", "json", "--limit", "2").stdout)
    assert [e["title"] for e in short["timeline"]] == ["We are <sorry>", "Quote <b>sent</b>"]


def test_interaction_timeline_command_merges_plugin_entries(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url, plugins, _ = shop
    result = CliRunner().invoke(
        cli, ["--database", url, "interaction", "timeline", "C-1", "--format", "json"],
        obj=CliState(plugins=[*plugins, Replies, BrokenTimeline]), env={"CRMKIT_PLUGINS": ""},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["title"] for r in rows] == [
        "We are <sorry>", "Quote <b>sent</b>", "First call", "Case opened",
    ]  # fmt: skip
    # the failing plugin is logged (the console script shows it as one warning line)
    records = failed_records(caplog, "crmkit.core.view360")
    assert any("plugin 'broken_timeline' failed" in r.getMessage() for r in records)
