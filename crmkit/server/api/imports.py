"""``POST /import/{kind}``: a CSV or JSON Lines body through the same atomic importer as
``crmkit import``.

The body streams to a temporary file (the server's body limit bounds it), then
:func:`crmkit.transfer.import_file` reads it twice as it reads any file: by default any
bad row stores nothing and the answer is a 422 listing the bad rows (line, column,
reason); ``?skip_invalid=true`` stores the good rows and lists the bad ones.
"""

from __future__ import annotations

import os
import tempfile

from crmkit.server.api import schemas as s
from crmkit.server.problems import Problem
from crmkit.server.routing import ApiRequest, Route
from crmkit.transfer import KINDS, import_file

TAGS = ("import",)

#: media types of the body, and the format each is
MEDIA_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json-lines": "jsonl",
}


def _format(req: ApiRequest, given: str | None) -> str:
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise Problem("validation-error", "format must be csv or jsonl", field="format")
        return given
    ctype = next((v for k, v in req.headers.items() if k.lower() == "content-type"), "")
    media = ctype.split(";", 1)[0].strip().lower()
    found = MEDIA_TYPES.get(media)
    if found is None:
        raise Problem(
            "unsupported-media-type",
            f"send the file as text/csv or application/x-ndjson, not {media or 'no type'}",
        )
    return found


def _rejects(result: object) -> list[s.ImportReject]:
    return [
        s.ImportReject(line=p.line, column=p.column, reason=p.reason)
        for p in getattr(result, "problems", [])
    ]


def run_import(req: ApiRequest) -> s.ImportOut:
    """Import customers, orders or interactions from the body (CSV or JSON Lines), in one
    transaction: counts stored, already present (skipped) and rejected, and the rejects."""
    kind = req.path["kind"]
    if kind not in KINDS:
        raise Problem("not-found", f"nothing to import as {kind!r}; kinds: {', '.join(KINDS)}")
    query: s.ImportQuery = req.query or s.ImportQuery()
    fmt = _format(req, query.format)
    with tempfile.TemporaryDirectory(prefix="crmkit-import-") as folder:
        path = os.path.join(folder, f"{kind}.{fmt}")
        with open(path, "wb") as out:
            for chunk in req.stream or ():
                out.write(chunk)
        result = import_file(
            req.crm,
            kind,
            path,
            encoding=query.encoding or None,
            input_format=fmt,
            skip_invalid=query.skip_invalid,
            decimal_comma=query.decimal_comma,
        )
    rejects = _rejects(result)
    if not result.committed:
        raise Problem(
            "validation-error",
            f"{result.rejected} of {result.read} rows are invalid; nothing was stored (fix "
            "them, or send ?skip_invalid=true to store the valid rows)",
            kind=kind,
            read=result.read,
            stored=0,
            already_present=0,
            rejected=result.rejected,
            rejects=[{"line": r.line, "column": r.column, "reason": r.reason} for r in rejects],
        )
    return s.ImportOut(
        kind=kind,
        read=result.read,
        stored=result.stored,
        already_present=result.already_present,
        rejected=result.rejected,
        committed=True,
        rejects=rejects,
    )


def routes() -> list[Route]:
    return [
        Route("POST", "/import/{kind}", run_import, "Import a CSV or JSON Lines file",
              query=s.ImportQuery, response=s.ImportOut, body_kind="stream", tags=TAGS,
              description="The body is the file: Content-Type text/csv or "
              "application/x-ndjson. Any bad row stores nothing (422 listing the rows) "
              "unless skip_invalid.", errors=(404, 413, 415)),
    ]  # fmt: skip
