"""Commit-aware sending: collect sends in a batch, send them only once the work is committed.

``tocsin.on_commit()`` opens a batch: ``batch.send(signal, sender, **named)`` (and the
``tocsin.emit`` helpers given ``defer=batch``) collect sends instead of sending. When the
``with`` block ends without an exception the batch sends them, in the order they were
collected; when it ends with one, they are dropped. A receiver that emails a customer about
an order must not run for an order that was never stored: that is the whole point.

Batches nest. The open batches form a stack kept in a ``ContextVar``, so each thread and
each asyncio task has its own, and a block opened inside another block hands its sends to
the outer one when it ends, which sends them (or drops them) with its own.

A ``TransactionLedger`` ties batches to real transactions: it keeps the sends that wait on the
transactions of one database connection or session, and the integration that owns it
(``tocsin.contrib.sqlite``, ``tocsin.contrib.sqlalchemy``, or your own) reports each commit,
rollback and savepoint to it. Every send collected by a tied batch is labelled with the
transaction open when it was collected (the innermost one, a savepoint if one is open), and
follows that transaction: sent when it commits, dropped when it rolls back, moved to the
enclosing transaction when a savepoint is released. That holds even while the block that
collected the send is still open, so a block left open across a rollback cannot send what
the rollback undid.
"""

from __future__ import annotations

import itertools
import threading
from _thread import get_ident
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Final, Literal

from tocsin.dispatcher import Signal

__all__ = ["Batch", "TransactionLedger", "on_commit"]

# The batches open in this context, outermost first.
_open_batches: ContextVar[tuple[Batch, ...]] = ContextVar("tocsin_open_batches", default=())

# Every collected send gets the next number, so that sends gathered in several batches can be
# merged back into the order they were collected in. next() on a count is atomic in CPython.
_sequence = itertools.count()

_RESERVED: Final = ("signal", "sender")


class _Send:
    """One collected send, labelled with the transaction it waits on (None: none yet)."""

    __slots__ = ("named", "number", "sender", "signal", "transaction")

    def __init__(
        self, signal: Signal, sender: object, named: dict[str, Any], transaction: object
    ) -> None:
        self.number = next(_sequence)
        self.signal = signal
        self.sender = sender
        self.named = named
        self.transaction = transaction


def _in_order(sends: list[_Send]) -> list[_Send]:
    return sorted(sends, key=lambda send: send.number)


def _send_all(sends: list[_Send]) -> None:
    for send in sends:
        send.signal.send(send.sender, **send.named)


async def _asend_all(sends: list[_Send]) -> None:
    for send in sends:
        await send.signal.asend(send.sender, **send.named)


class Batch:
    """Sends collected in a ``with`` (or ``async with``) block, sent only if the block succeeds.

    Make one with ``tocsin.on_commit()``, or with an integration's ``on_commit(connection)``
    for a batch tied to a database transaction. A batch is used for one block; entering it
    twice is an error.
    """

    def __init__(self, ledger: TransactionLedger | None = None) -> None:
        # The ledger of the transaction-tied batch this one belongs to, if any: given for a
        # tied batch, inherited from the enclosing batch for a plain one (see _begin).
        self._ledger = ledger
        self._tied = ledger is not None
        self._state: Literal["new", "open", "closed"] = "new"
        self._sends: list[_Send] = []
        self._parent: Batch | None = None

    def __repr__(self) -> str:
        kind = "tied to a transaction" if self._tied else "plain"
        return f"<tocsin.commit.Batch, {kind}, {self._state}, {len(self._sends)} sends held>"

    @property
    def is_open(self) -> bool:
        """True inside the batch's block: the only time it can collect sends."""
        return self._state == "open"

    def send(self, signal: Signal, sender: object, /, **named: Any) -> None:
        """Collect ``signal.send(sender, **named)``, to be sent when the batch commits.

        The arguments are checked now if the signal is strict, so a mistake shows where it
        is made. Raises RuntimeError when the batch is not open.
        """
        if not isinstance(signal, Signal):
            raise TypeError(
                f"Batch.send() takes the signal to send first; got {signal!r} "
                f"({type(signal).__name__})"
            )
        if self._state != "open":
            raise RuntimeError(
                f"{self!r} cannot collect {signal!r}: a batch collects only inside its with block"
            )
        for name in _RESERVED:
            if name in named:
                raise TypeError(
                    f"Batch.send() of {signal!r} got an argument named {name!r}; every "
                    "receiver already gets that name, so pick another"
                )
        if signal.strict:
            signal.check_arguments(named, "send")
        ledger = self._ledger
        if ledger is None:
            self._sends.append(_Send(signal, sender, named, None))
        else:
            transaction = ledger._current()  # the integration's code: not under the lock
            ledger._refuse_reentry("collect a send")
            with ledger._lock:
                ledger._holder = get_ident()
                try:
                    self._sends.append(_Send(signal, sender, named, transaction))
                finally:
                    ledger._holder = 0

    # -- the block ------------------------------------------------------------------------

    def __enter__(self) -> Batch:
        self._begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _send_all(self._close(failed=exc_type is not None))

    async def __aenter__(self) -> Batch:
        self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await _asend_all(self._close(failed=exc_type is not None))

    def _begin(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"{self!r} was already used: make a new batch for each block")
        stack = _open_batches.get()
        for outer in reversed(stack):
            if outer._state != "open":
                continue  # its block ended in another task; see _close
            if self._tied and outer._ledger is not self._ledger:
                continue  # a tied batch follows its own transaction, not another's
            self._parent = outer
            if not self._tied:
                self._ledger = outer._ledger
            break
        if self._ledger is not None:
            self._ledger._refuse_reentry("open a batch")  # before anything changes
        self._state = "open"
        _open_batches.set((*stack, self))
        if self._ledger is not None:
            with self._ledger._lock:
                self._ledger._holder = get_ident()
                try:
                    self._ledger._open.append(self)
                finally:
                    self._ledger._holder = 0

    def _close(self, *, failed: bool) -> list[_Send]:
        """End the block; return the sends to make now (none unless this batch is outermost)."""
        if self._state != "open":
            raise RuntimeError(f"{self!r} is not open")
        ledger = self._ledger
        if ledger is not None:
            ledger._refuse_reentry("close a batch")  # before anything changes
        # Asked before anything changes, and not under the lock: it is the integration's code,
        # and if it fails, the batch is still open with its sends.
        outside_any = ledger is not None and ledger._current() is None
        _open_batches.set(tuple(batch for batch in _open_batches.get() if batch is not self))
        if ledger is None:
            sends, self._sends = self._sends, []
            self._state = "closed"
            if failed:
                return []
            if self._parent is None:
                return sends
            self._hand_to_parent(sends)
            return []
        with ledger._lock:
            ledger._holder = get_ident()
            try:
                ledger._open.remove(self)
                sends, self._sends = self._sends, []
                self._state = "closed"
                if failed:
                    return []
                if self._parent is not None:
                    self._hand_to_parent(sends)
                    return []
                if outside_any and ledger._outside == "send":
                    return _in_order(sends)
                ledger._waiting.extend(sends)
                return []
            finally:
                ledger._holder = 0

    def _hand_to_parent(self, sends: list[_Send]) -> None:
        parent = self._parent
        assert parent is not None
        if parent._state != "open":
            raise RuntimeError(
                f"{self!r} ended after the batch it was opened in, whose block ended first "
                f"(in another task or thread); its {len(sends)} sends were dropped"
            )
        parent._sends.extend(sends)


def on_commit() -> Batch:
    """Return a new batch for a ``with`` or ``async with`` block.

    ``batch.send(signal, sender, **named)`` inside the block collects a send; so does an
    ``tocsin.emit`` helper given ``defer=batch``. When the block ends without an exception,
    the batch sends what it collected, in order: with ``send`` after ``with``, with
    ``asend`` after ``async with``. If the block raises, nothing is sent. Inside another
    open batch of the same thread or task, the sends join the outer batch instead, and go
    (or are dropped) with it.
    """
    return Batch()


class TransactionLedger:
    """The sends waiting on the transactions of one database connection or session.

    An integration makes one ledger per connection (or session), hands out its batches
    with ``batch()``, and reports what happens to the transactions: ``begin``, ``release``,
    ``commit``, ``discard``. A transaction is any hashable object that identifies it while it
    lasts (the connection itself will do where there is one transaction at a time).

    ``current()`` must return the innermost transaction open now (a savepoint if one is
    open), or None when none is. ``outside`` says what happens to the sends of a block that
    ends while no transaction is open: "send" sends them at once, for a connection that is
    in autocommit mode then, so its work is already stored; "wait" keeps them for the next
    transaction, for a session that stores pending work only when it next commits.
    """

    def __init__(
        self,
        current: Callable[[], Hashable | None],
        *,
        outside: Literal["send", "wait"],
    ) -> None:
        if outside not in ("send", "wait"):
            raise ValueError(
                f"TransactionLedger(outside=...) must be 'send' or 'wait'; got {outside!r}"
            )
        self._current = current
        self._outside = outside
        # One lock for the sends of this ledger, wherever they are: in the batches still open
        # (_open, in opening order) or handed over by blocks that ended (_waiting). No user
        # code runs under it. _holder is the thread holding it, while it does (0: none): a
        # finalizer that the garbage collector runs inside a locked region, and that uses
        # this ledger, finds its own thread there and is refused (_refuse_reentry).
        self._lock = threading.Lock()
        self._holder = 0
        self._open: list[Batch] = []
        self._waiting: list[_Send] = []

    def batch(self) -> Batch:
        """Return a new batch whose sends wait on this ledger's transactions."""
        return Batch(self)

    def begin(self, transaction: Hashable) -> None:
        """``transaction`` began: the sends waiting for no transaction in particular wait on
        it from now on. Where the beginning cannot be seen, call it just before the
        transaction's ``commit`` or ``discard``."""
        self._relabel(None, transaction)

    def release(self, savepoint: Hashable, into: Hashable) -> None:
        """``savepoint`` was released into the enclosing transaction ``into``: its sends now
        wait on ``into``."""
        self._relabel(savepoint, into)

    def commit(self, transaction: Hashable) -> None:
        """``transaction`` committed: send what waits on it, in the order it was collected.

        Sends collected by blocks still open go too, since their work is committed. A
        receiver's exception propagates, and the sends after it are dropped.
        """
        _send_all(self._take(transaction))

    def discard(self, transaction: Hashable) -> None:
        """``transaction`` rolled back or ended without committing: drop what waits on it."""
        self._take(transaction)

    def _refuse_reentry(self, doing: str) -> None:
        """Raise when this thread holds the lock already: the caller is a finalizer the
        garbage collector ran inside a locked region, which would otherwise wait for itself
        for ever (see tocsin._ledger, whose signals' locks do the same)."""
        if self._holder == get_ident():
            raise RuntimeError(
                f"{self!r} cannot {doing} now: this call was made by a finalizer (a __del__ or "
                "weakref.finalize callback) that the garbage collector ran while this same "
                "thread was updating that ledger, so it would wait for itself for ever; "
                "nothing was done. Have the finalizer hand the work to code that runs later."
            )

    def _relabel(self, old: Hashable | None, new: Hashable) -> None:
        self._refuse_reentry("follow a transaction")
        with self._lock:
            self._holder = get_ident()
            try:
                for send in self._every_send():
                    if send.transaction is old:
                        send.transaction = new
            finally:
                self._holder = 0

    def _take(self, transaction: Hashable) -> list[_Send]:
        self._refuse_reentry("commit or discard a transaction")
        with self._lock:
            self._holder = get_ident()
            try:
                taken = [send for send in self._every_send() if send.transaction is transaction]
                if taken:
                    self._waiting = [s for s in self._waiting if s.transaction is not transaction]
                    for batch in self._open:
                        batch._sends = [s for s in batch._sends if s.transaction is not transaction]
            finally:
                self._holder = 0
        return _in_order(taken)

    def _every_send(self) -> list[_Send]:
        sends = list(self._waiting)
        for batch in self._open:
            sends.extend(batch._sends)
        return sends
