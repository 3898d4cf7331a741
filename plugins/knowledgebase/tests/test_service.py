"""The service façade: every public method of 0.1 is still there, with its parameters."""

from __future__ import annotations

import inspect

from crmkit_knowledgebase.service import KnowledgeBase

#: method -> its parameters (after self) as 0.1 had them: name, kind, default ("-": none)
PUBLIC_0_1 = {
    "get": "ref",
    "list": "*category=None *tag=None *audience=None *status=None *limit=100 *offset=0",
    "count": "",
    "add": "title body='' *slug=None *category='general' *tags=() *products=() "
    "*audience='internal' *status='draft' *author=None *message='created'",
    "add_many": "items *author=None *message='created' *now=None",
    "edit": "ref *author=None *message='' *now=None **changes",
    "revisions": "ref",
    "revision": "ref number",
    "diff": "ref a=None b=None",
    "restore": "ref number *author=None *message=''",
    "view": "ref *count=1",
    "vote": "ref helpful *customer_id=None *comment=''",
    "search": "query *category=None *tag=None *audience=None *status=None *mode='all' "
    "*limit=20 *offset=0",
    "add_template": "name body *title='' *triggers=() *format='text' *category='general' "
    "*author=None",
    "edit_template": "name *author=None **changes",
    "template": "name",
    "templates": "",
    "render": "name *customer_id=None *complaint=None *staff=None",
    "send": "customer_id *template=None *article=None *complaint=None *channel=None *staff=None",
    "sends": "customer_id *limit=50",
    "suggest": "text *limit=5 *articles=True *templates=True *audience=None *candidates=30",
    "reindex": "",
}


def describe(parameter: inspect.Parameter) -> str:
    prefix = {parameter.KEYWORD_ONLY: "*", parameter.VAR_KEYWORD: "**"}.get(parameter.kind, "")
    default = "" if parameter.default is parameter.empty else f"={parameter.default!r}"
    return f"{prefix}{parameter.name}{default}"


def test_every_public_method_keeps_its_parameters() -> None:
    for name, expected in PUBLIC_0_1.items():
        parameters = list(inspect.signature(getattr(KnowledgeBase, name)).parameters.values())[1:]
        old = expected.split()
        assert [describe(p) for p in parameters[: len(old)]] == old, name
        # anything added later is an optional keyword
        for p in parameters[len(old) :]:
            assert p.kind is p.KEYWORD_ONLY and p.default is not p.empty, (name, p)


def test_the_parts_share_no_method_name() -> None:
    parts = [cls for cls in KnowledgeBase.__mro__[1:] if cls is not object]
    assert len(parts) == 4
    names = [n for cls in parts for n in vars(cls) if not n.startswith("_")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
