"""What a module keeps beside its scratch tables for the transaction running on a
connection (the import's pending counters, its kept batches).

The scratch tables are transactional; this Python state is not, so it is tied to the
transaction that wrote it: read on the same connection in a later transaction (the one
that wrote it committed or rolled back), it is gone.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerTransaction(Generic[T]):
    """``{connection: value}`` for the transaction running on each connection (weak: a
    closed connection's entry goes too)."""

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[Any, tuple[weakref.ref[Any], T]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, connection: Any) -> T | None:
        """The value of ``connection``'s running transaction; an earlier transaction's
        entry is dropped."""
        entry = self._entries.get(connection)
        if entry is None:
            return None
        transaction, value = entry
        running = connection.get_transaction()
        if running is None or transaction() is not running:
            del self._entries[connection]
            return None
        return value

    def set(self, connection: Any, value: T) -> None:
        """Keep ``value`` for ``connection``'s running transaction."""
        self._entries[connection] = (weakref.ref(connection.get_transaction()), value)

    def drop(self, connection: Any) -> None:
        self._entries.pop(connection, None)

    def __bool__(self) -> bool:
        """Whether any connection of this process has an entry (cheap: no connection read)."""
        return bool(self._entries)
