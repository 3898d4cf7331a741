"""Who may do what in the knowledge base, and what its writes record in the audit log.

Permissions (declared through ``crmkit_register_permissions``; the README has the table):

* ``knowledgebase.read`` — search, suggest, read articles, revisions and reply templates,
  render a template, record a view or a was-this-helpful vote, export. Every default role.
* ``knowledgebase.write`` — create and edit articles (drafts, internal ones), restore
  revisions, reply templates, import. Technical support, complaint handlers, managers.
* ``knowledgebase.publish`` — any write whose article is published before or after it
  (what the self-service site and public search show changes). Technical support and
  managers; a complaint handler writes drafts that one of them publishes.
* ``knowledgebase.send`` — record that a template or article was sent to a customer (a
  write about the customer, so scoped: a sales rep for their own customers).
* ``knowledgebase.admin`` — rebuild the search index. Managers.

Audit: every write records one entry in its transaction (``kb_article.create``,
``kb_article.update``, ``kb_article.view``, ``kb_article.vote``, ``kb_template.create``,
``kb_template.update``, ``kb_send.create``, ``kb.reindex``); an import records one
``kb.import`` entry with its counts instead of one per article (:func:`bulk`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from crmkit.plugin import PermissionSpec

READ = "knowledgebase.read"
WRITE = "knowledgebase.write"
PUBLISH = "knowledgebase.publish"
SEND = "knowledgebase.send"
ADMIN = "knowledgebase.admin"

_EVERYONE = ("sales_rep", "sales_manager", "cost_accounting", "technical_support",
             "complaint_handler", "manager")  # fmt: skip

PERMISSIONS: tuple[PermissionSpec, ...] = (
    PermissionSpec(
        READ,
        "search and read knowledge base articles and reply templates",
        scoped=False,
        default_grants=dict.fromkeys(_EVERYONE, "all"),
        declared_by="knowledgebase",
    ),
    PermissionSpec(
        WRITE,
        "write knowledge base articles, revisions and reply templates",
        scoped=False,
        default_grants=dict.fromkeys(("technical_support", "complaint_handler", "manager"), "all"),
        declared_by="knowledgebase",
    ),
    PermissionSpec(
        PUBLISH,
        "publish, change or withdraw published knowledge base articles",
        scoped=False,
        default_grants=dict.fromkeys(("technical_support", "manager"), "all"),
        declared_by="knowledgebase",
    ),
    PermissionSpec(
        SEND,
        "record what a customer was sent, or their vote on an article",
        scoped=True,
        default_grants={
            "sales_rep": "own",
            "sales_manager": "team",
            "technical_support": "all",
            "complaint_handler": "all",
            "manager": "all",
        },  # fmt: skip
        declared_by="knowledgebase",
    ),
    PermissionSpec(
        ADMIN,
        "rebuild the knowledge base search index",
        scoped=False,
        default_grants={"manager": "all"},
        declared_by="knowledgebase",
    ),
)

#: set while an import runs: its writes record one entry for the whole import
_BULK: contextvars.ContextVar[bool] = contextvars.ContextVar("kb_bulk", default=False)


@contextmanager
def bulk() -> Iterator[None]:
    """Inside: the articles and templates written record no entry of their own."""
    token = _BULK.set(True)
    try:
        yield
    finally:
        _BULK.reset(token)


def record(ctx: Any, action: str, entity: str, entity_id: Any = None, **kwargs: Any) -> None:
    """``ctx.audit(...)`` unless an import is running (it records its own entry)."""
    if not _BULK.get():
        ctx.audit(action, entity, entity_id, **kwargs)


def content_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], revision: tuple[Any, Any]
) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` of an article's content for the audit log. The body is
    named by revision, not copied (the revisions hold every body in full)."""
    old = dict(before or {})
    out: dict[str, list[Any]] = {}
    for field, value in after.items():
        if field == "body":
            if old.get("body") != value:
                out["body"] = [
                    None if before is None else f"revision {revision[0]}",
                    f"revision {revision[1]}",
                ]
        elif old.get(field) != value:
            out[field] = [old.get(field), value]
    out["revision"] = [revision[0], revision[1]]
    return out
