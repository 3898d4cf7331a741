"""Likely duplicate customers: normalised keys, the check at creation, the listing.

Three kinds of evidence, each a normalised *key* two customers share:

* ``email``: the address with surrounding spaces removed, lower-cased. Nothing else is
  rewritten (no dropped dots or ``+tags`` for any provider: those are different
  mailboxes at most providers, and guessing would merge different people).
* ``phone``: the number in E.164 (``+8613800138000``), parsed with the ``phonenumbers``
  library; a number without a country prefix is read in the default region (the
  country of the configured ``timezone``, e.g. ``Asia/Shanghai`` -> CN). A number that
  cannot be parsed is compared by its digits without leading zeros (``digits:1012345678``,
  at least six); with no default region (``timezone = "UTC"``) a parsed number is also
  compared by its national digits, so ``+86 138 0013 8000`` meets ``138 0013 8000``.
* ``name``: the name's words, romanised and compared in any order. Chinese characters
  are romanised with ``pypinyin`` (toneless; every reading of the first character, the
  surname, so 曾 gives ``ceng`` and ``zeng``), Latin words lose accents and case. A
  Chinese name gives two keys, syllable by syllable and with the given name as one word,
  so 李娜 ~ "Li Na" ~ "Na Li" and 王小明 ~ "Wang Xiaoming" ~ "Xiao Ming Wang".

Erased customers and records merged into another are never candidates. The listing
computes every customer's keys once (linear), stores them in a temporary table and lets
the database pair customers that share a key (blocking); a key shared by more than
``max_block`` customers (a switchboard number, a very common name) is reported as
crowded instead of producing every pair. The check at creation asks the database for
the few rows that can share a key with the new customer and confirms them here.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import phonenumbers
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
)

from crmkit.core import tables as t
from crmkit.core.bulk import chunks
from crmkit.core.entities import Customer

if TYPE_CHECKING:
    from crmkit.crm import CRM

log = logging.getLogger(__name__)

#: The kinds of evidence, strongest first.
KINDS = ("email", "phone", "name")

#: A key shared by more customers than this is reported as crowded, not as pairs.
MAX_BLOCK = 50

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_WORD_SPLIT = re.compile(r"[\W_]+")
_INSIDE_WORD = re.compile(r"(?<=\w)['’\-‐](?=\w)")
_PHONE_SEPARATORS = (" ", "-", ".", "(", ")", "/", "+")


@attrs.frozen
class Evidence:
    """One key two customers share: ``kind`` (email, phone, name) and the normalised value."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


@attrs.frozen
class DuplicateCandidate:
    """A stored customer that may be the same as the one asked about, and why."""

    customer_id: int
    name: str
    evidence: tuple[Evidence, ...]


@attrs.frozen
class DuplicatePair:
    """Two stored customers that may be the same (``first_id`` < ``second_id``), and why."""

    first_id: int
    first_name: str
    second_id: int
    second_name: str
    evidence: tuple[Evidence, ...]


@attrs.frozen
class CrowdedKey:
    """A key shared by too many customers to list as pairs (``count`` of them)."""

    kind: str
    value: str
    count: int


@attrs.frozen
class DuplicateReport:
    """What :func:`find_pairs` found: the pairs, strongest first, and the crowded keys."""

    pairs: tuple[DuplicatePair, ...]
    crowded: tuple[CrowdedKey, ...] = ()


# -- normalisation ---------------------------------------------------------------------------
def email_key(email: str | None) -> str | None:
    """The e-mail address trimmed and lower-cased (nothing else rewritten), or None."""
    text = (email or "").strip().lower()
    return text or None


@functools.cache
def region_for_timezone(timezone: str | None) -> str | None:
    """The country (``CN``) whose numbers use ``timezone`` (``Asia/Shanghai``), or None.

    Read from ``phonenumbers``' own time zone data: the shortest number prefix listed
    for the zone names the country calling code; its main country is the region.
    """
    if not timezone:
        return None
    from phonenumbers.timezone import TIMEZONE_DATA

    best: str | None = None
    for prefix, zones in TIMEZONE_DATA.items():
        if timezone in zones and (best is None or len(prefix) < len(best)):
            best = prefix
    if best is None:
        return None
    for size in (1, 2, 3):
        region = phonenumbers.region_code_for_country_code(int(best[:size]))
        if region != phonenumbers.UNKNOWN_REGION:
            return region
    return None


def default_region(crm: CRM) -> str | None:
    """The region numbers without a country prefix are read in: from the configured
    ``timezone`` (see :func:`region_for_timezone`)."""
    return region_for_timezone(crm.config.timezone)


def _parse_phone(phone: str | None, region: str | None) -> phonenumbers.PhoneNumber | None:
    text = (phone or "").strip()
    if not text:
        return None
    if region is None and text.startswith("00"):
        text = "+" + text[2:]  # the international prefix most of the world dials
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def phone_keys(phone: str | None, region: str | None = None) -> set[str]:
    """:func:`phone_key`, and without a default region also the national number's digits
    (``digits:13800138000``), so ``+86 138 0013 8000`` meets ``138 0013 8000``."""
    key = phone_key(phone, region)
    if key is None:
        return set()
    keys = {key}
    number = _parse_phone(phone, region) if region is None else None
    if number is not None:
        keys.add(f"digits:{number.national_number}")
    return keys


def phone_key(phone: str | None, region: str | None = None) -> str | None:
    """The number in E.164 (``+8613800138000``), or ``digits:...`` when it cannot be
    parsed (at least six digits), or None."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) < 6:
        return None
    number = _parse_phone(phone, region)
    if number is not None:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"digits:{digits.lstrip('0') or digits}"  # without a trunk prefix (0 or 00)


def _plain(text: str) -> str:
    """Lower case without accents (``Lǚ`` -> ``lu``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


#: Surnames read otherwise than the character usually is (曾 zeng, not ceng).
_SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "仇": "qiu", "区": "ou", "解": "xie", "朴": "piao", "查": "zha",
    "乐": "yue", "盖": "ge", "缪": "miao", "覃": "qin", "秘": "bi", "冼": "xian", "洗": "xian",
    "黑": "he", "种": "chong", "折": "she", "员": "yun", "召": "shao", "宓": "mi", "繁": "po",
    "句": "gou", "瞿": "qu", "尉": "yu", "翟": "zhai", "祭": "zhai", "长": "chang", "重": "chong",
}  # fmt: skip

#: Two-character surnames, romanised as one word (欧阳娜娜: Ouyang Nana).
_COMPOUND_SURNAMES = frozenset(
    (
        "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文",
        "司徒", "夏侯", "令狐", "端木", "西门", "南宫", "独孤", "轩辕", "澹台", "呼延", "百里",
        "东郭", "闻人", "万俟", "申屠", "公羊", "司空", "太史", "钟离", "赫连", "拓跋",
    )
)  # fmt: skip


def _is_syllable(text: str) -> bool:
    return text.isascii() and text.isalpha()


def _romanised(characters: str) -> list[str]:
    """The usual toneless pinyin of each character, read together (context decides)."""
    from pypinyin import Style, lazy_pinyin

    found = lazy_pinyin(characters, style=Style.NORMAL, v_to_u=True)
    return [plain for plain in map(_plain, found) if _is_syllable(plain)]


def _chinese_keys(characters: str) -> set[str]:
    """Keys of a Chinese name: syllable by syllable, and surname plus given name as words."""
    size = 2 if characters[:2] in _COMPOUND_SURNAMES else 1
    surname, given = characters[:size], characters[size:]
    readings = [_romanised(surname)]
    if surname in _SURNAME_READINGS and [_SURNAME_READINGS[surname]] != readings[0]:
        readings.append([_SURNAME_READINGS[surname]])
    syllables = _romanised(given)
    keys = set()
    for parts in readings:
        keys.add(" ".join(sorted([*parts, *syllables])))
        if syllables:
            keys.add(" ".join(sorted(["".join(parts), "".join(syllables)])))
    return keys


def name_keys(name: str | None) -> set[str]:
    """The name's keys: its words romanised, lower-cased and sorted (see the module doc)."""
    text = unicodedata.normalize("NFKC", name or "")
    characters = _HAN.findall(text)
    latin = _HAN.sub(" ", text)
    words = [_plain(w) for w in _WORD_SPLIT.split(latin) if w]
    if characters and not words:
        keys = _chinese_keys("".join(characters))
    elif characters:  # mixed: every part, syllable by syllable
        keys = {" ".join(sorted(words + _romanised("".join(characters))))}
    else:
        keys = {" ".join(sorted(words))}
        joined = [_plain(w) for w in _WORD_SPLIT.split(_INSIDE_WORD.sub("", latin)) if w]
        keys.add(" ".join(sorted(joined)))  # Xiao-Ming as one word too
    return {k for k in keys if k}


def keys_of(customer: Any, region: str | None) -> set[Evidence]:
    """Every key of a customer (anything with ``name``, ``email`` and ``phone``)."""
    found = {Evidence("name", key) for key in name_keys(customer.name)}
    email = email_key(customer.email)
    if email:
        found.add(Evidence("email", email))
    found.update(Evidence("phone", key) for key in phone_keys(customer.phone, region))
    return found


def _strength(evidence: Iterable[Evidence]) -> tuple[int, ...]:
    kinds = {e.kind for e in evidence}
    return tuple(-int(kind in kinds) for kind in KINDS)


def _ordered(evidence: Iterable[Evidence]) -> tuple[Evidence, ...]:
    return tuple(sorted(set(evidence), key=lambda e: (KINDS.index(e.kind), e.value)))


# -- the check of one customer -------------------------------------------------------------
@functools.cache
def _characters_by_reading() -> dict[str, str]:
    """Every common Chinese character by each of its toneless readings (built once)."""
    from pypinyin.pinyin_dict import pinyin_dict

    found: dict[str, list[str]] = {}
    for code, readings in pinyin_dict.items():
        if not (0x3400 <= code <= 0x9FFF):
            continue
        for reading in readings.split(","):
            plain = _plain(reading)
            if _is_syllable(plain):
                found.setdefault(plain, []).append(chr(code))
    return {reading: "".join(sorted(set(chars))) for reading, chars in found.items()}


def _chinese_pattern(keys: Iterable[str]) -> str | None:
    """A regular expression matching the Chinese names that can read as one of ``keys``:
    only characters whose reading occurs inside a word of a key."""
    index = _characters_by_reading()
    characters: set[str] = set()
    for word in {w for key in keys for w in key.split()}:
        for start in range(len(word)):
            for end in range(start + 1, min(len(word), start + 6) + 1):
                characters.update(index.get(word[start:end], ""))
    if not characters:
        return None
    return "^[" + "".join(sorted(characters)) + " ·]+$"


def _digits(column: Any) -> Any:
    expression = column
    for separator in _PHONE_SEPARATORS:
        expression = func.replace(expression, separator, "")
    return expression


def _candidate_condition(customer: Customer, region: str | None) -> Any:
    """SQL: the stored customers that may share a key with ``customer`` (confirmed later)."""
    c = t.customers.c
    conditions = []
    email = email_key(customer.email)
    if email:
        conditions.append(func.lower(func.trim(c.email)) == email)
    number = _parse_phone(customer.phone, region)
    digits = str(number.national_number) if number else re.sub(r"\D", "", customer.phone or "")
    digits = digits.lstrip("0")
    if len(digits) >= 6:
        conditions.append(_digits(c.phone).contains(digits))
    keys = name_keys(customer.name)
    for key in keys:
        conditions.append(and_(*(c.name.icontains(word, autoescape=True) for word in key.split())))
    pattern = _chinese_pattern(keys)
    if pattern:
        conditions.append(c.name.regexp_match(pattern))
    return or_(*conditions) if conditions else None


def find_for(crm: CRM, customer: Customer) -> list[DuplicateCandidate]:
    """Stored customers (not erased, not merged, not ``customer`` itself) that share an
    e-mail, phone or name key with ``customer``, strongest evidence first."""
    region = default_region(crm)
    condition = _candidate_condition(customer, region)
    if condition is None:
        return []
    mine = keys_of(customer, region)
    c = t.customers.c
    query = select(c.id, c.name, c.email, c.phone).where(
        condition, c.erased_at.is_(None), c.merged_into.is_(None)
    )
    if customer.id is not None:
        query = query.where(c.id != customer.id)
    found = []
    with crm.reading() as connection:
        for row in connection.execute(query.order_by(c.id)):
            shared = mine & keys_of(row, region)
            if shared:
                found.append(DuplicateCandidate(row.id, row.name, _ordered(shared)))
    return sorted(found, key=lambda f: (_strength(f.evidence), f.customer_id))


def describe(customer: Customer, candidates: Sequence[DuplicateCandidate]) -> str:
    """One line saying which stored customers ``customer`` may duplicate, and why."""
    parts = [
        f"customer {c.customer_id} ({c.name}: {', '.join(map(str, c.evidence))})"
        for c in candidates[:5]
    ]
    more = f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
    first = candidates[0].customer_id
    return (
        f"customer {customer.id} ({customer.name}) may be a duplicate of "
        f"{'; '.join(parts)}{more}; compare them with 'crmkit customer show', and merge "
        f"with 'crmkit customer merge {first} {customer.id}' if they are the same"
    )


def flag_new(crm: CRM, customer: Customer) -> list[DuplicateCandidate]:
    """Check a customer just created: log one warning naming the candidates, return them."""
    candidates = find_for(crm, customer)
    if candidates:
        log.warning("%s", describe(customer, candidates))
    return candidates


# -- the listing ---------------------------------------------------------------------------
_keys_metadata = MetaData()
_keys = Table(
    "crmkit_duplicate_keys",
    _keys_metadata,
    Column("customer_id", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("value", Text, nullable=False),
    prefixes=["TEMPORARY"],
)


def _stored_keys(connection: Connection, region: str | None) -> Iterator[dict[str, Any]]:
    """The keys of every candidate customer, read in batches by id (bounded memory)."""
    c = t.customers.c
    last = 0
    while True:
        rows = connection.execute(
            select(c.id, c.name, c.email, c.phone)
            .where(c.id > last, c.erased_at.is_(None), c.merged_into.is_(None))
            .order_by(c.id)
            .limit(5000)
        ).all()
        if not rows:
            return
        for row in rows:
            for evidence in keys_of(row, region):
                yield {"customer_id": row.id, "kind": evidence.kind, "value": evidence.value}
        last = rows[-1].id


def find_pairs(crm: CRM, *, max_block: int = MAX_BLOCK) -> DuplicateReport:
    """Every pair of stored customers sharing a key, strongest evidence first.

    Keys are computed once per customer and paired by the database (a self-join on
    the key), so the work grows with the customers and the pairs found, not with
    every pair of customers. Keys shared by more than ``max_block`` customers are
    returned as crowded keys instead of pairs.
    """
    region = default_region(crm)
    with crm.engine.connect() as connection, connection.begin() as transaction:
        _keys.create(connection)
        for batch in chunks(_stored_keys(connection, region), 5000):
            connection.execute(insert(_keys), batch)
        connection.exec_driver_sql(
            "CREATE INDEX crmkit_duplicate_keys_kind_value ON crmkit_duplicate_keys (kind, value)"
        )
        sizes = (
            select(_keys.c.kind, _keys.c.value, func.count().label("n"))
            .group_by(_keys.c.kind, _keys.c.value)
            .having(func.count() > 1)
            .subquery()
        )
        crowded = [
            CrowdedKey(row.kind, row.value, row.n)
            for row in connection.execute(
                select(sizes).where(sizes.c.n > max_block).order_by(sizes.c.n.desc())
            )
        ]
        a, b = _keys.alias("a"), _keys.alias("b")
        query = (
            select(a.c.customer_id, b.c.customer_id.label("other"), a.c.kind, a.c.value)
            .join(sizes, and_(sizes.c.kind == a.c.kind, sizes.c.value == a.c.value))
            .join(
                b,
                and_(
                    b.c.kind == a.c.kind,
                    b.c.value == a.c.value,
                    b.c.customer_id > a.c.customer_id,
                ),
            )
            .where(sizes.c.n <= max_block)
        )
        shared: dict[tuple[int, int], set[Evidence]] = {}
        for row in connection.execute(query):
            shared.setdefault((row.customer_id, row.other), set()).add(
                Evidence(row.kind, row.value)
            )
        names = _names(connection, {i for pair in shared for i in pair})
        transaction.rollback()  # drops the temporary table with everything else
    pairs = [
        DuplicatePair(first, names.get(first, ""), second, names.get(second, ""), _ordered(found))
        for (first, second), found in shared.items()
    ]
    pairs.sort(key=lambda p: (_strength(p.evidence), p.first_id, p.second_id))
    return DuplicateReport(tuple(pairs), tuple(crowded))


def _names(connection: Connection, ids: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in chunks(iter(sorted(ids)), 5000):
        rows = connection.execute(
            select(t.customers.c.id, t.customers.c.name).where(t.customers.c.id.in_(chunk))
        )
        found.update((row.id, row.name) for row in rows)
    return found


__all__ = [
    "CrowdedKey",
    "DuplicateCandidate",
    "DuplicatePair",
    "DuplicateReport",
    "Evidence",
    "email_key",
    "find_for",
    "find_pairs",
    "flag_new",
    "name_keys",
    "phone_key",
]
