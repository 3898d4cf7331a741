"""Top-k accuracy of ``kb suggest`` on a labelled message set.

The set is a TSV file: ``expected<TAB>message`` per line, ``expected`` being
``template:<name>`` or ``article:<slug>``; lines starting with ``#`` are comments.
Run on the shipped samples (a throw-away SQLite database, or ``--database``)::

    python -m crmkit_knowledgebase.evaluate plugins/knowledgebase/tests/data/suggest_messages.tsv
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import click

from crmkit_knowledgebase.text import has_cjk


def read_labelled(path: str | Path) -> list[tuple[str, str]]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        expected, sep, message = line.partition("\t")
        if not sep or ":" not in expected:
            raise ValueError(f"{path}:{n}: expected 'kind:ref<TAB>message'")
        rows.append((expected, message))
    return rows


def accuracy(kb: Any, rows: list[tuple[str, str]], k: int = 3) -> dict[str, Any]:
    """Share of messages whose expected answer is among the top ``k`` (all, English, Chinese)
    and first (``top1``)."""
    found = []
    for expected, message in rows:
        refs = [f"{s.kind}:{s.ref}" for s in kb.suggest(message, limit=k)]
        found.append((has_cjk(message), expected in refs, refs[:1] == [expected]))
    out: dict[str, Any] = {"messages": len(found), "misses": sum(not f[1] for f in found)}
    for name, keep in (("all", None), ("english", False), ("chinese", True)):
        part = [ok for cjk, ok, _ in found if keep is None or cjk == keep]
        out[name] = round(sum(part) / len(part), 4) if part else None
    out["top1"] = round(sum(f[2] for f in found) / len(found), 4) if found else None
    return out


def main(argv: list[str] | None = None) -> None:
    import crmkit
    from crmkit_knowledgebase import service
    from crmkit_knowledgebase.plugin import SAMPLES
    from crmkit_knowledgebase.transfer import import_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labelled", help="the TSV file of expected<TAB>message lines")
    parser.add_argument("--database", help="a database URL (default: a temporary SQLite file)")
    parser.add_argument("-k", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/kb.db"
        crm = crmkit.open(url, plugins=["knowledgebase"], upgrade=True)
        try:
            kb = service(crm)
            import_dir(kb, SAMPLES)
            result = accuracy(kb, read_labelled(args.labelled), args.k)
        finally:
            crm.close()
    click.echo(
        f"top-{args.k} accuracy on {result['messages']} messages: {result['all']:.1%} "
        f"(English {result['english']:.1%}, Chinese {result['chinese']:.1%}; "
        f"{result['misses']} missed; top-1 {result['top1']:.1%})"
    )


if __name__ == "__main__":
    main()
