"""Benchmark: knowledge base search over 50,000 articles (English and Chinese), seeded.

    python bench/kb_search.py                       # SQLite, 50,000 articles
    KB_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:54329/postgres python bench/kb_search.py

Side by side in the same run, on the same articles and queries:

* ``fts``    — ``kb.search(query)``: the full API (query parsing, FTS5 ``MATCH`` or
  PostgreSQL ``@@`` with ranking, the top 20 loaded and given highlighted snippets);
  ``index`` is the ranked index query alone (the floor: what kb.search asks the index),
  to show what parsing, loading and snippets cost (on SQLite also run on the driver's
  cursor, as kb.search runs its statement, to show what SQLAlchemy's per-call work is
  of the floor); ``every match ranked`` is the same
  query ranking every match instead of the newest ``search.CANDIDATES`` (as before they
  were bounded), to show what the bound saves;
* ``like``   — what one would write without a full-text index: ``title LIKE '%w%' OR
  body LIKE '%w%'`` for every word, newest first, 20 rows (no ranking, no stemming, no
  snippets), which must read every article.

Queries (seeded): single English words of every frequency, two words, prefixes as typed
(``refu``), Chinese words of two and four characters, mixed, and with filters. With a
PostgreSQL server URL in ``KB_BENCH_POSTGRES_URL`` a throw-away database is created on it
and the same run is made there.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from crmkit_knowledgebase import search as fts
from crmkit_knowledgebase import service
from crmkit_knowledgebase.text import STOP_WORDS, Term, parse_query, prefix_stem
from sqlalchemy import text

import crmkit
from crmkit.testing import create_postgres_database, drop_postgres_database

SYLLABLES = [
    "ra",
    "fun",
    "de",
    "li",
    "ver",
    "ship",
    "pay",
    "ment",
    "war",
    "ran",
    "ty",
    "in",
    "stal",
    "la",
    "tion",
    "ac",
    "count",
    "pass",
    "word",
    "fil",
    "ter",
    "wash",
    "er",
    "cool",
    "heat",
    "box",
    "port",
    "al",
    "con",
    "tract",
    "ser",
    "vice",
    "mo",
    "bile",
]
REAL = [
    "refund",
    "delivery",
    "warranty",
    "invoice",
    "password",
    "filter",
    "installation",
    "payment",
    "shipping",
    "return",
    "repair",
    "account",
    "order",
    "points",
    "voucher",
    "screen",
    "battery",
    "charger",
    "fridge",
    "kettle",
    "washer",
    "dryer",
    "noise",
]
HANZI = (
    "退款政策配送时间保修条款发票支付方式会员积分安装服务洗衣机故障代码空调滤网清洗重置密码"
    "订单物流快递售后维修电池屏幕冰箱噪音充电器优惠券地址修改取消申请到账质量投诉"
)
CATEGORIES = ["billing", "delivery", "warranty", "account", "products", "service", "returns"]


def vocabulary(rng: random.Random) -> tuple[list[str], list[str]]:
    """English: the stop words first (the commonest words of real text, which a query drops),
    then content words; Chinese: words of 2-4 characters. Both are drawn by Zipf's law."""
    english = sorted(STOP_WORDS, key=lambda w: (len(w), w)) + list(REAL)
    while len(english) < 5000:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in english:
            english.append(word)
    chinese = []
    while len(chinese) < 1500:
        word = "".join(rng.choice(HANZI) for _ in range(rng.choice((2, 2, 3, 4))))
        if word not in chinese:
            chinese.append(word)
    return english, chinese


_CUM: dict[int, list[float]] = {}


def zipf(rng: random.Random, words: list[str]) -> str:
    """A word drawn by Zipf's law (weight 1/rank): a few very common words, a long tail."""
    cum = _CUM.get(len(words))
    if cum is None:
        total, cum = 0.0, []
        for rank in range(1, len(words) + 1):
            total += 1 / rank
            cum.append(total)
        _CUM[len(words)] = cum
    return rng.choices(words, cum_weights=cum)[0]


def article(rng: random.Random, n: int, english: list[str], chinese: list[str]) -> dict[str, Any]:
    if rng.random() < 0.5:
        title = " ".join(zipf(rng, english) for _ in range(rng.randint(2, 6))).capitalize()
        body = " ".join(zipf(rng, english) for _ in range(rng.randint(60, 160))) + "."
        tags = [zipf(rng, english) for _ in range(rng.randint(0, 3))]
    else:
        title = "".join(zipf(rng, chinese) for _ in range(rng.randint(2, 4)))
        sentences = ["".join(zipf(rng, chinese) for _ in range(rng.randint(4, 12)))
                     for _ in range(rng.randint(5, 12))]  # fmt: skip
        body = "。".join(sentences) + "。"
        tags = [zipf(rng, chinese) for _ in range(rng.randint(0, 3))]
    return {
        "slug": f"a{n}",
        "title": title,
        "body": body,
        "category": rng.choice(CATEGORIES),
        "tags": tags,
        "audience": rng.choice(("public", "public", "internal")),
        "status": rng.choice(("published", "published", "published", "draft", "archived")),
    }


def queries(rng: random.Random, english: list[str], chinese: list[str], n: int) -> list[tuple]:
    out: list[tuple[str, str, dict[str, str]]] = []
    english = [w for w in english if w not in STOP_WORDS]  # what people search for
    kinds = ["en word", "en common", "en two words", "en prefix", "zh 2 chars", "zh 4 chars",
             "mixed", "filtered"]  # fmt: skip
    for i in range(n):
        kind = kinds[i % len(kinds)]
        filters: dict[str, str] = {}
        if kind == "en word":  # a content word a user would type: any of the 1,000 commonest
            q = rng.choice(english[:1000])
        elif kind == "en common":  # the worst case: one of the 20 commonest content words
            q = rng.choice(english[:20])
        elif kind == "en two words":
            q = f"{rng.choice(english[:1000])} {rng.choice(english[:1000])}"
        elif kind == "en prefix":  # a word being typed
            word = rng.choice([w for w in english[:1000] if len(w) >= 6])
            q = word[: rng.randint(3, len(word) - 1)]
        elif kind == "zh 2 chars":
            q = rng.choice(chinese[:500])[:2]
        elif kind == "zh 4 chars":
            q = rng.choice([w for w in chinese[:800] if len(w) == 4])
        elif kind == "mixed":
            q = f"{rng.choice(english[:1000])} {rng.choice(chinese[:500])[:2]}"
        else:
            q = rng.choice(english[:1000])
            filters = {"status": "published", "audience": "public",
                       "category": rng.choice(CATEGORIES)}  # fmt: skip
        out.append((kind, q, filters))
    return out


def like_search(crm: Any, query: str, filters: dict[str, str]) -> list[int]:
    where, params = [], {}
    for i, word in enumerate(query.split()):
        where.append(f"(lower(title) LIKE :w{i} OR lower(body) LIKE :w{i})")
        params[f"w{i}"] = f"%{word.lower()}%"
    for name, value in filters.items():
        where.append(f"{name} = :{name}")
        params[name] = value
    sql = (f"SELECT id FROM kb_articles WHERE {' AND '.join(where)} "
           "ORDER BY updated_at DESC, id LIMIT 20")  # fmt: skip
    with crm.reading() as connection:
        return [r[0] for r in connection.execute(text(sql), params)]


def index_only(
    crm: Any, terms: list[Term], filters: dict[str, str], candidates: int | None = fts.CANDIDATES
) -> list[tuple[int, float]]:
    """The ranked index query without parsing, loading articles or making snippets."""
    with crm.reading() as connection:
        return fts.search(connection, terms, limit=20, candidates=candidates, **filters)


def index_driver(crm: Any, terms: list[Term], filters: dict[str, str]) -> list[tuple[int, float]]:
    """The same ranked index query on the driver's cursor, as kb.search runs its statement on
    SQLite (the floor above goes through SQLAlchemy's ``execute``): shown beside the floor,
    so the part of the gap that is SQLAlchemy's per-call work is seen."""
    with crm.reading() as connection:
        where, params = fts._filters(filters.get("category"), filters.get("tag"),
                                     filters.get("audience"), filters.get("status"))  # fmt: skip
        params.update(limit=20, offset=0)
        sql = fts._fts5_sql(terms, "all", params, where, fts.CANDIDATES)
        return [(row[0], float(row[1])) for row in fts._driver_rows(connection, sql, params)]


def timed(
    methods: list[Any], runs: list[tuple], first: str = "search"
) -> list[tuple[list[float], int, list[float]]]:
    """Per method: wall-clock and this process's CPU milliseconds per query, and how many
    queries found something.

    The methods take turns query by query, in the order given, so a change of the shared
    machine's load falls on all of them alike; ``kb.search`` goes first and meets each query
    new (parsing included: the terms the others get are parsed beforehand and the parser's
    cache of typed words emptied), the index query alone gets the parsed terms and a warmed
    cache. ``first="index"``: the index query goes first instead, and it is the one that meets
    each query's pages first; ``"alternate"``: each of the two goes first for every other
    query, so neither is charged more than half of the first reads. CPU time is shown too
    because load stretches wall time; on SQLite all the work is in this process, on
    PostgreSQL most of it is in the server's."""
    out: list[tuple[list[float], int, list[float]]] = [([], 0, []) for _ in methods]
    terms_of = {q: parse_query(q) for _, q, _ in runs}
    prefix_stem.cache_clear()
    ahead = list(range(len(methods)))
    swapped = [1, 0, *range(2, len(methods))]
    for n, (_, q, filters) in enumerate(runs):
        order = swapped if first == "index" or (first == "alternate" and n % 2) else ahead
        for i in order:
            fn = methods[i]
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn(q, terms_of[q], filters)
            wall, found, cpu = out[i]
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            out[i] = (wall, found + bool(result), cpu)
    return out


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def bench(url: str, size: int, n_queries: int, seed: int, first: str = "search") -> None:
    rng = random.Random(seed)
    english, chinese = vocabulary(rng)
    crm = crmkit.open(url, plugins=["knowledgebase"], upgrade=True)
    try:
        kb = service(crm)
        t0 = time.perf_counter()
        for start in range(0, size, 2000):
            kb.add_many([article(rng, n, english, chinese)
                         for n in range(start, min(size, start + 2000))])  # fmt: skip
        load = time.perf_counter() - t0
        if crm.engine.dialect.name == "sqlite":
            with crm.engine.begin() as connection:
                connection.execute(text("INSERT INTO kb_fts(kb_fts) VALUES ('optimize')"))
                connection.execute(text("ANALYZE"))
        else:
            with crm.engine.begin() as connection:
                connection.execute(text("ANALYZE"))
        runs = queries(rng, english, chinese, n_queries + 20)
        runs, warm = runs[:n_queries], runs[n_queries:]
        sqlite = crm.engine.dialect.name == "sqlite"
        methods = [
            lambda q, _, f: kb.search(q, **f),
            lambda _, terms, f: index_only(crm, terms, f),
            lambda _, terms, f: index_only(crm, terms, f, None),
            lambda q, _, f: like_search(crm, q, f),
        ]
        if sqlite:  # right after the floor, finding the query's pages as warm as it does
            methods.insert(2, lambda _, terms, f: index_driver(crm, terms, f))
        timed(methods, warm)  # warm the database's caches (with other queries than those timed)
        fts_run, index_run, *driver, every, like_run = timed(methods, runs, first)
        fts_times, fts_found, fts_cpu = fts_run
        index_times, index_found, index_cpu = index_run
        like_times, like_found, like_cpu = like_run
        name = crm.engine.dialect.name
        print(
            f"\n{name}: {size:,} articles loaded in {load:.1f} s "
            f"({size / load:,.0f}/s, analysis and index included); {len(runs)} queries"
        )
        reader = {
            "search": "kb.search reads",
            "index": "the index query alone reads",
            "alternate": "kb.search and the index query alone take turns reading",
        }[first]
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {reader} "
              "each query's pages first")  # fmt: skip
        print(f"{'method':<34}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'cpu p50':>9}{'cpu p95':>9}"
              f"{'with hits':>11}")  # fmt: skip
        engine = "FTS5" if name == "sqlite" else "tsvector + GIN"
        for label, times, found, cpu in (
            (f"kb.search ({engine})", fts_times, fts_found, fts_cpu),
            ("  of which the index query alone", index_times, index_found, index_cpu),
            *((("  the same on the driver's cursor", *driver[0]),) if driver else ()),
            ("every match ranked (unbounded)", *every),
            ("plain LIKE scan", like_times, like_found, like_cpu),
        ):
            print(f"{label:<34}{pct(times, 50):>9.2f}{pct(times, 95):>9.2f}{max(times):>9.1f}"
                  f"{pct(cpu, 50):>9.2f}{pct(cpu, 95):>9.2f}{found:>11}")  # fmt: skip
        p95, floor = pct(fts_times, 95), pct(index_times, 95)
        if sqlite:
            cpu = pct(fts_cpu, 95) / pct(index_cpu, 95)
            print(f"kb.search p95 {p95:.2f} ms = {p95 / floor:.2f}x the index query alone "
                  f"({floor:.2f} ms; target <= 1.30x); CPU p95 {cpu:.2f}x")  # fmt: skip
            bare = pct(driver[0][0], 95)
            print(f"  and {p95 / bare:.2f}x the index query on the driver's cursor "
                  f"({bare:.2f} ms)")  # fmt: skip
        else:
            print(f"kb.search p95 {p95:.2f} ms (target <= 20 ms; floor, the index query "
                  f"alone: {floor:.2f} ms, {p95 / floor:.2f}x)")  # fmt: skip
        by_kind = {}
        for kind in dict.fromkeys(r[0] for r in runs):
            mine = [t for t, r in zip(fts_times, runs, strict=True) if r[0] == kind]
            by_kind[kind] = pct(mine, 95)
        print("kb.search p95 ms by kind: " + ", ".join(f"{k} {v:.1f}" for k, v in by_kind.items()))
    finally:
        crm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL run")
    parser.add_argument(
        "--first",
        choices=["search", "index", "alternate"],
        default="search",
        help="which of kb.search and the index query alone meets each query (and reads its "
        "pages) first: kb.search (the default, the floor's favour), the index query, or "
        "each for every other query",
    )
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            bench(f"sqlite:///{Path(tmp) / 'kb.db'}", args.articles, args.queries, args.seed,
                  args.first)  # fmt: skip
    server = os.environ.get("KB_BENCH_POSTGRES_URL")
    if server:
        url = create_postgres_database(server)
        try:
            bench(url, args.articles, args.queries, args.seed, args.first)
        finally:
            drop_postgres_database(server, url)


if __name__ == "__main__":
    main()
