"""``kb.suggest``: rank reply templates and published articles for an incoming message.

Candidates are every template and the ``candidates`` best published articles
from the full-text index (any term). All are scored by the same formula (see
the README): idf-weighted overlap of the message's tokens with the candidate's
fields (title weighs most), plus a bonus for each trigger phrase (or article
tag) found whole in the message.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmkit.plugin import ValidationError
from crmkit_knowledgebase import access
from crmkit_knowledgebase import search as fts
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase.entities import Suggestion, article_from_row, template_from_row
from crmkit_knowledgebase.text import STOP_WORDS, Term, cjk_tokens, pieces, stem

if TYPE_CHECKING:
    from crmkit.plugin import CRM

#: weight of a trigger phrase (or an article tag) found whole in a message, times its idf
TRIGGER_WEIGHT = 3.0
#: weight of a single word of a trigger or tag when the whole phrase is not found
PARTIAL = 1.0
#: weights of the other fields: title; category (and an article's products); body
TITLE, META, BODY = 3.0, 1.5, 0.5


@attrs.frozen
class Candidate:
    """A template or article reduced to what scoring needs."""

    kind: str
    ref: str
    title: str
    #: (tokens, weight) per field; a message token counts once, with its best field's weight
    fields: tuple[tuple[frozenset[str], float], ...]
    #: (tokens, as written) of each trigger phrase or tag
    phrases: tuple[tuple[tuple[str, ...], str], ...]


class Suggestions:
    """``kb.suggest`` (a part of :class:`crmkit_knowledgebase.KnowledgeBase`)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def suggest(
        self,
        text: str,
        *,
        limit: int = 5,
        articles: bool = True,
        templates: bool = True,
        audience: str | None = None,
        candidates: int = 30,
    ) -> list[Suggestion]:
        """Rank reply templates and published articles for an incoming message.

        Candidates are every template and the ``candidates`` best published
        articles from the full-text index (any term). All are scored by the same
        formula (see README): idf-weighted overlap of the message's terms with
        the candidate's fields (triggers and title weigh most), plus a bonus for
        each trigger phrase found whole in the message.
        """
        self.crm.authorise(access.READ)
        sequence = message_tokens(text)
        docs: list[Candidate] = []
        with self.crm.reading() as connection:
            if templates:
                docs.extend(template_candidates(connection))
            if articles:
                docs.extend(article_candidates(connection, sequence, audience, candidates))
        return rank(docs, sequence)[:limit]


def message_tokens(text: str) -> list[str]:
    """The message's tokens in order; refuses a message with none."""
    if text is None or not text.strip():
        raise ValidationError("message text is empty; give the message to answer", field="text")
    sequence = match_tokens(text)
    if not sequence:
        raise ValidationError("message has no words to match; give the message text", field="text")
    return sequence


def match_tokens(text: str) -> list[str]:
    """Tokens for suggestion matching: stems without stop words, CJK bigrams (no tail unigrams)."""
    tokens: list[str] = []
    for p in pieces(text or ""):
        if p.cjk:
            tokens.extend(cjk_tokens(p.text)[:-1] if len(p.text) > 1 else [p.text])
        elif p.text not in STOP_WORDS and (len(p.text) > 1 or p.text.isdigit()):
            tokens.append(stem(p.text))
    return tokens


def candidate(
    kind: str, ref: str, title: str, phrases: Sequence[str], meta: str, body: str
) -> Candidate:
    """A candidate from its fields: trigger phrases (or tags), title, meta text and body."""
    split = [tuple(match_tokens(x)) for x in phrases]
    fields = (
        (frozenset(tok for x in split for tok in x), PARTIAL),
        (frozenset(match_tokens(title)), TITLE),
        (frozenset(match_tokens(meta)), META),
        (frozenset(match_tokens(body)), BODY),
    )
    return Candidate(kind, ref, title, fields, tuple(zip(split, phrases, strict=True)))


def template_candidates(connection: Any) -> list[Candidate]:
    """Every reply template."""
    out = []
    for row in connection.execute(select(t.templates)):
        tpl = template_from_row(row)
        out.append(candidate("template", tpl.name, tpl.title, tpl.triggers, tpl.category, tpl.body))
    return out


def article_candidates(
    connection: Any, sequence: Sequence[str], audience: str | None, limit: int
) -> list[Candidate]:
    """The ``limit`` published articles the full-text index ranks best for any token."""
    terms = [Term((tok,)) for tok in dict.fromkeys(sequence)]
    found = fts.search(  # every match is a candidate: a message's words are many and common
        connection, terms, mode="any", status="published", audience=audience, limit=limit,
        candidates=None,
    )  # fmt: skip
    rows = connection.execute(select(t.articles).where(t.articles.c.id.in_([i for i, _ in found])))
    out = []
    for row in rows:
        art = article_from_row(row)
        meta = " ".join(art.products) + " " + art.category
        out.append(candidate("article", art.slug, art.title, art.tags, meta, art.body))
    return out


def rank(docs: Sequence[Candidate], sequence: Sequence[str]) -> list[Suggestion]:
    """Score every candidate for the message ``sequence``; those above 0, best first."""
    if not docs:
        return []
    message = set(sequence)
    idf = _idf(docs, message)
    results = []
    for doc in docs:
        found = score(doc, sequence, message, idf)
        if found is not None:
            results.append(found)
    results.sort(key=lambda s: (-s.score, s.kind, s.ref))
    return results


def _idf(docs: Sequence[Candidate], message: set[str]) -> dict[str, float]:
    """``log(1 + N / df)`` of each message token found in some candidate."""
    df: Counter[str] = Counter()
    for doc in docs:
        present: set[str] = set()
        for tokens, _ in doc.fields:
            present |= tokens & message
        df.update(present)
    return {tok: math.log(1 + len(docs) / n) for tok, n in df.items()}


def score(
    doc: Candidate, sequence: Sequence[str], message: set[str], idf: dict[str, float]
) -> Suggestion | None:
    """The candidate's suggestion, or None when it shares nothing with the message."""
    total = 0.0
    for tok in message:
        weight = max((w for tokens, w in doc.fields if tok in tokens), default=0.0)
        if weight:
            total += weight * idf[tok]
    why: list[str] = []
    for phrase, raw in doc.phrases:
        if phrase and _contains(sequence, phrase):
            total += TRIGGER_WEIGHT * sum(idf[tok] for tok in set(phrase))
            why.append(raw)
    if total <= 0:
        return None
    return Suggestion(doc.kind, doc.ref, doc.title, round(total, 4), why)


def _contains(sequence: Sequence[str], phrase: Sequence[str]) -> bool:
    k = len(phrase)
    return any(tuple(sequence[i : i + k]) == tuple(phrase) for i in range(len(sequence) - k + 1))
