"""Reply templates: rendered in Jinja2's sandbox with the customer's fields and the variables
other plugins contribute (a stand-in plugin contributes ``complaint`` here)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from crmkit_knowledgebase import service
from crmkit_knowledgebase.plugin import COMPLAINT_SAMPLES, counts
from crmkit_knowledgebase.transfer import import_dir

import crmkit.plugin as ck
from crmkit.plugin import NotFound, PluginError, ValidationError

COMPLAINT = {"id": 7, "customer_id": None, "category": "delivery", "channel": "email",
             "description": "parcel <late>", "tracking_code": "C-123"}  # fmt: skip


def test_text_template_renders_customer_and_complaint_fields(kb_complaint: Any) -> None:
    kb = kb_complaint
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


def test_html_template_escapes_every_field(kb_complaint: Any) -> None:
    kb = kb_complaint
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
        ("{{ shop }}", r"template '\w+' uses shop \(line 1\), which no enabled plugin provides; "
                       "templates can use: customer, company, staff, now, complaint; remove it"),
        ("{% if x %}\n{{ complaint.id }}{{ order.total }}{{ x }}{% endif %}",
         r"uses order \(line 2\), x \(line 1\), which no enabled plugin provides.*remove them"),
        ("{% if %}", "does not compile: line 1"),
    ]  # fmt: skip


def test_unsafe_or_unknown_templates_are_refused(kb_complaint: Any) -> None:
    kb = kb_complaint
    kb.add_template("ok", "Hello {{ customer.name }}")
    before = counts(kb.crm)
    for body, message in UNSAFE_OR_UNKNOWN:
        with pytest.raises(ValidationError, match=message):
            kb.add_template("bad", body)
        with pytest.raises(ValidationError, match=message):
            kb.edit_template("ok", body=body)
    assert counts(kb.crm) == before and kb.template("ok").body == "Hello {{ customer.name }}"


def test_render_errors_are_clear(kb_complaint: Any) -> None:
    kb = kb_complaint
    kb.add_template("needs-complaint", "Re {{ complaint.tracking_code }}")
    with pytest.raises(ValidationError, match="uses complaint but no complaint was given"):
        kb.render("needs-complaint")
    kb.add_template("needs-customer", "Dear {{ customer.name }}")
    with pytest.raises(ValidationError, match="uses customer but no customer was given"):
        kb.render("needs-customer")
    # a field the object given lacks: the render fails naming the template and the field
    ann = kb.crm.customers.add(name="Ann")
    with pytest.raises(ValidationError, match="'needs-complaint' uses a field that does not "
                       "exist: 'dict object' has no attribute 'tracking_code'.*complaint fields: "
                       "id, customer_id"):  # fmt: skip
        kb.render("needs-complaint", customer_id=ann.id, complaint={"id": 1})
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


def test_a_knowledge_base_alone_refuses_variables_no_plugin_provides(kb: Any) -> None:
    """Without a plugin contributing ``complaint``, a template using it is refused when it is
    saved (by hand or imported) with one error saying what, where and how to fix it; the
    built-in variables keep working."""
    ann = kb.crm.customers.add(name="Ann")
    kb.crm.settings["knowledgebase"]["company"] = "Acme"
    kb.add_template("hello", "Dear {{ customer.name }},\n{{ company }} {{ staff }} {{ now.year }}")
    assert kb.render("hello", customer_id=ann.id, staff="Sam").startswith("Dear Ann,\nAcme Sam 20")
    assert kb.template_variables() == {}
    message = (
        "template 'ack' uses complaint (line 2), which no enabled plugin provides; templates "
        "can use: customer, company, staff, now; remove it from the template, or enable the "
        "plugin that contributes it (plugins add variables through "
        "crmkit_knowledgebase_register_template_variables)"
    )
    before = counts(kb.crm)
    with pytest.raises(ValidationError) as refused:
        kb.add_template("ack", "Dear {{ customer.name }},\nyour case {{ complaint.tracking_code }}")
    assert str(refused.value) == message
    with pytest.raises(ValidationError, match="'hello' uses complaint .line 1., which no enabled"):
        kb.edit_template("hello", body="{{ complaint.id }}")
    with pytest.raises(ValidationError, match=r"complaint-ack.md: template 'complaint-ack' uses "
                       r"complaint \(line 3\), which no enabled plugin provides"):  # fmt: skip
        import_dir(kb, COMPLAINT_SAMPLES)
    assert counts(kb.crm) == before
    # a complaint given to a template that does not use it changes nothing
    assert kb.render("hello", customer_id=ann.id, complaint={"id": 1}).startswith("Dear Ann")


def test_a_template_saved_while_a_variable_was_provided_fails_clearly_without_it(
    kb_complaint: Any, make_crm: Any
) -> None:
    kb = kb_complaint
    import_dir(kb, COMPLAINT_SAMPLES)
    ann = kb.crm.customers.add(name="Ann")
    alone = service(make_crm(plugins=["knowledgebase"]))  # the same database
    with pytest.raises(ValidationError, match="'complaint-ack' uses complaint .line 3., which no"):
        alone.render("complaint-ack", customer_id=ann.id, complaint={"tracking_code": "C-1"})


@attrs.frozen
class Facts:
    """What a complaints plugin might pass: declared fields and one that is not."""

    id: int
    customer_id: int
    category: str
    channel: str
    description: str
    tracking_code: str
    received_at: dt.datetime
    internal_note: str = "not for customers"


def test_only_the_declared_fields_are_read_from_the_object_given(kb_complaint: Any) -> None:
    kb = kb_complaint
    ann = kb.crm.customers.add(name="Ann")
    at = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    facts = Facts(7, ann.id, "delivery", "email", "late", "C-7", at)
    # a placeholder lets a field's methods through at save: the value's type is not declared
    kb.add_template("ack", "{{ customer.name }}: {{ complaint.tracking_code }} of "
                    "{{ complaint.received_at.strftime('%d.%m.%Y') }}")  # fmt: skip
    assert kb.render("ack", complaint=facts) == "Ann: C-7 of 02.03.2026"
    assert kb.render("ack", variables={"complaint": facts}) == "Ann: C-7 of 02.03.2026"
    # a field the object has but the variable does not declare is not there for templates
    with pytest.raises(ValidationError, match="uses a field that does not exist: 'dict object' "
                       "has no attribute 'internal_note'"):  # fmt: skip
        kb.add_template("leak", "{{ complaint.internal_note }}")
    sent = kb.send(ann.id, template="ack", complaint=facts, channel="email")
    assert (sent.complaint_id, sent.body) == (7, "Ann: C-7 of 02.03.2026")
    with pytest.raises(ValidationError, match="give the complaint once"):
        kb.render("ack", complaint=facts, variables={"complaint": {"id": 8}})
    with pytest.raises(ValidationError, match="variables customer are built in"):
        kb.render("ack", complaint=facts, variables={"customer": {"name": "x"}})


class Contributes:
    """A plugin contributing whatever ``ANSWER`` is."""

    CRMKIT_API = ">=1.0,<2"
    ANSWER: Any = None

    @classmethod
    @ck.hookimpl(optionalhook=True)
    def crmkit_knowledgebase_register_template_variables(cls) -> Any:
        return cls.ANSWER


def plugin_answering(name: str, answer: Any) -> type:
    return type(name, (Contributes,), {"ANSWER": answer})


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"customer": {"vip": "x"}}, "'customer' is built in"),
        ({"2fa": {"x": "y"}}, "variable name '2fa'"),
        ({"order": ["total"]}, "the fields of 'order' must map field names to descriptions"),
        (["order"], "a list, not a dict"),
    ],
)
def test_a_bad_contribution_names_the_plugin(make_crm: Any, answer: Any, message: str) -> None:
    kb = service(make_crm(plugins=["knowledgebase", plugin_answering("Shop", answer)]))
    with pytest.raises(PluginError, match=f"plugin 'Shop' contributes template variables that "
                       f"are not valid .*: {message}"):  # fmt: skip
        kb.add_template("x", "{{ customer.name }}")


def test_two_plugins_may_not_contribute_the_same_variable(make_crm: Any) -> None:
    order = {"order": {"total": "the order's total"}}
    crm = make_crm(plugins=["knowledgebase", plugin_answering("Shop", order),
                            plugin_answering("Till", order)])  # fmt: skip
    with pytest.raises(PluginError, match="plugins '.*' and '.*' both contribute the template "
                       "variable 'order'"):  # fmt: skip
        service(crm).template_variables()
    crm = make_crm(plugins=["knowledgebase", plugin_answering("Shop", order)])
    assert service(crm).template_variables() == order
