"""Connections remembered across a stretch of code, without changing their fate.

``tocsin.testing.isolated`` puts back the connections a block changed, and the pytest
plugin's leak check finds the receivers a test left connected. Both must remember
connections for a while, and two things make that delicate:

- remembering must not keep alive what the signal holds weakly: a test that expects a weak
  receiver (or a sender) to be collected would otherwise see it survive;
- a dead object's ``id()`` can be reused, so a remembered connection is compared with a live
  one only after its objects have been fetched back, while both are alive.

Connections are identified as a signal identifies them, with the same functions
(``tocsin._references``): a receiver by identity (a bound method by its instance and
function), a sender by identity, except str, bytes, int and bool, which match by type and
value.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterable
from types import MethodType
from typing import Any

from tocsin import Connection, Signal, _registry
from tocsin._references import held_by_value, receiver_identity, sender_key


def same_sender(expected: object, actual: object) -> bool:
    """Whether a send from ``actual`` is a send from ``expected``, as a signal decides it."""
    if expected is actual:
        return True
    return held_by_value(expected) and sender_key(expected) == sender_key(actual)


def identity(connection: Connection) -> tuple[Hashable, Hashable]:
    """The (receiver, sender) identity of a live connection, as the signal files it."""
    sender = connection.sender
    return (
        receiver_identity(connection.receiver),
        None if sender is None else sender_key(sender),
    )


def full_identity(connection: Connection) -> Hashable:
    """The identity of a live connection together with how it was made."""
    return (*identity(connection), connection.dispatch_uid, connection.weak)


def _hold(thing: Any, strongly: bool) -> Callable[[], Any]:
    """A callable returning ``thing`` while it lives, then None. Weak unless ``strongly``
    or ``thing`` cannot be weakly referenced."""
    if not strongly:
        try:
            if isinstance(thing, MethodType):
                return weakref.WeakMethod(thing)
            return weakref.ref(thing)
        except TypeError:
            pass
    return lambda: thing


class Remembered:
    """One connection, remembered. ``recall()`` gives it back while its receiver and sender
    live.

    With ``keep_alive``, a strong connection's receiver is held strongly, as the signal held
    it, so that it can be connected again after being disconnected. Everything else is held
    weakly where it can be.
    """

    __slots__ = ("_any_sender", "_receiver", "_sender", "dispatch_uid", "is_async", "weak")

    def __init__(self, connection: Connection, keep_alive: bool) -> None:
        self._receiver = _hold(connection.receiver, strongly=keep_alive and not connection.weak)
        self._any_sender = connection.sender is None
        self._sender = _hold(connection.sender, strongly=False)
        self.dispatch_uid = connection.dispatch_uid
        self.weak = connection.weak
        self.is_async = connection.is_async

    def recall(self) -> Connection | None:
        """The connection as it was made, or None if its receiver or sender has died."""
        receiver = self._receiver()
        sender = None if self._any_sender else self._sender()
        if receiver is None or (sender is None and not self._any_sender):
            return None
        return Connection(receiver, sender, self.dispatch_uid, self.weak, self.is_async)


Inventory = dict[Hashable, tuple["weakref.ref[Signal]", Remembered]]
"""Connections of many signals, keyed by (signal id, connection identity); see ``take``."""


def take() -> Inventory:
    """Remember, weakly, every connection of every live signal."""
    return remember(
        (signal, connection)
        for signal in _registry.live_signals()
        for connection in signal.connections()
    )


def remember(pairs: Iterable[tuple[Signal, Connection]]) -> Inventory:
    """An inventory of these (signal, connection) pairs, held weakly."""
    return {
        (id(signal), identity(connection)): (weakref.ref(signal), Remembered(connection, False))
        for signal, connection in pairs
    }


def added_since(*inventories: Inventory) -> list[tuple[Signal, Connection]]:
    """The connections of live signals that none of ``inventories`` holds, in signal
    creation order, then call order."""
    added = []
    for signal in _registry.live_signals():
        for connection in signal.connections():
            key = (id(signal), identity(connection))
            if not any(_holds(inventory, key, signal, connection) for inventory in inventories):
                added.append((signal, connection))
    return added


def _holds(inventory: Inventory, key: Hashable, signal: Signal, connection: Connection) -> bool:
    entry = inventory.get(key)
    if entry is None:
        return False
    signal_ref, remembered = entry
    # The key is made of ids, which outlive their objects: it counts only if the remembered
    # objects are alive and are the very ones connected now.
    recalled = remembered.recall()
    return (
        signal_ref() is signal
        and recalled is not None
        and identity(recalled) == identity(connection)
    )
