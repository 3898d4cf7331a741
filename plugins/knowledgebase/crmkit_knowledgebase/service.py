"""The knowledge base service: one object for articles, search, templates and suggestions.

Get it with ``kb = service(crm)``. Every write is one transaction
(``crm.transaction()``): a write that fails changes nothing.

:class:`KnowledgeBase` only combines the parts, each in its own module:

* :class:`~crmkit_knowledgebase.articles.Articles` — articles and revisions, views, votes;
* :class:`~crmkit_knowledgebase.search.ArticleSearch` — full-text search, reindex;
* :class:`~crmkit_knowledgebase.templates.ReplyTemplates` — reply templates, rendering, sends;
* :class:`~crmkit_knowledgebase.suggest.Suggestions` — templates and articles for a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmkit_knowledgebase.articles import Articles
from crmkit_knowledgebase.content import (
    AUDIENCES,
    CONTENT_FIELDS,
    STATUSES,
    clean_content,
    slugify,
)
from crmkit_knowledgebase.entities import Article, Hit, Revision, Send, Suggestion, Template
from crmkit_knowledgebase.search import ArticleSearch
from crmkit_knowledgebase.suggest import PARTIAL, TRIGGER_WEIGHT, Suggestions, match_tokens
from crmkit_knowledgebase.templates import ReplyTemplates
from crmkit_knowledgebase.text import analyse, highlight

if TYPE_CHECKING:
    from crmkit.plugin import CRM


class KnowledgeBase(Articles, ArticleSearch, ReplyTemplates, Suggestions):
    """The knowledge base of a CRM: every part's methods on one object.

    The parts share nothing but ``crm`` and no method name (a test checks).
    """

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    @property
    def settings(self) -> dict[str, Any]:
        """This plugin's settings (``[knowledgebase]`` in crmkit.toml)."""
        return self.crm.settings.get("knowledgebase", {})


def service(crm: CRM) -> KnowledgeBase:
    """The knowledge base of ``crm``."""
    return KnowledgeBase(crm)


__all__ = ["AUDIENCES", "CONTENT_FIELDS", "PARTIAL", "STATUSES", "TRIGGER_WEIGHT", "Article",
           "Hit", "KnowledgeBase", "Revision", "Send", "Suggestion", "Template", "analyse",
           "clean_content", "highlight", "match_tokens", "service", "slugify"]  # fmt: skip
