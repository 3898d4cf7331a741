"""`kb import` / `kb export`: Markdown with TOML (+++) or YAML (---) front matter, round trips
without loss in both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crmkit_knowledgebase.plugin import SAMPLES, counts
from crmkit_knowledgebase.transfer import (
    ARTICLE_KEYS,
    dump_article,
    export_dir,
    import_dir,
    parse,
    read_article,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.plugin import ValidationError


def snapshot(kb: Any) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    articles = [a.content() for a in kb.list(limit=None)]
    templates = [(t.name, t.title, t.format, t.category, t.triggers, t.body)
                 for t in kb.templates()]  # fmt: skip
    return articles, templates


FIRST_LINES = {
    "toml": '+++\nslug = "退款政策"\ntitle = "退款政策"\ncategory = "账单与付款"\n'
    'tags = ["退款", "退货", "退钱"]\nproducts = []\naudience = "public"\n',
    "yaml": "---\nslug: 退款政策\ntitle: 退款政策\ncategory: 账单与付款\ntags: [退款, 退货, 退钱]\n"
    "products: []\naudience: public\n",
}


@pytest.mark.parametrize("front_matter", ["toml", "yaml"])
def test_export_then_import_into_an_empty_base_loses_nothing(
    samples: Any, second_kb: Any, tmp_path: Path, front_matter: str
) -> None:
    samples.add("Tricky: yes", "line one\r\nline \"two\" \\ \t tab\n\n+++\n---\nnot front matter\n",
                tags=["a,b", "引号\"", "x y", "null", "- [x]", "#1"], products=["P-1"],
                slug="tricky", category="2026-01-01")  # fmt: skip
    samples.add("No body", "", category="空 类别")
    exported = export_dir(samples, tmp_path, front_matter=front_matter)
    assert exported == {"articles": 25, "templates": 20}
    text = (tmp_path / "articles" / "退款政策.md").read_text(encoding="utf-8")
    assert text.startswith(FIRST_LINES[front_matter])
    other = second_kb
    result = import_dir(other, tmp_path, author="importer")
    assert result["articles_created"] == 25 and result["templates_created"] == 20
    assert snapshot(other) == snapshot(samples)
    # importing the same files again changes nothing; an edited file is one new revision
    again = import_dir(other, tmp_path)
    assert (again["articles_unchanged"], again["templates_unchanged"]) == (25, 20)
    path = tmp_path / "articles" / "tricky.md"
    path.write_bytes(path.read_bytes().replace(b"line one", b"line 1"))
    assert import_dir(other, tmp_path)["articles_updated"] == 1
    history = other.revisions("tricky")
    assert [(r.number, r.message) for r in history] == [(1, "imported"), (2, "imported")]
    assert history[-1].body.startswith("line 1\r\n")


BROKEN = [
    (
        "no front matter",
        r"broken.md: no front matter; start the file with a line '\+\+\+' and "
        "TOML .*or a line '---' and YAML",
    ),
    ('+++\ntitle = "x"\n', "broken.md: front matter is not closed; add a line '\\+\\+\\+'"),
    ('+++\ntitle = "x\n+++\n', "broken.md: invalid front matter: .*at line 2"),
    ("---\ntitle: x\n", "broken.md: front matter is not closed; add a line '---' after it"),
    (
        "---\ntitle: x\ntags: [a, b\n---\n",
        "broken.md: line 4: invalid YAML front matter: expected ',' or ']'.* starts on line 3",
    ),
    (
        "---\ntitle: Refund: policy\n---\n",
        "broken.md: line 2: invalid YAML front matter: mapping "
        "values are not allowed here; write YAML such as",
    ),
    ("---\ntitle: x\ntitle: y\n---\n", "broken.md: line 3: .*key 'title' is given twice"),
    (
        "---\ntitle: !!python/object/apply:os.system [ls]\n---\n",
        "broken.md: line 2: invalid YAML front matter: could not determine a constructor",
    ),
    ("---\n- title\n---\n", "broken.md: YAML front matter must be keys with values"),
    ("---\ntitle: yes\n---\n", 'broken.md: title must be a string, e.g. title: "..." \\(quote'),
    (
        "---\ntitle: x\ntags: refund\n---\n",
        r"broken.md: tags must be a list of strings, e.g. "
        r"tags: \[a, b\]",
    ),
    ("---\ntitle: x\ndate: 2024-01-01\n---\n", "broken.md: unknown front matter key.*date"),
    ("---\ncategory: x\n---\n", "broken.md: front matter needs a title, e.g. title: Refund"),
    ('+++\ntitle = "x"\ncolour = "red"\n+++\n', "broken.md: unknown front matter key.*colour"),
    ('+++\ntitle = "x"\ntags = "refund"\n+++\n', "broken.md: tags must be a list of strings"),
    ('+++\ntitle = "x"\nstatus = "live"\n+++\n', "broken.md: article status 'live'"),
    ('+++\ncategory = "x"\n+++\n', "broken.md: front matter needs a title"),
    ('+++\ntitle = "x"\nslug = "a b"\n+++\n', "broken.md: slug 'a b' is not valid"),
]


def test_invalid_files_name_the_file_and_field_and_import_nothing(kb: Any, tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "a-good-one.md").write_text('+++\ntitle = "Fine"\n+++\nok\n')
    (tmp_path / "articles" / "a-yaml-one.md").write_text("---\ntitle: Fine too\n---\nok\n")
    for content, message in BROKEN:
        (tmp_path / "articles" / "broken.md").write_text(content, encoding="utf-8")
        with pytest.raises(ValidationError, match=message):
            import_dir(kb, tmp_path)
    assert counts(kb.crm)["articles"] == 0


def test_an_unsafe_template_file_is_refused_and_nothing_is_imported(
    kb: Any, tmp_path: Path
) -> None:
    export = tmp_path / "in"
    (export / "templates").mkdir(parents=True)
    (export / "articles").mkdir()
    (export / "articles" / "fine.md").write_text('+++\ntitle = "Fine"\n+++\nok\n')
    (export / "templates" / "evil.md").write_text("+++\n+++\n{{ ''.__class__.__mro__ }}\n")
    with pytest.raises(ValidationError, match=r"evil.md: template 'evil' tried to reach outside"):
        import_dir(kb, export)
    assert counts(kb.crm) == dict.fromkeys(counts(kb.crm), 0)


def test_a_malformed_yaml_header_is_one_clear_error_and_imports_nothing(
    kb: Any, tmp_path: Path
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "fine.md").write_text("---\ntitle: Fine\ntags: [a, b]\n---\nok\n")
    (tmp_path / "templates" / "thanks.md").write_text("---\n---\nThanks, {{ customer.name }}\n")
    broken = tmp_path / "shipping.md"
    broken.write_text(
        "---\ntitle: Shipping\ncategory: delivery\ntags: [shipping, late\naudience: public\n---\n"
        "Body.\n", encoding="utf-8",
    )  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        import_dir(kb, tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{broken}: line 5: invalid YAML front matter: expected ',' or ']'")
    assert "starts on line 4" in message and message.count("\n") == 0
    assert counts(kb.crm) == dict.fromkeys(counts(kb.crm), 0)
    broken.write_text("---\ntitle: Shipping\ntags: [shipping, late]\n---\nBody.\n")
    assert import_dir(kb, tmp_path)["articles_created"] == 2
    assert kb.get("shipping").tags == ["shipping", "late"]
    assert kb.template("thanks").body == "Thanks, {{ customer.name }}\n"


def test_export_refuses_an_unknown_format(kb: Any, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="front matter format 'json' is not valid; use one "
                       "of: toml, yaml"):  # fmt: skip
        export_dir(kb, tmp_path, front_matter="json")


def test_samples_import_into_an_empty_base(kb: Any) -> None:
    result = import_dir(kb, SAMPLES)
    assert result["articles_created"] == 23
    assert {a.status for a in kb.list(limit=None)} == {"published", "draft", "archived"}


names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
bodies = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
formats = st.sampled_from(["toml", "yaml"])


@settings(deadline=None)  # timing varies on a loaded CI machine
@given(
    title=names.filter(lambda s: s.strip() == s),
    category=names,
    tags=st.lists(names, max_size=4),
    body=bodies,
    audience=st.sampled_from(["internal", "public"]),
    status=st.sampled_from(["draft", "published", "archived"]),
    front_matter=formats,
)
def test_front_matter_and_body_round_trip(
    title: str, category: str, tags: list[str], body: str, audience: str, status: str,
    front_matter: str,
) -> None:  # fmt: skip
    content = {"slug": "s", "title": title, "category": category, "tags": tags, "products": [],
               "audience": audience, "status": status, "body": body}  # fmt: skip
    meta, parsed_body = parse(dump_article(content, front_matter), "x.md")
    assert parsed_body == body  # byte for byte, line endings and fence lines included
    assert meta == {k: content[k] for k in ARTICLE_KEYS}


# what the database keeps of an article: stripped titles and categories, distinct names, no NUL
stored_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
).map(str.strip).filter(bool)  # fmt: skip
stored_bodies = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        max_size=200)  # fmt: skip
articles = st.fixed_dictionaries(
    {
        "title": stored_names,
        "category": stored_names,
        "tags": st.lists(stored_names, max_size=4, unique=True),
        "products": st.lists(stored_names, max_size=2, unique=True),
        "body": stored_bodies,
        "audience": st.sampled_from(["internal", "public"]),
        "status": st.sampled_from(["draft", "published", "archived"]),
    }
)


@settings(
    deadline=None, max_examples=30,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(data=articles, front_matter=formats)
def test_export_then_import_is_exact_for_generated_articles(
    kb: Any, tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any], front_matter: str
) -> None:
    """Through the database: add, export in either format, read the file back, compare."""
    article = kb.add(**data)
    folder = tmp_path_factory.mktemp("export")
    export_dir(kb, folder, front_matter=front_matter)
    read = read_article(folder / "articles" / f"{article.slug}.md")
    assert read == article.content()
    kb.edit(article.id, **read)  # importing it is no change: no new revision
    assert kb.get(article.id).revision == 1
