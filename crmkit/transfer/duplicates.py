"""The duplicate-id check of an import: the external ids met so far, in memory then on disk."""

from __future__ import annotations

import sqlite3

#: external ids kept in a set for the duplicate check (about 90 bytes each); beyond this
#: many they move to a temporary SQLite database, so memory stays bounded (checking a
#: million ids there costs about 0.3 s more than in a set)
SEEN_IN_MEMORY = 100_000


class SeenKeys:
    """The external ids met so far in a file, to refuse the ones that come again.

    A set in memory up to ``limit`` ids (about 90 bytes each), then a
    temporary SQLite database, so memory stays bounded however long the file
    is. The database is SQLite's anonymous temporary one (opened with an
    empty name): SQLite unlinks its file as soon as it has opened it, so
    nothing is left on disk even when the import is killed (SIGKILL) midway.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = SEEN_IN_MEMORY if limit is None else limit
        self._memory: set[str] = set()
        self._db: sqlite3.Connection | None = None

    def first_times(self, keys: list[str]) -> list[bool]:
        """For each key in order: True when met for the first time (it is then recorded)."""
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

    def _spill(self) -> None:
        self._db = sqlite3.connect("")  # anonymous: deleted on close, unlinked once open
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.executemany("INSERT INTO seen VALUES (?)", ((k,) for k in self._memory))
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
        if self._db is not None:
            self._db.close()
            self._db = None
