"""crmkit knowledge base: articles, search, reply templates, self-service site.

Use from Python::

    from crmkit_knowledgebase import service
    kb = service(crm)
    kb.add("Refund policy", "...", category="billing", audience="public", status="published")
    kb.search("退款")
"""

from crmkit_knowledgebase.service import KnowledgeBase, service

__all__ = ["KnowledgeBase", "service"]
