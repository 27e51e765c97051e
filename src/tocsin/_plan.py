"""What a send reads: an immutable picture of a signal's connections, and the plan's states.

A send never reads the connections themselves, which change under the signal's lock. It
reads the ledger's ``plan`` (one attribute load, no lock), which is one of:

=============== ======================================= =========================================
``plan``        when                                    what a send does
=============== ======================================= =========================================
``None``        nobody connected, not strict, not       returns ``[]`` at once
                muted, nobody observing
``STALE``       something changed since the last send   publishes a fresh plan under the lock
                                                        (counting as a send), then as below
a ``Plan`` with published, and it is *plain*: any-sender  the compiled fast loop over ``fast``
``fast`` set    receivers only, all sync, not muted,
                nobody observing
a ``Plan`` with published, with connections for          ``pick(sender)`` finds the route without
``fast`` None   particular senders, async receivers,     a lock when it can; otherwise the slow
                a mute or observers                      path: ``route(sender)``, then checks,
                                                        observers, mute, async receivers
=============== ======================================= =========================================

Strict mode is a flag of the plan, not a state: a compiled send checks each set of argument
names once, when it is compiled, and only a send whose names failed that check looks at it.

Routes for particular senders are built lazily, the first time their sender is sent, under
the lock (see ``Ledger.build_route``), and cached in a dict the plan shares with the ledger:
a change to one sender's connections drops that sender's route only, so a program that
connects a receiver for a new sender and sends, over and over, does work proportional to
what changed, not to the number of senders. Only senders some connection names get a route,
so the cache cannot grow with the number of senders seen.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from tocsin._references import ConnectionEntry, Getter, sender_key

if TYPE_CHECKING:
    from tocsin._ledger import Group, Ledger
    from tocsin._registry import Observer


class Route:
    """The receivers one send calls, as getters: the sync ones, then the async ones, each in
    connection order.

    ``guard`` is set when the route is filed under a sender's ``id()``: it returns that sender
    while it lives, so a new object that reuses the id is not taken for it. ``fast`` is
    ``sync`` when there is no async receiver (the compiled loop can then run it), else None.
    """

    __slots__ = ("asynchronous", "fast", "guard", "sync")

    def __init__(self, connections: Iterable[ConnectionEntry], guard: Callable[[], object] | None):
        connections = list(connections)
        self.sync: tuple[Getter, ...] = tuple(c.getter for c in connections if not c.is_async)
        self.asynchronous: tuple[Getter, ...] = tuple(c.getter for c in connections if c.is_async)
        self.guard = guard
        self.fast = None if self.asynchronous else self.sync


class Plan:
    """A published picture of a signal's connections, read by sends without a lock.

    Everything here is fixed once published, except ``routes``, the lazily filled cache of
    per-sender routes it shares with the ledger (filled and pruned under the ledger's lock;
    a reader only looks up). ``groups`` is the ledger's own dict of per-sender connection
    groups, in which a reader only looks a sender's group up and asks whether it holds that
    sender.
    """

    __slots__ = (
        "by_id",
        "everyone",
        "fast",
        "groups",
        "ledger",
        "muted",
        "observers",
        "plain",
        "routes",
        "strict",
    )

    def __init__(
        self,
        *,
        ledger: Ledger,
        everyone: Route,
        routes: dict[Hashable, Route],
        groups: dict[Hashable, Group],
        strict: bool,
        observers: tuple[Observer, ...],
        muted: bool,
    ) -> None:
        self.ledger = ledger
        self.everyone = everyone
        self.routes = routes
        self.groups = groups
        self.strict = strict
        self.observers = observers
        self.muted = muted
        # Plain: nothing to do but call receivers (no observers, no mute).
        self.plain = plain = not observers and not muted
        # The compiled loop runs this directly: any-sender sync receivers, nothing else to do.
        self.fast = everyone.fast if plain and not groups else None
        # The compiled loop's first look for a sender's own route, by id(sender) (a C call):
        # None for a sender that has none, or is matched by value, or when not plain.
        self.by_id = routes.get if plain else _NOTHING.get

    def pick(self, sender: object) -> tuple[Getter, ...] | None:
        """The getters the compiled loop can call for ``sender``, found without a lock; None
        when the send must take the slow path (a route to build, async receivers, observers,
        a mute, or a stale plan)."""
        if not self.plain:
            return None
        cls = type(sender)  # sender_key() (tocsin._references), inlined: it runs on many sends
        if cls is str:
            key: Hashable = sender
        elif cls is int or cls is bool or cls is bytes:
            key = (cls, sender)
        else:
            key = id(sender)
        route = self.routes.get(key)
        if route is None:
            group = self.groups.get(key)
            if group is None or not group.holds(sender):
                # Nobody named this sender: it hears the any-sender receivers only.
                return self.everyone.fast
            return None  # its route is not built yet
        if route.guard is not None and route.guard() is not sender:
            return None
        return route.fast

    def route(self, sender: object) -> Route:
        """The route for ``sender``, building it (under the ledger's lock) on first use."""
        key = sender_key(sender)
        route = self.routes.get(key)
        if route is not None and (route.guard is None or route.guard() is sender):
            return route
        group = self.groups.get(key)
        if group is None or not group.holds(sender):
            # Nobody named this sender (a dead sender's group may linger under a reused id).
            return self.everyone
        return self.ledger.build_route(self, key, sender)


_NOTHING: dict[object, Route] = {}


class _Stale:
    """Stands in for the plan after a change: it offers nothing, so a send takes the slow
    path, which publishes a fresh plan."""

    __slots__ = ()

    fast = None
    strict = False
    by_id = _NOTHING.get

    def pick(self, sender: object) -> None:
        return None

    def __repr__(self) -> str:
        return "STALE"


STALE: Any = _Stale()
