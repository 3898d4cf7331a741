"""Text analysis shared by every search backend: one tokeniser, in Python.

Both backends index the same *analysed* text, so a query finds the same
articles on SQLite and PostgreSQL:

* Text is NFKC-normalised (full-width letters and digits become ASCII),
  case-folded and stripped of diacritics (``café`` → ``cafe``).
* Latin words (runs of letters and digits) become one token each, passed
  through a light suffix stemmer (:func:`stem`): ``refunds``, ``refunded`` and
  ``refunding`` all index as ``refund``.
* CJK runs (Chinese, Japanese kana, Korean) become overlapping **bigrams**
  plus the run's last character as a unigram: ``退款政策`` → ``退款 款政 政策 策``.
  A run of n characters gives exactly n tokens, so positions stay aligned with
  characters and phrase queries work across scripts. A query of two or more
  CJK characters is the phrase of its bigrams (``退款`` finds ``退款政策``); a
  one-character query is the prefix ``退*``, which matches every bigram that
  starts with it and the unigram at the end of a run, so it finds every
  occurrence.

The analysed text is space-separated tokens; SQLite FTS5 (``unicode61``)
and PostgreSQL (``to_tsvector('simple', ...)``) only split it on spaces.
"""

from __future__ import annotations

import bisect
import functools
import html
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence

import attrs

from crmkit.plugin import ValidationError

_CJK = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff"
)
_TOKEN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_LATIN = rf"[^\W_{_CJK}]"  # a character of a (non-CJK) word

STOP_WORDS = frozenset(
    (
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "hi",
        "hello",
        "dear",
        "please",
        "thanks",
        "thank",
        "regards",
    )
)


def fold(text: str) -> str:
    """NFKC, case-fold and strip diacritics (combining marks)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


_VOWELS = frozenset("aeiouy")


def _has_vowel(word: str) -> bool:
    return not _VOWELS.isdisjoint(word)


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English suffix stemmer (plural, -ed, -ing, -ly, final -y and -e).

    Not Porter: small, predictable, and the same at index and query time,
    which is all matching needs (``charge``/``charged``/``charges`` → ``charg``).
    """
    if len(word) <= 3 or not word.isascii() or not word.isalpha():
        return word
    w = word
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith(("ly", "ng", "ed")):
        w = _without_suffix(w)
    if w.endswith("ly") and len(w) > 5:
        w = w[:-2]
    if len(w) > 4 and w.endswith("y") and w[-2] not in "aeiou":
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def _without_suffix(w: str) -> str:
    """:func:`stem`'s suffixes ingly, edly, ing, ed in that order: the first that leaves a
    base of 3 or more letters with a vowel goes, and a doubled last letter of the base with
    it (each suffix is tested before its base is cut: prefix_stem stems 138 made-up words
    per word typed)."""
    for suffix in ("ingly", "edly", "ing", "ed"):
        if w.endswith(suffix):
            base = w[: -len(suffix)]
            if len(base) >= 3 and not _VOWELS.isdisjoint(base):
                if (
                    base[-1] == base[-2]
                    and base[-1] not in "sz"
                    and not (base.endswith("ll") and len(base) <= 4)
                ):
                    return base[:-1]
                return base
    return w


#: the suffixes :func:`stem` removes (or changes): a word being typed may stop inside one
_SUFFIXES = ("ies", "sses", "s", "es", "ingly", "edly", "ing", "ed", "ly", "y", "e")
#: how a typed prefix may go on where that changes its stem: the rest of a suffix (or a
#: whole one), then maybe one more suffix (``-ed`` + ``-ly``, ``-ing`` + ``-s`` ...)
_COMPLETIONS = tuple(
    sorted(
        {
            rest + more
            for rest in {""} | {suffix[i:] for suffix in _SUFFIXES for i in range(len(suffix))}
            for more in ("", "s", "es", "ly", "y", "e", "ing", "ed")
        }
    )
)


@functools.lru_cache(maxsize=4096)
def prefix_stem(word: str) -> str:
    """The stem to use as a prefix for a word still being typed.

    The longest common prefix of the stems of every way the word may go on where
    stemming would change it (:data:`_COMPLETIONS`), so typing more of a word never
    loses it: ``shipp`` → ``ship`` (``shipping``), ``deliveri`` → ``deliver``
    (``deliveries``), ``quickl`` → ``quick`` (``quickly``), ``flie`` → ``fl``
    (``flies`` → ``fly``).
    """
    if _untouched_by_completions(word):
        return word
    stems = {_stem_uncached(word + completion) for completion in _COMPLETIONS}
    return os.path.commonprefix([stem(word), *stems])


#: what :func:`stem` cuts off the end of a word (``ies`` it replaces by ``y``; of ``sses``
#: it cuts ``es``), and the endings such a cut can begin in: the beginnings of those cuts
_CUTS = ("ies", "es", "s", "ingly", "edly", "ing", "ed", "ly", "y", "e")
_CUT_STARTS = tuple(sorted({cut[:n] for cut in _CUTS for n in range(1, len(cut) + 1)}))


def _untouched_by_completions(word: str) -> bool:
    """Whether :func:`stem` leaves ``word`` whole, alone and at the start of every one of its
    :data:`_COMPLETIONS` (then its prefix stem is itself, without stemming 138 made-up words).

    Not letters (or not ASCII): stem() changes neither it nor a word starting with it.
    Letters: stem() only cuts off the end of a word, one of the cuts above or the doubled
    last letter of the base a cut leaves (``shipp|ing``). The first cut that reaches into
    ``word`` is one whose beginning ``word`` ends in, or, right after a cut of the
    completion alone, its doubled last letter; so a word ending in no beginning of a cut,
    and not in a doubled letter, is kept (``mentport``, ``refund`` are; ``shipp``,
    ``deliveri``, ``flie``, ``washed`` are not). test_search.py holds this against the 138
    stems of every word of up to four letters drawn from the letters stem() tells apart."""
    if not (word.isascii() and word.isalpha()):
        return True
    if len(word) > 1 and word[-1] == word[-2]:
        return False
    return not word.endswith(_CUT_STARTS)


#: :func:`stem` without its cache, for the made-up completions above
_stem_uncached = stem.__wrapped__


def cjk_tokens(run: str) -> list[str]:
    """Bigrams of a CJK run plus its last character: ``退款政策`` → 退款 款政 政策 策."""
    return [run[i : i + 2] for i in range(len(run) - 1)] + [run[-1]]


@attrs.frozen
class Piece:
    """One word or CJK run of a text, folded, with its span in the folded text."""

    text: str
    cjk: bool
    start: int
    end: int


def pieces(text: str) -> list[Piece]:
    folded = fold(text)
    return [
        Piece(m.group(0), m.group(1) is not None, m.start(), m.end())
        for m in _TOKEN.finditer(folded)
    ]


def analyse(text: str, *, stop_words: bool = False) -> list[str]:
    """The index tokens of ``text`` in order (see the module docstring)."""
    tokens: list[str] = []
    for piece in pieces(text):
        if piece.cjk:
            tokens.extend(cjk_tokens(piece.text))
        elif not (stop_words and piece.text in STOP_WORDS):
            tokens.append(stem(piece.text))
    return tokens


def index_text(*parts: str | None) -> str:
    """Analysed, space-separated text to store in the full-text index."""
    return " ".join(" ".join(analyse(p)) for p in parts if p)


# --------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------


@attrs.frozen
class Term:
    """A query term: a phrase of index tokens (one token for a word), maybe a prefix."""

    tokens: tuple[str, ...]
    prefix: bool = False
    #: what to highlight in the original text: folded words (Latin) or substrings (CJK)
    words: tuple[str, ...] = ()
    cjk: tuple[str, ...] = ()


_QUERY_PART = re.compile(r'"([^"]*)"|(\S+)')


def parse_query(query: str, *, implicit_prefix: bool = True) -> list[Term]:
    """Parse a search query into terms (all must match in ``all`` mode).

    Words are stemmed; ``word*`` is a prefix; the last word of the query is a
    prefix too (search as you type) when ``implicit_prefix``. ``"two words"``
    is a phrase. English stop words are dropped unless nothing else is left.
    An empty query (or one without any word) is refused.
    """
    if query is None or not query.strip():
        raise ValidationError(
            "search query is empty; give at least one word (e.g. 'refund' or '退款')",
            field="query",
        )
    terms, has_latin = _query_terms(query)
    if not terms:
        raise ValidationError(
            f"search query {query!r} has no words to search for; use letters, digits or "
            "Chinese characters",
            field="query",
        )
    terms, has_latin = _without_stop_words(terms, has_latin)
    # a query ending in a space or a quote has its last word complete: no implicit prefix
    complete = query[-1:].isspace() or query[-1:] == '"'
    if implicit_prefix and has_latin and not complete:
        last = terms[-1]
        if last.words and len(last.tokens) == 1 and len(last.words[0]) >= 2:
            terms[-1] = attrs.evolve(last, tokens=(prefix_stem(last.words[0]),), prefix=True)
    return list(dict.fromkeys(terms))  # without repeats, in order


def _query_terms(query: str) -> tuple[list[Term], int | None]:
    """The terms of a query in order, and the index of the last unquoted Latin word's term."""
    terms: list[Term] = []
    last_latin: int | None = None
    for m in _QUERY_PART.finditer(query):
        quoted = m.group(1) is not None
        text = m.group(1) if quoted else m.group(2).rstrip("*")
        found = pieces(text)
        if not found:
            continue
        if quoted:
            terms.append(_phrase_term(found))
            continue
        star = m.group(2).endswith("*")
        for i, piece in enumerate(found):
            terms.append(_piece_term(piece, prefix=star and i == len(found) - 1))
            if not piece.cjk:
                last_latin = len(terms) - 1
    return terms, last_latin


def _phrase_term(found: Sequence[Piece]) -> Term:
    """A quoted phrase: its words' stems and its CJK runs' bigrams, in order."""
    tokens: list[str] = []
    for p in found:
        tokens.extend(cjk_tokens(p.text) if p.cjk else [stem(p.text)])
    words = tuple(p.text for p in found if not p.cjk)
    return Term(tuple(tokens), False, words, tuple(p.text for p in found if p.cjk))


def _piece_term(piece: Piece, *, prefix: bool) -> Term:
    """An unquoted word (stemmed; a prefix when starred) or CJK run (its bigrams' phrase;
    one character: a prefix)."""
    if not piece.cjk:
        token = prefix_stem(piece.text) if prefix else stem(piece.text)
        return Term((token,), prefix, (piece.text,), ())
    if len(piece.text) == 1:
        return Term((piece.text,), True, (), (piece.text,))
    bigrams = tuple(piece.text[j : j + 2] for j in range(len(piece.text) - 1))
    return Term(bigrams, False, (), (piece.text,))


def _without_stop_words(terms: list[Term], last_latin: int | None) -> tuple[list[Term], bool]:
    """The terms without English stop words (unless nothing else is left), and whether the
    last unquoted Latin word is still among them."""
    content = [
        t for t in terms if not (len(t.tokens) == 1 and t.words and t.words[0] in STOP_WORDS)
    ]
    if not content:
        return terms, last_latin is not None
    return content, last_latin is not None and terms[last_latin] in content


def fts5_query(terms: Sequence[Term], mode: str = "all") -> str:
    """The SQLite FTS5 MATCH expression for ``terms``."""
    parts = []
    for term in terms:
        phrase = '"' + " ".join(t.replace('"', '""') for t in term.tokens) + '"'
        parts.append(phrase + (" *" if term.prefix else ""))
    return (" AND " if mode == "all" else " OR ").join(parts)


def tsquery(terms: Sequence[Term], mode: str = "all") -> str:
    """The PostgreSQL ``to_tsquery('simple', ...)`` text for ``terms``."""
    parts = []
    for term in terms:
        quoted = ["'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in term.tokens]
        if term.prefix:
            quoted[-1] += ":*"
        part = " <-> ".join(quoted)
        parts.append(f"({part})" if len(quoted) > 1 else part)
    return (" & " if mode == "all" else " | ").join(parts)


# --------------------------------------------------------------------------
# Snippets
# --------------------------------------------------------------------------

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_BLOCK = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-+*]\s+|\d+[.)]\s+|```.*$)", re.M)
_MD_INLINE = re.compile(r"\*+|`+|(?<!\w)_+|_+(?!\w)")


def plain_text(markdown: str) -> str:
    """Markdown reduced to plain text for snippets and the site's search index."""
    text = _MD_LINK.sub(r"\1", markdown) if "](" in markdown else markdown
    text = _MD_BLOCK.sub(" ", text)
    if "*" in text or "`" in text or "_" in text:
        text = _MD_INLINE.sub("", text)
    return " ".join(text.split())


#: snippets look for hits in this many first characters of an article's text
SNIPPET_SCAN = 20_000


def _nothing_to_escape(text: str) -> bool:
    """Whether ``html.escape`` leaves ``text`` as it is (five scans in C, no copies)."""
    return not ("&" in text or "<" in text or ">" in text or '"' in text or "'" in text)


def _escape(text: str) -> str:
    return text if _nothing_to_escape(text) else html.escape(text)


@functools.lru_cache(maxsize=65536)
def _fold_char(ch: str) -> str:
    return fold(ch)


#: the characters :func:`_fold_with_offsets` has seen, those that fold to another single
#: character (with it), and those that fold to none or several
_SEEN: set[str] = set()
_FOLDS: dict[str, str] = {}
_NOT_ONE: set[str] = set()


def _fold_with_offsets(text: str) -> tuple[str, Sequence[int]]:
    """The folded text and, per folded character, its offset in ``text`` (plus the end): a
    ``range`` when every character folds to one."""
    if text.isascii():  # the common case: folding is lower-casing, offsets do not move
        return text.lower(), range(len(text) + 1)
    # the next commonest (Chinese, accents): every character folds to one, offsets stay
    present = set(text)
    for c in present.difference(_SEEN):
        f = _fold_char(c)
        if len(f) != 1:
            _NOT_ONE.add(c)
        elif f != c:
            _FOLDS[c] = f
        _SEEN.add(c)  # last: another thread that sees it sees the two above too
    if _NOT_ONE.isdisjoint(present):
        changed = present.intersection(_FOLDS)
        if not changed:  # Chinese: each character is its own fold
            return text, range(len(text) + 1)
        into = {_FOLDS[c] for c in changed}
        if into.isdisjoint(changed):  # one replace per character (str.translate with a
            for c in changed:  # mapping looks up every character, ~200 ns each)
                text = text.replace(c, _FOLDS[c])
            return text, range(len(text) + 1)
        return text.translate({ord(c): _FOLDS[c] for c in changed}), range(len(text) + 1)
    chars: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):  # per character, so every folded one maps back
        f = _fold_char(ch)
        chars.append(f)
        offsets.extend([i] * len(f))
    offsets.append(len(text))
    return "".join(chars), offsets


@functools.cache
def _latin_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A letter of a (non-CJK) word, and the rest of a word."""
    return re.compile(_LATIN), re.compile(rf"{_LATIN}*")


class Highlighter:
    """The snippets of one query's hits: what its terms give (stems, prefixes, the pattern
    of word starts) is worked out once, and each word met is stemmed and judged once for all
    the hits, not once per article."""

    def __init__(self, terms: Iterable[Term]) -> None:
        terms = list(terms)
        stems: dict[str, bool] = {}
        for t in terms:
            if len(t.tokens) == 1 and t.words:
                stems[t.tokens[0]] = stems.get(t.tokens[0], False) or t.prefix
            else:
                stems.update({stem(x): False for x in t.words if x not in stems})
        self._stems = stems
        self._raws = [w for t in terms if t.prefix for w in t.words]
        self._cjk = list({s for t in terms for s in t.cjk})
        self._prefixes = [p for p, pre in stems.items() if pre]
        # Latin: only words starting like a stem or a query word are candidates, found by
        # str.find (made of letters, as a query's words and stems are, a start found inside
        # another's match follows a letter and is dropped as inside a word, so the words
        # kept are those of one regex pass over the alternatives) or else by that regex; a
        # word's start and end are checked with patterns compiled once (the Unicode class of
        # a word's letters takes ~5 ms to compile); each distinct candidate is then stemmed
        # once and checked exactly
        starts = sorted({*stems, *(w for t in terms for w in t.words)}, key=len, reverse=True)
        letters = _latin_patterns()[1]
        self._starts = starts
        self._pattern = (
            None
            if all(x and letters.fullmatch(x) for x in starts)
            else re.compile("|".join(re.escape(x) for x in starts))
        )
        self._decided: dict[str, bool] = {}

    def _hit(self, word: str) -> bool:
        """Whether a word of the text (folded) matches a term."""
        s = stem(word)
        hit = self._decided[word] = (
            s in self._stems
            or any(s.startswith(p) for p in self._prefixes)
            or any(word.startswith(r) for r in self._raws)
        )
        return hit

    def _words(self, folded: str) -> Iterable[tuple[int, int]]:
        """Where the words of ``folded`` that start like a start (a stem or a word of the
        query) begin and end, in order."""
        if not self._starts:
            return
        letter, rest = _latin_patterns()
        if self._pattern is not None:
            found: Iterable[int] = (m.start() for m in self._pattern.finditer(folded))
        else:
            places: set[int] = set()
            for x in self._starts:
                at = folded.find(x)
                while at != -1:
                    places.add(at)
                    at = folded.find(x, at + 1)
            found = sorted(places)
        ascii_text = folded.isascii()  # an ASCII letter of a word: isalnum, no regex
        for at in found:
            if at and (folded[at - 1].isalnum() if ascii_text else letter.match(folded, at - 1)):
                continue  # inside a word
            yield at, rest.match(folded, at).end()

    def spans(self, text: str, folded: str | None = None) -> list[tuple[int, int]]:
        """Spans of ``text`` (original, not folded) that match a term, sorted and merged;
        ``folded``: ``text`` folded one character for one (:func:`stored_fold`), if known."""
        spans: list[tuple[int, int]] = []
        if folded is None:
            folded, offsets = _fold_with_offsets(text)
        else:
            offsets = range(len(text) + 1)
        for needle in self._cjk:  # CJK: the query's runs as substrings
            start = folded.find(needle)
            while start != -1:
                spans.append((offsets[start], offsets[start + len(needle) - 1] + 1))
                start = folded.find(needle, start + len(needle))
        decided = self._decided
        for at, end in self._words(folded):
            word = folded[at:end]
            hit = decided.get(word)
            if hit is None:
                hit = self._hit(word)
            if hit:
                spans.append((offsets[at], offsets[end - 1] + 1))
        if len(spans) < 2:
            return spans
        spans.sort()
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        return merged

    def snippet(self, text: str, folded: str | None = None, *, width: int = 160) -> str:
        """An HTML-escaped snippet of ``text`` around the best cluster of hits, hits in
        ``<mark>``; ``folded`` as for :meth:`spans`."""
        text = text[:SNIPPET_SCAN]
        spans = self.spans(text, None if folded is None else folded[:SNIPPET_SCAN])
        if not spans:  # the words matched elsewhere (title, tags): the text's beginning
            cut = text[:width]
            return _escape(cut) + ("…" if len(text) > width else "")
        anchor = spans[_densest(spans, width)][0] if len(spans) > 1 else spans[0][0]
        start = max(0, anchor - width // 4)
        if start > 0:  # begin at a word (or the text's start) when one is near
            space = text.rfind(" ", 0, start + 1)
            if space == -1 and start < 20:
                start = 0
            elif space != -1 and start - space < 20:
                start = space + 1
        end = min(len(text), start + width)
        # most windows have nothing to escape: one look instead of an escape per piece
        escape = str if _nothing_to_escape(text[start:end]) else html.escape
        out = ["…" if start > 0 else ""]
        pos = start
        for a, b in spans:
            if b <= start or a >= end:
                continue
            a, b = max(a, start), min(b, end)
            out.append(escape(text[pos:a]))
            out.append("<mark>" + escape(text[a:b]) + "</mark>")
            pos = b
        out.append(escape(text[pos:end]))
        out.append("…" if end < len(text) else "")
        return "".join(out)


def stored_fold(text: str) -> str | None:
    """``text`` folded, to store beside it when folding keeps every character in its place
    (Chinese, accents): its snippets then need no folding. ``None`` for ASCII (lower-casing
    is as cheap as reading a copy) and for text where folding moves characters (ß → ss)."""
    if text.isascii():
        return None
    folded, offsets = _fold_with_offsets(text)
    return folded if isinstance(offsets, range) else None


def _hits(text: str, terms: Iterable[Term]) -> list[tuple[int, int]]:
    """Spans of ``text`` (original, not folded) that match a term."""
    return Highlighter(terms).spans(text)


def _densest(spans: Sequence[tuple[int, int]], width: int) -> int:
    """The first of the (sorted) spans that most spans start within ``width`` of."""
    best, best_count = 0, 0
    starts = [a for a, _ in spans]
    for i, a in enumerate(starts):
        count = bisect.bisect_left(starts, a + width, i) - i
        if count > best_count:
            best, best_count = i, count
    return best


def highlight(text: str, terms: Sequence[Term], *, width: int = 160) -> str:
    """An HTML-escaped snippet of ``text`` around the best cluster of hits, hits in ``<mark>``
    (for many texts and the same terms, :class:`Highlighter` works the terms out once)."""
    return Highlighter(terms).snippet(text, width=width)


def has_cjk(text: str) -> bool:
    return bool(_CJK_CHAR.search(text))
