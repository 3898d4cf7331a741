"""The snippet code's fast paths give what the plain ones give (pure functions, no database)."""

from __future__ import annotations

import re

from crmkit_knowledgebase import text as t
from hypothesis import given, settings
from hypothesis import strategies as st

#: letters, accents, CJK, characters that fold to several (ß, ﬁ) or to another one (Ｅ, É),
#: markdown and spaces
alphabet = st.sampled_from(
    list("abcefrsduK7 ÉéèßﬁＥ２退款政策 .,，_*-\n") + ["\u0301", "\u212a", "\u212b"]
)
texts = st.text(alphabet=alphabet, max_size=80)
words = st.text(alphabet=st.sampled_from(list("abcdefrsu7退款ß")), min_size=1, max_size=5)


def old_fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """The per-character folding every text took before its fast paths."""
    chars: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        f = t._fold_char(ch)
        chars.append(f)
        offsets.extend([i] * len(f))
    offsets.append(len(text))
    return "".join(chars), offsets


def old_latin_words(folded: str, starts: list[str]) -> list[tuple[int, int]]:
    """Where the words starting like one of ``starts`` are, by the one regex compiled per
    query before (its Unicode letter class took ~5 ms to compile)."""
    alternatives = "|".join(re.escape(x) for x in sorted(starts, key=len, reverse=True))
    pattern = re.compile(rf"(?<!{t._LATIN})(?:{alternatives}){t._LATIN}*")
    return [m.span() for m in pattern.finditer(folded)]


def new_latin_words(folded: str, starts: list[str]) -> list[tuple[int, int]]:
    """The same search as :class:`crmkit_knowledgebase.text.Highlighter` now makes it (by
    ``str.find`` when the starts are made of letters)."""
    highlighter = t.Highlighter([t.Term((s,), False, (s,), ()) for s in starts])
    return list(highlighter._words(folded))


@settings(deadline=None, max_examples=300)
@given(text=texts)
def test_folding_with_offsets_is_the_per_character_folding(text: str) -> None:
    folded, offsets = t._fold_with_offsets(text)
    assert (folded, list(offsets)) == old_fold_with_offsets(text)


@settings(deadline=None, max_examples=300)
@given(text=texts, starts=st.lists(words, min_size=1, max_size=3))
def test_word_starts_are_found_as_by_the_compiled_pattern(text: str, starts: list[str]) -> None:
    folded, _ = t._fold_with_offsets(text)
    starts = [p.text for s in starts for p in t.pieces(s) if not p.cjk]  # as queries give them
    if starts:
        assert new_latin_words(folded, starts) == old_latin_words(folded, starts)


@settings(deadline=None, max_examples=300)
@given(starts=st.lists(st.integers(0, 400), max_size=40, unique=True), width=st.integers(1, 200))
def test_the_densest_window_is_the_one_counted_hit_by_hit(starts: list[int], width: int) -> None:
    spans = [(a, a + 1) for a in sorted(starts)]
    best, best_count = 0, 0  # the count before: every later span tested, for every span
    for i, (a, _) in enumerate(spans):
        count = sum(1 for x, _ in spans[i:] if x < a + width)
        if count > best_count:
            best, best_count = i, count
    assert t._densest(spans, width) == best


@settings(deadline=None, max_examples=300)
@given(text=texts, query=st.lists(words, min_size=1, max_size=3))
def test_a_snippet_from_the_stored_fold_is_the_snippet_from_the_text(text: str,
                                                                    query: list[str]) -> None:  # fmt: skip
    """Search reads a text's fold from ``kb_snippet_texts`` (``stored_fold``) when folding keeps
    every character in place; the snippet is the one folding at search time gives."""
    terms = t.parse_query(" ".join(query))
    stored = t.stored_fold(text)
    assert t.Highlighter(terms).snippet(text, stored) == t.highlight(text, terms)
    if stored is not None:
        assert len(stored) == len(text)


def old_stem(word: str) -> str:
    """The stemmer as it was before its suffix step tested each suffix before cutting."""
    if len(word) <= 3 or not word.isascii() or not word.isalpha():
        return word
    w = word
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ingly", "edly", "ing", "ed"):
        base = w[: -len(suffix)]
        if w.endswith(suffix) and len(base) >= 3 and any(c in "aeiouy" for c in base):
            w = base
            if w[-1] == w[-2] and w[-1] not in "sz" and not (w.endswith("ll") and len(w) <= 4):
                w = w[:-1]
            break
    if w.endswith("ly") and len(w) > 5:
        w = w[:-2]
    if len(w) > 4 and w.endswith("y") and w[-2] not in "aeiou":
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


@settings(deadline=None, max_examples=2000)
@given(word=st.text(alphabet=st.sampled_from(list("aeiouyslzngdbcrtÉ1")), max_size=12))
def test_the_stemmer_stems_as_before(word: str) -> None:
    assert t.stem.__wrapped__(word) == old_stem(word)
