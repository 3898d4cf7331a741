"""Rendering a reply template is bounded: range sizes, loop iterations, sizes of what it builds
(``*``, ``**``, widths, ``~``, ...), output and time. Each bomb is refused with a clear error,
at save (the trial render has the same limits) and at render.

The bombs run in a forked child with a memory limit and a timeout, so that a missing bound
fails the test (the child runs out of memory or does not return) instead of the machine.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import resource
from typing import Any

import jinja2
import pytest
from crmkit_knowledgebase import plugin, service, templating
from crmkit_knowledgebase.limits import MAX_NUMBER_BITS, Limits, size
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import insert

import crmkit.plugin as ck
from crmkit.plugin import ValidationError

#: (name, template, what the error says); every one is refused with the default limits
BOMBS = [
    ("nested ranges", "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}"
                      "{% endfor %}{% endfor %}", "range(100000) has 100,000 numbers, more than "
                      "template_max_range (10,000)"),
    ("nested loops", "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}"
                     "{% endfor %}", "its loops ran more than 100,000 times; make the template do "
                     "less, or raise template_max_loop_iterations (now 100,000)"),
    ("a deep loop", "{% set l = range(1000)|list %}{% for a in l %}{% for b in l %}"
                    "{% for c in l %}{% endfor %}{% endfor %}{% endfor %}",
     "its loops ran more than 100,000 times"),
    ("huge multiplication", "{{ 'a' * 10**10 }}", "'a' * 10,000,000,000 would build "
                            "10,000,000,000 characters or items, more than template_max_output "
                            "(200,000)"),
    ("list multiplication", "{{ [0] * 10**9 }}", "[0] * 1,000,000,000 would build"),
    ("power", "{{ 10 ** 100000 }}", f"10 ** 100000 would be a number of about 332,193 bits, "
                                    f"more than {MAX_NUMBER_BITS:,}"),
    ("squaring in a loop", "{% set ns = namespace(n=3) %}{% for i in range(64) %}"
                           "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}",
     "would be a number of about"),
    ("long output", "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",
     "its text grew longer than 200,000 characters"),
    ("doubling with ~", "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
                        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     "it built a text or list of more than 200,000 characters or items"),
    ("doubling a list", "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}"
                        "{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
     "it built a text or list of more than 200,000"),
    ("extend in a loop", "{% set l = [1] %}{% for i in range(64) %}{% set _ = l.extend(l) %}"
                         "{% endfor %}", "it built a text or list of more than 200,000"),
    ("a width", "{{ 'a'.ljust(10**10) }}", "a width of 10,000,000,000 would build"),
    ("a filter's width", "{{ 'a'|center(9999999999) }}", "center(9999999999): a width of"),
    ("% formatting", "{{ '%9999999999d'|format(1) }}", "format '%9999999999d': a width of"),
    ("str.format", "{{ '{:>9999999999}'.format(1) }}", "format spec '>9999999999': a width of"),
    ("a width from the arguments", "{{ '{:>{}}'.format(1, 10**9) }}",
     "fields inside a format spec are not allowed in templates; write the width as a number"),
    ("replace", "{% set s = 'a' * 1000 %}{{ s.replace('a', s) }}", ".replace() would build "
                "1,000,000 characters"),
    ("join", "{% set s = 'a' * 10000 %}{{ s.join(range(5000)|map('string')) }}",
     ".join() would build"),
    ("buffered in a macro", "{% macro m() %}{% for i in range(10000) %}{{ 'x' * 100000 }}"
                            "{% endfor %}{% endmacro %}{{ m()|length }}",
     "it built and printed more than 4,000,000 characters and items in all"),
    ("literal text in a set block", "{% set x %}{% for i in range(10000) %}" + "y" * 1000 +
     "{% endfor %}{% endset %}{{ x|length }}", "built and printed more than 4,000,000"),
    ("batch", "{{ [1]|batch(10**9, 0)|list }}", "batch(1000000000, ...): a width of"),
    ("lipsum", "{{ lipsum(10**6) }}", "lipsum(1000000, max=100) would build"),
    ("rounding", "{{ 5|round(-1000000000) }}", "round(5, -1000000000) would compute "
                 "10 ** 1,000,000,000, a number of more than 4,096 bits"),
    ("rounding down", "{{ 5|round(1000000000, 'floor') }}", "would compute 10 ** 1,000,000,000"),
    ("to_bytes", "{{ (5).to_bytes(10**9, 'big') }}", "5.to_bytes(): a width of 1,000,000,000"),
    ("recursion", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
     "its macros or recursive loops call themselves too deeply"),
    ("exponential recursion", "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}"
                              "{% endif %}{% endmacro %}{{ f(64) }}",
     "it ran longer than 0.5 seconds; make the template do less, or raise template_time_limit "
     "(now 0.5)"),
    ("sum of lists", "{{ ([[1]] * 60000)|sum(start=[])|length }}",
     "it built and printed more than 4,000,000 characters and items in all"),
]  # fmt: skip


def _check_in_child(conn: Any, body: str, fmt: str, limits: Limits) -> None:
    # at most 1 GiB more address space than the test process has
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    room = pages * resource.getpagesize() + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (room, resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        templating.check("bomb", body, fmt, limits=limits)
        conn.send(("saved", ""))
    except ValidationError as exc:
        conn.send(("refused", str(exc)))
    except BaseException as exc:  # MemoryError: a bound is missing
        conn.send(("crashed", f"{type(exc).__name__}: {exc}"))


def check_in_a_child(body: str, fmt: str, limits: Limits, timeout: float = 60) -> tuple[str, str]:
    """``templating.check`` in a forked child with 1 GiB of room; ("did not return", "")
    when it is still busy after ``timeout`` seconds."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_check_in_child, args=(send, body, fmt, limits))
    child.start()
    send.close()
    try:
        return receive.recv() if receive.poll(timeout) else ("did not return", "")
    finally:
        child.kill()
        child.join()


@pytest.mark.skipif(
    not hasattr(resource, "RLIMIT_AS") or not __import__("os").path.exists("/proc/self/statm"),
    reason="needs Linux (fork, /proc and RLIMIT_AS) to run bombs safely",
)
@pytest.mark.parametrize("fmt", ["text", "html"])
@pytest.mark.parametrize(("name", "body", "message"), BOMBS, ids=[b[0] for b in BOMBS])
def test_every_bomb_is_refused_with_a_clear_error(
    name: str, body: str, message: str, fmt: str
) -> None:
    # only the bomb the deadline stops gets a short one: the others must be stopped by their
    # own limit, however slow the machine
    limits = Limits(time_limit=0.5 if "template_time_limit" in message else 30)
    outcome, error = check_in_a_child(body, fmt, limits)
    assert outcome == "refused", (outcome, error)
    assert error.startswith("template 'bomb' was stopped"), error
    assert message in error, error
    assert "at line 1" in error or "its text grew longer" in error, error


def test_templates_within_the_limits_render_as_in_jinja2s_sandbox() -> None:
    """The hooks (loops counted, ~ and literals checked, output counted) change nothing else."""
    context = {"customer": {"name": "A&B", "phone": None, "attributes": {"x": "<i>"}},
               "company": "Co", "staff": "Sam", "now": dt.datetime(2026, 1, 2, 9, 30)}  # fmt: skip
    bodies = [
        "Dear {{ customer.name }}, {% for i in range(3) %}{{ i }}{{ loop.last }}{% endfor %} "
        "{{ 'ab' ~ 'c' ~ customer.name }} {{ [1, 2]|join(',') }} {{ '%05d'|format(42) }} "
        "{{ '{:>6}'.format('x') }} {{ ('a' * 3) ~ (2 ** 10) }} {{ [1, 2] + [3] }} "
        "{{ {'a': 1}|dictsort }} {{ 'x'|center(5) }}|{{ customer.phone }}|\n<b>raw</b>\n"
        "{% raw %}{{ x }}{% endraw %}\n",
        "{% macro m(x) %}<{{ x }}>{% endmacro %}{% macro w() %}[{{ caller() }}]{% endmacro %}"
        "{{ m(customer.name) }}{% call w() %}in{{ customer.name }}{% endcall %}"
        "{% filter upper %}a&{{ customer.name }}{% endfilter %}{% set y %}Y{{ customer.name }}"
        "{% endset %}{{ y }}{{ customer.attributes.x }}{{ customer.name|e }}"
        "{{ (customer.name ~ '<')|safe }}{{ [customer.name, 1] }}{{ (1, customer.name) }}"
        "{{ {'k': customer.name} }}",
        "{% for a, b in {'x': 1, 'y': 2}|dictsort %}{{ a }}={{ b }}{{ loop.length }}"
        "{% else %}none{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}"
        "{% for x in [[1, [2]], [3]] recursive %}[{{ x if x is number else loop(x) }}]{% endfor %}"
        "{{ [3, 1, 2]|sort|sum }}{{ [[1], [2]]|sum(start=[]) }}{{ range(5)|batch(2)|list }}"
        "{{ now.strftime('%Y') }}{% set ns = namespace(a=1) %}{% set ns.a = ns.a + 1 %}{{ ns.a }}"
        "{{ customer.name|replace('&', '+') }}{{ customer.name|indent(2) }}"
        "{{ customer.name|wordwrap(1, wrapstring='/') }}"
        "{{ [{'a': 2}, {'a': 3}]|sum(attribute='a') }}{{ '{:%d.%m.%Y}'.format(now) }}",
    ]  # fmt: skip
    for fmt in ("text", "html"):
        plain = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=fmt == "html",
            keep_trailing_newline=True, finalize=lambda v: "" if v is None else v,
        )  # fmt: skip
        for body in bodies:
            expected = plain.from_string(body).render(**context)
            assert templating.render("t", body, fmt, context) == expected


@pytest.mark.parametrize(
    "body",
    ["{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "{% if 1 %}" * 1500 + "{% endif %}" * 1500,
     "{{ " + "x + " * 5000 + "1 }}", "{{ " + "x + " * 250 + "1 }}"],
    ids=["brackets", "blocks", "a long chain", "Python's nesting limit"],
)  # fmt: skip
def test_a_template_nested_too_deeply_is_one_clear_error(body: str) -> None:
    with pytest.raises(ValidationError) as refused:
        templating.check("deep", body, "text", variables={"x": {}})
    assert str(refused.value) == (
        "template 'deep' does not compile: its brackets, operators or blocks are nested too "
        "deeply (or chained too long) for Jinja2; write it flatter"
    )


def test_sizes_are_counted_deeply_and_stop_early() -> None:
    assert size("abc", 100) == 3
    assert size(["ab", ("c", {"k": "vv"})], 100) == 2 + 2 + 2 + 1 + 1 + 1 + 2
    shared = ["x" * 10] * 10
    assert size([shared] * 1000, 50) <= 1000 + 50  # stops once past the cap


def test_a_bomb_is_refused_at_save_and_nothing_is_stored(kb: Any) -> None:
    before = plugin.counts(kb.crm)
    for body, message in [
        ("{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}",
         "its loops ran more than 100,000 times"),
        ("{{ 'a' * 300000 }}", "would build 300,000 characters or items"),
        ("{{ 7 ** 5000 }}", "bits, more than 4,096"),
    ]:  # fmt: skip
        with pytest.raises(ValidationError, match="template 'bomb' was stopped at line 1") as e:
            kb.add_template("bomb", body)
        assert message in str(e.value)
    kb.add_template("fine", "Dear {{ customer.name }}")
    with pytest.raises(ValidationError, match="its loops ran more than 100,000 times"):
        kb.edit_template("fine", body="{% for i in range(9000) %}{% for j in range(20) %}"
                                      "{% endfor %}{% endfor %}")  # fmt: skip
    assert kb.template("fine").body == "Dear {{ customer.name }}"
    assert plugin.counts(kb.crm) == {**before, "templates": before["templates"] + 1}


def test_the_limits_are_settings_and_the_save_uses_them(make_crm: Any) -> None:
    settings = {"template_max_output": 1000, "template_max_range": 50,
                "template_max_loop_iterations": 200, "template_time_limit": 5}  # fmt: skip
    kb = service(make_crm(plugins=["knowledgebase"], settings={"knowledgebase": settings}))
    assert kb.template_limits() == Limits(5, 1000, 50, 200)
    for body, message in [
        ("{{ 'x' * 1001 }}", "more than template_max_output (1,000)"),
        ("{% for i in range(51) %}{% endfor %}", "range(51) has 51 numbers, more than "
                                                 "template_max_range (50)"),
        ("{% for i in range(20) %}{% for j in range(20) %}{% endfor %}{% endfor %}",
         "raise template_max_loop_iterations (now 200) in the [knowledgebase] settings"),
        ("{% for i in range(40) %}{{ '-' * 30 }}{% endfor %}",
         "its text grew longer than 1,000 characters"),
    ]:  # fmt: skip
        with pytest.raises(ValidationError) as refused:
            kb.add_template("t", body)
        assert message in str(refused.value), str(refused.value)
    kb.add_template("t", "{% for i in range(50) %}{{ '-' * 19 }}{% endfor %}")  # 950 characters
    ann = kb.crm.customers.add(name="Ann")
    assert len(kb.render("t", customer_id=ann.id)) == 950
    for bad, message in [
        ({"template_time_limit": 0}, "template_time_limit must be a number of seconds above 0"),
        ({"template_max_range": "10"}, "template_max_range must be a whole number of at least 1"),
        ({"template_max_output": True}, "template_max_output must be a whole number"),
    ]:  # fmt: skip
        with pytest.raises(ck.CrmError, match=message):
            make_crm(plugins=["knowledgebase"], settings={"knowledgebase": bad})


def test_a_stored_bomb_fails_its_render_and_is_left_out_of_proposals(
    make_crm: Any, complaint_variables: type
) -> None:
    """A template stored before the limits (written straight into the table) is stopped when
    it renders: a send fails clearly, and the complaint's proposals leave it out."""
    from crmkit_knowledgebase import tables

    crm = make_crm(plugins=["knowledgebase", complaint_variables])
    kb = service(crm)
    kb.add_template("ack", "Dear {{ customer.name }}, we are on it.", triggers=["parcel late"])
    bomb = "{{ 'x' * 10**6 }}"
    now = dt.datetime.now(dt.UTC)
    with crm.transaction() as ctx:
        ctx.connection.execute(insert(tables.templates).values(
            name="old-bomb", title="Old", body=bomb, format="text", triggers=["parcel late"],
            category="general", created_at=now, updated_at=now))  # fmt: skip
    ann = crm.customers.add(name="Ann")
    with pytest.raises(ValidationError, match="template 'old-bomb' was stopped at line 1: "
                                              "'x' \\* 1,000,000 would build"):  # fmt: skip
        kb.send(ann.id, template="old-bomb")
    assert kb.sends(ann.id) == []
    facts = {"id": 1, "customer_id": ann.id, "category": "delivery", "channel": "email",
             "description": "parcel late", "tracking_code": "C-1", "received_at": now}  # fmt: skip
    proposals = plugin.crmkit_complaints_reply_proposals(crm=crm, complaint=facts,
                                                         text="my parcel late again")  # fmt: skip
    sources = [p["source"] for p in proposals]
    assert "knowledgebase:template:ack" in sources
    assert "knowledgebase:template:old-bomb" not in sources


def test_the_command_line_refuses_a_bomb_with_one_error_line(kb: Any, cli_runner: Any) -> None:
    result = cli_runner(["kb", "template", "add", "bomb", "--body", "Hi {{ 'a' * 10**10 }}"],
                        plugins=["knowledgebase"])  # fmt: skip
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: template 'bomb' was stopped at line 1: 'a' * 10,000,000,000")
    assert kb.templates() == []
