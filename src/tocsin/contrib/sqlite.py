"""sqlite3 connections that send ``connection_created``, and batches tied to their commits.

``Connection`` is a ``sqlite3.Connection`` subclass: use it as
``sqlite3.connect(database, factory=Connection)``, or call ``connect(database, **kwargs)``.
Every new connection sends ``connection_created(connection=<the connection>)``, with the
connection's class as sender, once it is configured and before anyone can run a query on it:
the place for per-connection set-up such as ``PRAGMA foreign_keys = ON``.

``on_commit(connection)`` returns a batch (see ``tocsin.commit``) whose sends wait for the
connection's transaction: sent when it commits, dropped when it rolls back. sqlite3 has no
hook that reports a transaction's end, so the connection watches its own methods:
``commit()`` sends; ``rollback()`` drops, and so does ``close()`` with a transaction open,
since closing throws uncommitted work away; ``with connection:`` does one or the other. A
``COMMIT``, ``ROLLBACK`` or ``SAVEPOINT`` statement you execute yourself goes unseen (see
docs/integrations.md for savepoints). A block that ends while no transaction is open (in
autocommit mode, or when the block wrote nothing) sends at once: there is nothing left to
wait for.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from types import TracebackType
from typing import Any, Literal

from tocsin import catalogue
from tocsin.commit import Batch, TransactionLedger

__all__ = ["Connection", "connect", "on_commit"]


class Connection(sqlite3.Connection):
    """A ``sqlite3.Connection`` that sends ``connection_created`` and serves ``on_commit``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closed = False
        self._ledger: TransactionLedger | None = None  # made by the first on_commit(), see _batch()
        try:
            catalogue.connection_created.send(type(self), connection=self)
        except BaseException:
            # Nobody will ever get this connection: do not leave it open behind the error.
            super().close()
            raise

    def commit(self) -> None:
        """Commit the transaction; then send what ``on_commit`` batches collected for it."""
        ending = self._in_watched_transaction()
        super().commit()
        if ending:
            self._transaction_ended(committed=True)

    def rollback(self) -> None:
        """Roll the transaction back, dropping what ``on_commit`` batches collected for it."""
        ending = self._in_watched_transaction()
        super().rollback()
        if ending:
            self._transaction_ended(committed=False)

    def close(self) -> None:
        """Close the connection. Uncommitted work is thrown away, and so are the sends
        collected for it."""
        ending = not self._closed and self._in_watched_transaction()
        super().close()
        self._closed = True
        if ending:
            self._transaction_ended(committed=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        # sqlite3's own __exit__ commits or rolls back in C, without calling the methods above.
        if not self._in_watched_transaction():
            return super().__exit__(exc_type, exc, traceback)
        try:
            result = super().__exit__(exc_type, exc, traceback)
        except BaseException:
            # The commit failed; depending on the Python version sqlite3 then rolled back.
            if not self.in_transaction:
                self._transaction_ended(committed=False)
            raise
        self._transaction_ended(committed=exc_type is None)
        return result

    def _in_watched_transaction(self) -> bool:
        return self._ledger is not None and not self._closed and self.in_transaction

    def _transaction_ended(self, *, committed: bool) -> None:
        ledger = self._ledger
        assert ledger is not None
        # The BEGIN was not seen (sqlite3 issues it implicitly, or the user did): whatever
        # waited for "the next transaction" was waiting for the one that just ended.
        ledger.begin(self)
        if committed:
            ledger.commit(self)
        else:
            ledger.discard(self)

    def _batch(self) -> Batch:
        if self._closed:
            raise sqlite3.ProgrammingError(
                f"on_commit() needs an open connection; {self!r} is closed"
            )
        if self._ledger is None:
            connection = weakref.ref(self)

            def current() -> Connection | None:
                alive = connection()
                if alive is None or alive._closed or not alive.in_transaction:
                    return None
                return alive

            self._ledger = TransactionLedger(current, outside="send")
        return self._ledger.batch()


def connect(
    database: str | bytes | os.PathLike[str] | os.PathLike[bytes], **kwargs: Any
) -> Connection:
    """Open a connection as ``sqlite3.connect(database, **kwargs)`` does, as a ``Connection``.

    ``connection_created`` is sent before this returns. ``factory=``, if given, must be
    ``Connection`` or a subclass of it. Returns the new connection.
    """
    factory = kwargs.pop("factory", Connection)
    if not (isinstance(factory, type) and issubclass(factory, Connection)):
        raise TypeError(
            f"tocsin.contrib.sqlite.connect(factory=...) needs tocsin.contrib.sqlite.Connection "
            f"or a subclass of it, which sends the signals; got {factory!r}"
        )
    connection: Connection = sqlite3.connect(database, factory=factory, **kwargs)
    return connection


def on_commit(connection: Connection) -> Batch:
    """Return a batch whose sends wait for ``connection``'s transaction to commit.

    Use it as ``with on_commit(connection) as batch:`` (or ``async with``), and collect with
    ``batch.send(...)`` or ``defer=batch``. What the block collects is sent when the
    connection commits the transaction open at the time and dropped when it rolls back;
    if the block raises, it is dropped at once. See the module docstring for what counts as
    a commit.
    """
    if not isinstance(connection, Connection):
        raise TypeError(
            "tocsin.contrib.sqlite.on_commit() needs a connection made by "
            "tocsin.contrib.sqlite.connect() or sqlite3.connect(..., factory=Connection), "
            f"which reports its commits; got {connection!r} ({type(connection).__name__})"
        )
    return connection._batch()
