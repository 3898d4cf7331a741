"""`crmkit kb ...` through click's CliRunner; bad input gives one `error:` line, changes nothing."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from crmkit_knowledgebase import service
from crmkit_knowledgebase.plugin import SAMPLES, counts

from crmkit.testing import run_cli

#: what a write through the CLI without --author records as its author: the local operator
OPERATOR = f"cli:{getpass.getuser()}"


def run(url: str, *args: str) -> Any:
    return run_cli(["kb", *args], database=url, plugins=["knowledgebase"])


def ok(url: str, *args: str) -> str:
    r = run(url, *args)
    assert r.exit_code == 0, r.output
    return r.output


def as_json(url: str, *args: str) -> Any:
    return json.loads(ok(url, *args, "--format", "json"))


@pytest.fixture
def setup(make_crm: Any, database_url: str) -> Any:
    crm = make_crm(plugins=["knowledgebase"])
    return crm, database_url


def test_article_walkthrough(setup: Any, tmp_path: Path) -> None:
    crm, url = setup
    body = tmp_path / "body.md"
    body.write_text("收到商品后 30 天内可以申请退款。\n", encoding="utf-8")
    (row,) = as_json(url, "add", "--title", "退款政策", "--body-file", str(body), "--category",
                     "billing", "--tag", "退款", "--tag", "refund", "--audience", "public")  # fmt: skip
    assert (row["slug"], row["status"], row["revision"]) == ("退款政策", "draft", 1)
    ok(url, "add", "--title", "Warranty", "--body", "Two years on *everything*.", "--status",
       "published", "--audience", "public")  # fmt: skip
    ok(url, "edit", "退款政策", "--body", "收到商品后 14 天内可以申请退款。\n", "--author", "ann",
       "--message", "shorter window")  # fmt: skip
    (row,) = as_json(url, "edit", "退款政策", "--status", "published")
    assert row["revision"] == 3
    r = run(url, "edit", "退款政策", "--status", "published")
    assert r.exit_code == 0 and "unchanged (revision 3)" in r.output

    out = ok(url, "show", "退款政策")
    assert out.startswith("# 退款政策\nslug: 退款政策  category: billing  audience: public  "
                          "status: published  revision: 3\ntags: 退款, refund\nviews: 1")  # fmt: skip
    assert "14 天内" in out
    assert "30 天内" in ok(url, "show", "退款政策", "--revision", "1")
    assert [a["slug"] for a in as_json(url, "list", "--tag", "退款")] == ["退款政策"]
    assert [a["slug"] for a in as_json(url, "list", "--status", "published")] == [
        "退款政策", "warranty"]  # fmt: skip

    history = as_json(url, "history", "退款政策")
    assert [(h["revision"], h["author"], h["message"]) for h in history] == [
        (1, OPERATOR, "created"), (2, "ann", "shorter window"),
        (3, OPERATOR, "changed status")]  # fmt: skip
    d = ok(url, "diff", "退款政策", "1", "2")
    assert "-收到商品后 30 天内可以申请退款。\n+收到商品后 14 天内可以申请退款。\n" in d
    assert ok(url, "diff", "退款政策", "2", "2") == "(no differences)\n"
    assert "restored from revision 1 as revision 4" in ok(url, "restore", "退款政策", "1")
    assert service(crm).get("退款政策").body == "收到商品后 30 天内可以申请退款。\n"

    assert "warranty: 1 helpful, 0 not helpful" in ok(url, "vote", "warranty", "--helpful")
    assert "warranty: 1 helpful, 1 not helpful" in ok(url, "vote", "warranty", "--not-helpful")

    hits = as_json(url, "search", "退款")
    assert [h["slug"] for h in hits] == ["退款政策"] and "<mark>退款</mark>" in hits[0]["snippet"]
    out = ok(url, "search", "everyth")
    assert out.startswith("warranty  Warranty  (general, published, score ")
    assert "[everything]" in out  # marks shown as brackets in the terminal
    assert ok(url, "search", "退款", "--audience", "internal") == "no article matches '退款'\n"


def test_templates_suggest_and_send(setup: Any) -> None:
    crm, url = setup
    ann = crm.customers.add(name="Ann")
    assert "1 trigger(s)" in ok(url, "template", "add", "thanks", "--body",
                                "Dear {{ customer.name }}, thanks.", "--trigger", "broken screen")  # fmt: skip
    assert ok(url, "template", "render", "thanks", "--customer", str(ann.id)) == (
        "Dear Ann, thanks.\n")  # fmt: skip
    out = ok(url, "send", "--customer", str(ann.id), "--template", "thanks", "--show")
    assert "recorded send #1: template 'thanks' to customer" in out and "Dear Ann" in out
    rows = as_json(url, "suggest", "--text", "My phone arrived with a broken screen!")
    assert rows[0]["ref"] == "thanks" and rows[0]["triggers"] == ["broken screen"]
    r = run(url, "suggest", "--text", "completely unrelated zebra")
    assert r.output == "no template or article matches this message\n"


def test_template_variables_are_listed(
    make_crm: Any, cli_runner: Any, complaint_variables: type
) -> None:
    make_crm(plugins=["knowledgebase"])
    alone = cli_runner(["kb", "template", "variables", "--format", "json"],
                       plugins=["knowledgebase"])  # fmt: skip
    assert alone.exit_code == 0, alone.output
    rows = json.loads(alone.output)
    assert {r["variable"] for r in rows} == {"customer", "company", "staff", "now"}
    assert {"variable": "customer", "field": "email", "description": "the customer's email"} in rows
    both = cli_runner(["kb", "template", "variables", "--format", "json"],
                      plugins=["knowledgebase", complaint_variables])  # fmt: skip
    rows = json.loads(both.output)
    assert {"variable": "complaint", "field": "tracking_code",
            "description": "the complaint's tracking_code"} in rows  # fmt: skip


def test_import_export_and_site(setup: Any, tmp_path: Path) -> None:
    crm, url = setup
    out = ok(url, "import", str(SAMPLES))
    assert out.startswith("articles created: 23, articles updated: 0")
    assert "templates created: 20" in out
    out = ok(url, "export", str(tmp_path / "out"))
    assert out == f"exported 23 article(s), 20 template(s) to {tmp_path / 'out'}\n"
    assert "articles unchanged: 23" in ok(url, "import", str(tmp_path / "out"))
    out = ok(url, "export", str(tmp_path / "yaml"), "--front-matter", "yaml")
    assert out == f"exported 23 article(s), 20 template(s) to {tmp_path / 'yaml'}\n"
    refund = (tmp_path / "yaml" / "articles" / "refund-policy.md").read_text(encoding="utf-8")
    assert refund.startswith("---\nslug: refund-policy\ntitle: Refund policy\n")
    out = ok(url, "import", str(tmp_path / "yaml"))
    assert "articles unchanged: 23" in out and "templates unchanged: 20" in out
    out = ok(url, "export-site", str(tmp_path / "site"), "--title", "Help & support")
    assert out.startswith(f"site written to {tmp_path / 'site'}: 20 article(s) in ")
    assert "Help &amp; support" in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    rows = as_json(url, "suggest", "--text", "我的快递怎么还没到？", "--limit", "3")
    assert rows[0]["ref"] == "delivery-delay-zh" and len(rows) == 3


def test_bad_input_gives_one_error_line_and_changes_nothing(setup: Any, tmp_path: Path) -> None:
    crm, url = setup
    ok(url, "import", str(SAMPLES))
    before = counts(crm)
    bad = tmp_path / "bad" / "articles"
    bad.mkdir(parents=True)
    (bad / "fine.md").write_text('+++\ntitle = "Fine"\n+++\nnew\n', encoding="utf-8")
    (bad / "broken.md").write_text('+++\ntitle = "x"\ntags = "refund"\n+++\n', encoding="utf-8")
    evil = tmp_path / "evil.txt"
    evil.write_text("{{ ''.__class__.__mro__ }}", encoding="utf-8")
    cases = [
        (["import", str(tmp_path / "bad")],
         f"error: {bad / 'broken.md'}: tags must be a list of strings"),
        (["show", "no-such-article"], "error: knowledge base article 'no-such-article' not found"),
        (["edit", "999", "--title", "x"], "error: knowledge base article '999' not found"),
        (["vote", "ghost", "--helpful"], "error: knowledge base article 'ghost' not found"),
        (["restore", "refund-policy", "9"], "error: article 'refund-policy' has no revision 9"),
        (["diff", "refund-policy", "1", "5"], "error: article 'refund-policy' has no revision 5"),
        (["template", "add", "evil", "--body-file", str(evil)],
         "error: template 'evil' tried to reach outside the sandbox"),
        (["template", "add", "odd", "--body", "{{ customer.shoe_size }}"],
         "error: template 'odd' uses a field that does not exist"),
        (["template", "edit", "refund-request", "--body", "{{ ''.__class__ }}"],
         "error: template 'refund-request' tried to reach outside the sandbox"),
        (["search", ""], "error: search query is empty"),
        (["search", "  ?! "], "error: search query '  ?! ' has no words"),
        (["suggest", "--text", " "], "error: message text is empty"),
        (["edit", "refund-policy"], "error: nothing to change"),
        (["add", "--title", " "], "error: article 1 (' '): article title must not be empty"),
        (["import", str(tmp_path / "missing")], "is not a directory"),
    ]  # fmt: skip
    for args, message in cases:
        r = run(url, *args)
        assert r.exit_code == 1, (args, r.output)
        assert r.output.count("\n") == 1 and r.output.startswith("error: "), (args, r.output)
        assert message in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert counts(crm) == before
    assert service(crm).template("refund-request").body.startswith("Dear {{ customer.name }}")
