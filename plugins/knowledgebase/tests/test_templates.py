"""Reply templates: rendered in Jinja2's sandbox with customer and complaint fields."""

from __future__ import annotations

from typing import Any

import pytest
from crmkit_knowledgebase.plugin import counts

from crmkit.plugin import NotFound, ValidationError

COMPLAINT = {"id": 7, "customer_id": None, "category": "delivery", "channel": "email",
             "description": "parcel <late>", "tracking_code": "C-123"}  # fmt: skip


def test_text_template_renders_customer_and_complaint_fields(kb: Any) -> None:
    crm = kb.crm
    ann = crm.customers.add(name="Ann <Lee>", email="ann@example.com", city="杭州")
    kb.add_template(
        "delay", "Dear {{ customer.name }} ({{ customer.city }}{{ customer.phone }}),\n"
        "about {{ complaint.tracking_code }}: {{ complaint.description }}\n-- {{ staff }}",
        triggers=["late", "没到"],
    )  # fmt: skip
    text = kb.render("delay", customer_id=ann.id, complaint=COMPLAINT, staff="Sam")
    # plain text is not escaped; a missing value (no phone) prints as nothing
    assert text == "Dear Ann <Lee> (杭州),\nabout C-123: parcel <late>\n-- Sam"
    # the complaint's customer is used when no customer is given
    text = kb.render("delay", complaint={**COMPLAINT, "customer_id": ann.id})
    assert text.startswith("Dear Ann <Lee> (杭州),")


def test_html_template_escapes_every_field(kb: Any) -> None:
    crm = kb.crm
    ann = crm.customers.add(name="<script>alert(1)</script>")
    kb.add_template("ack", "<p>Dear {{ customer.name }}</p><p>{{ complaint.description }}</p>",
                    format="html")  # fmt: skip
    html = kb.render("ack", customer_id=ann.id, complaint=COMPLAINT)
    assert html == ("<p>Dear &lt;script&gt;alert(1)&lt;/script&gt;</p>"
                    "<p>parcel &lt;late&gt;</p>")  # fmt: skip


UNSAFE_OR_UNKNOWN = [
        ("{{ ''.__class__.__mro__ }}", "tried to reach outside the sandbox"),
        ("{{ customer.name.__class__.__base__.__subclasses__() }}", "outside the sandbox"),
        ("{{ cycler.__init__.__globals__ }}", "outside the sandbox"),
        ("{% for x in customer.__class__.__mro__ %}{% endfor %}", "outside the sandbox"),
        ("{{ customer.shoe_size }}", "uses a field that does not exist: 'dict object' has no "
                                     "attribute 'shoe_size'"),
        ("{{ complaint.mood }}", "field that does not exist"),
        ("{{ shop }}", r"uses unknown name\(s\) shop; templates can use: customer"),
        ("{% if %}", "does not compile: line 1"),
    ]  # fmt: skip


def test_unsafe_or_unknown_templates_are_refused(kb: Any) -> None:
    kb.add_template("ok", "Hello {{ customer.name }}")
    before = counts(kb.crm)
    for body, message in UNSAFE_OR_UNKNOWN:
        with pytest.raises(ValidationError, match=message):
            kb.add_template("bad", body)
        with pytest.raises(ValidationError, match=message):
            kb.edit_template("ok", body=body)
    assert counts(kb.crm) == before and kb.template("ok").body == "Hello {{ customer.name }}"


def test_render_errors_are_clear(kb: Any) -> None:
    kb.add_template("needs-complaint", "Re {{ complaint.tracking_code }}")
    with pytest.raises(ValidationError, match="uses complaint fields but no complaint was given"):
        kb.render("needs-complaint")
    with pytest.raises(NotFound, match="reply template 'ghost' not found"):
        kb.render("ghost")
    with pytest.raises(ValidationError, match="format 'pdf' is not valid; use one of: text, html"):
        kb.add_template("pdf", "x", format="pdf")
    with pytest.raises(ValidationError, match="already exists"):
        kb.add_template("needs-complaint", "x")


def test_sends_are_recorded_and_listed_in_the_customer_360(kb: Any) -> None:
    crm = kb.crm
    ann = crm.customers.add(name="Ann")
    kb.add_template("thanks", "Thank you, {{ customer.name }}!", title="Thanks")
    article = kb.add("Warranty <terms>", "Two years.", audience="public", status="published")
    kb.send(ann.id, template="thanks", channel="email", staff="sam")
    kb.send(ann.id, article=article.slug, channel="chat")
    view = crm.customers.view(ann.id)
    section = next(s for s in view.sections if s.name == "knowledgebase")
    sends = section.data["sends"]
    assert [(s["kind"], s["title"], s["channel"]) for s in sends] == [
        ("article", "Warranty <terms>", "chat"), ("template", "Thanks", "email")]  # fmt: skip
    assert kb.sends(ann.id)[1].body == "Thank you, Ann!"
    html = crm.templates.get_template(section.template).render(**section.data)
    assert "<td>Warranty &lt;terms&gt;</td>" in html and "<td>sam</td>" in html
    bob = crm.customers.add(name="Bob")
    assert all(s.name != "knowledgebase" for s in crm.customers.view(bob.id).sections)
    with pytest.raises(ValidationError, match="exactly one of a template or an article"):
        kb.send(ann.id)
    # erasure blanks the sent texts, which quote the customer
    crm.customers.erase(ann.id)
    assert {s.body for s in kb.sends(ann.id)} == {""}
