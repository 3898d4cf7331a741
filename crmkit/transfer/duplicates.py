"""The duplicate-id check of an import: the external ids met so far, in memory then on disk."""

from __future__ import annotations

import sqlite3
import tempfile
from operator import lt
from typing import IO

#: external ids kept in a set for the duplicate check (about 90 bytes each); beyond this
#: many they move to a temporary SQLite database, so memory stays bounded (checking a
#: million ids there costs about 1.2 s more than in a set)
SEEN_IN_MEMORY = 100_000

_SEP = "\x00"  # between the ids of a run written to disk: no external id holds NUL


class SeenKeys:
    """The external ids met so far in a file, to refuse the ones that come again.

    A set in memory up to ``limit`` ids (about 90 bytes each), then a
    temporary SQLite database, so memory stays bounded however long the file
    is. The database is SQLite's anonymous temporary one (opened with an
    empty name): SQLite unlinks its file as soon as it has opened it, so
    nothing is left on disk even when the import is killed (SIGKILL) midway.

    Files mostly list their records in the order of their ids. While every id
    met is greater than the one before (``"O0001" < "O0002"``), none can be a
    repeat: a new id is only compared with the last one, and the ids are
    appended to an anonymous temporary file instead of the set or the database.
    The first id out of order moves them to the set (or the database) and the
    check goes on there.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = SEEN_IN_MEMORY if limit is None else limit
        self._memory: set[str] = set()
        self._db: sqlite3.Connection | None = None
        self._last: str | None = None  # the greatest id so far while they ascend, else None
        self._ascending = True
        self._run: IO[str] | None = None  # the ids of the ascending run, NUL-separated
        self._run_count = 0

    def first_times(self, keys: list[str]) -> list[bool]:
        """For each key in order: True when met for the first time (it is then recorded)."""
        if not keys:
            return []
        if self._ascending:
            last = self._last
            if (last is None or last < keys[0]) and all(map(lt, keys, keys[1:])):
                self._keep_run(keys)
                return [True] * len(keys)
            self._end_run()
        if self._db is None:
            seen, out = self._memory, []
            for key in keys:
                if key in seen:
                    out.append(False)
                else:
                    seen.add(key)
                    out.append(True)
            if len(seen) > self.limit:
                self._spill()
            return out
        earlier = self._stored(keys)
        batch: set[str] = set()
        out = []
        for key in keys:
            first = key not in earlier and key not in batch
            if first:
                batch.add(key)
            out.append(first)
        self._db.executemany("INSERT INTO seen VALUES (?)", ((k,) for k in batch))
        return out

    def _keep_run(self, keys: list[str]) -> None:
        self._last = keys[-1]
        if self._run is None:
            self._run = tempfile.TemporaryFile(  # noqa: SIM115 - closed in _end_run or close
                "w+", encoding="utf-8", errors="surrogatepass", prefix="crmkit-ids-"
            )
        self._run.write(_SEP.join(keys))
        self._run.write(_SEP)
        self._run_count += len(keys)

    def _end_run(self) -> None:
        """The ids stop ascending: record the run's ids as if met one by one."""
        self._ascending = False
        run, self._run = self._run, None
        if run is None:
            return
        with run:
            run.seek(0)
            ids = run.read().split(_SEP)[:-1]
        if self._run_count > self.limit:
            self._spill(ids)
        else:
            self._memory.update(ids)

    def _spill(self, more: list[str] | None = None) -> None:
        self._db = sqlite3.connect("")  # anonymous: deleted on close, unlinked once open
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.executemany("INSERT INTO seen VALUES (?)", ((k,) for k in self._memory))
        if more:
            self._db.executemany("INSERT INTO seen VALUES (?)", ((k,) for k in more))
        self._memory = set()

    def _stored(self, keys: list[str]) -> set[str]:
        assert self._db is not None
        found: set[str] = set()
        for start in range(0, len(keys), 10_000):
            chunk = keys[start : start + 10_000]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key FROM seen WHERE key IN ({marks})"  # noqa: S608
            found.update(row[0] for row in self._db.execute(query, chunk))
        return found

    def close(self) -> None:
        if self._run is not None:
            self._run.close()
            self._run = None
        if self._db is not None:
            self._db.close()
            self._db = None
