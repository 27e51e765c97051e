"""A signal's mutable state, and the only code that takes the signal's lock.

The ledger files connections (``add``, ``remove``), learns of receivers and senders that die
(weakref callbacks), and publishes the plans that sends read (see ``tocsin._plan``). It is
written around four rules, each of which once made a dispatcher hang or lie:

- **No user code while the lock is held.** Nothing filed under the lock is keyed by anything
  but ints, strs, bytes, tuples of those with types or a marker object, and tokens that
  compare by identity, all compared in C, so no ``__eq__`` or ``__hash__`` of a sender or uid
  runs; dispatch_uids are matched outside the lock and the
  match is confirmed under it (``_uid_token``). Whatever a change drops (a strong receiver, an
  old plan, a sender) goes into a ``trash`` list emptied after the lock is released, so no
  finalizer runs under it; warnings are issued after release too.
- **The lock is always released, and the state is always made consistent.** Every region is
  a ``with self.lock:`` block, whose release is a C call that even a ``RecursionError``
  cannot skip (its ``finally`` only clears ``holder``, a store that cannot fail either).
  Every change marks the ledger ``dirty`` before it starts and clean when it is done; a
  change cut short by an exception (a ``RecursionError`` can strike at any call near the
  recursion limit) leaves the mark, and the next holder of the lock rebuilds, before
  anything else, what is derived from the connections (``_repair``).
- **A weakref callback never waits.** The collector runs callbacks anywhere, possibly while
  this very thread holds the lock. A callback records the death in ``dead`` and takes the lock
  only if it is free; otherwise whoever holds it finishes the work when releasing it.
- **Nor does a finalizer that the collector runs inside a locked region.** Such a finalizer
  (of any garbage, not only ours) may call back into this very ledger, on the thread that
  holds the lock. Every region records its thread in ``holder``, and a call that finds its
  own thread there raises instead of waiting for itself (``_refuse_reentry``).

Connections for any sender live in ``anyone``; those for one sender in that sender's
``Group``. Both are dicts keyed by the receiver's identity (or uid token), so connect and
disconnect are O(1); each connection's ``seq`` gives the order of the calls, and whatever
needs that order sorts by it.
"""

from __future__ import annotations

import heapq
import sys
import threading
import warnings
import weakref
from _thread import get_ident
from collections.abc import Callable, Hashable, Iterable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from tocsin import _registry
from tocsin._plan import STALE, Plan, Route
from tocsin._references import (
    ConnectionEntry,
    SenderRef,
    UidToken,
    describe_label,
    held_by_value,
    hold_sender,
    next_seq,
    same_uid,
    sender_key,
    uid_hash,
)

if TYPE_CHECKING:
    from tocsin.dispatcher import Signal

_by_seq = attrgetter("seq")


class ReceiverCollectedWarning(UserWarning):
    """A weakly connected function was garbage-collected before the signal was ever sent.

    Nothing else held the function (typically a lambda or a function defined inside another
    function), so it vanished without running once. Keep a reference to it, or connect it
    with ``weak=False``.

    It is issued when the function is collected, from the code whose action collected it.
    When that cannot be done (the signal is busy in another thread at that instant, or warnings
    are turned into errors, which a garbage-collector callback cannot raise), it is issued by
    the signal's next ``connect``, ``disconnect``, send or inspection, before it does anything.
    """

    __module__ = "tocsin"


class Group:
    """The connections made for one particular sender, and how that sender is held.

    ``guarded`` is True when the sender is filed by ``id()``: ``holder()`` must then be the
    very sender looked up, since a dead sender's id may be reused (``holder`` is a weak
    reference, or for an object that cannot be weakly referenced, a strong one). For senders
    matched by value, any equal value of the same type is the sender.
    """

    __slots__ = ("guarded", "holder", "key", "members")

    def __init__(self, key: Hashable, holder: Callable[[], object], guarded: bool) -> None:
        self.key = key
        self.holder = holder
        self.guarded = guarded
        self.members: dict[Hashable, ConnectionEntry] = {}

    def holds(self, sender: object) -> bool:
        return not self.guarded or self.holder() is sender

    def alive(self) -> bool:
        return not self.guarded or self.holder() is not None


_NOBODY_ROUTE = Route((), None)
# What a send goes by when nothing is connected and nothing is to be checked: it has no
# groups, so it never asks a ledger to build a route.
_NOBODY_PLAN = Plan(
    ledger=None,  # type: ignore[arg-type]
    everyone=_NOBODY_ROUTE,
    routes={},
    groups={},
    strict=False,
    observers=(),
    muted=False,
)


class Ledger:
    """One signal's connections, flags and published plan; see the module docstring."""

    __slots__ = (
        "__weakref__",
        "anyone",
        "anyone_in_order",
        "dead",
        "declared",
        "dirty",
        "everyone",
        "groups",
        "holder",
        "key",
        "lock",
        "muted",
        "on_receiver_death",
        "plan",
        "rebuild",
        "routes",
        "sent_at",
        "signal",
        "strict_choice",
        "uid_version",
        "uids",
        "unsent",
    )

    def __init__(self, signal: Signal, *, declared: bool, strict_choice: bool | None) -> None:
        self.lock = threading.Lock()
        # The thread holding ``lock``, while it does (0: none): set first thing in every locked
        # region, cleared by its ``finally``. A call that finds its own thread here was made
        # by a finalizer the garbage collector ran inside that region, and is refused
        # (``_refuse_reentry``) rather than left waiting for ever on a lock its thread holds.
        self.holder = 0
        # What a send reads: None, STALE or a Plan (see tocsin._plan). Invariant: None only
        # when nothing is connected and no flag asks a send to do anything. A new signal
        # starts stale: the global strict setting or observers of every signal may apply.
        self.plan: Any = STALE
        # Connections for any sender, and groups of connections for one sender each.
        self.anyone: dict[Hashable, ConnectionEntry] = {}
        self.groups: dict[Hashable, Group] = {}
        # Published state: the any-sender route, its connections in order, and the cache of
        # per-sender routes (shared with the plans; see tocsin._plan). ``rebuild`` says the
        # any-sender connections changed since and all three must be rebuilt at publication.
        self.everyone = _NOBODY_ROUTE
        self.anyone_in_order: list[ConnectionEntry] = []
        self.routes: dict[Hashable, Route] = {}
        self.rebuild = False
        # The connection sequence number current when a send last published a plan: a
        # connection numbered after it has not been sent to yet (see ``_drain``).
        self.sent_at = 0
        # Set while a change is under way: still set afterwards, the change was cut short by an
        # exception, and the next holder of the lock repairs the bookkeeping (see _repair).
        self.dirty = False
        # Deaths reported by weakref callbacks, not yet acted on; labels of receivers that
        # died unsent, whose ReceiverCollectedWarning is not yet issued.
        self.dead: list[ConnectionEntry | SenderRef] = []
        self.unsent: list[object] = []
        # dispatch_uids: hash -> the tokens of the uids with that hash. ``uid_version`` moves
        # on every change, so a match made outside the lock can be confirmed under it.
        self.uids: dict[int, tuple[UidToken, ...]] = {}
        self.uid_version = 0
        # Flags: the signal's own strict choice (None: the global one), whether it declares
        # its arguments (strict mode checks only those that do), open muted() blocks.
        self.strict_choice = strict_choice
        self.declared = declared
        self.muted = 0
        self.signal = weakref.ref(signal)
        self.key = id(signal)
        # Bound once: a bound method per connection would cost an allocation each.
        self.on_receiver_death = self._on_death

    # -- flags ---------------------------------------------------------------------------------

    @property
    def strict(self) -> bool:
        """Whether sends check their arguments now."""
        chosen = _registry.strict_default if self.strict_choice is None else self.strict_choice
        return chosen and self.declared

    def replan(self) -> None:
        """Make the next send publish a new plan (a flag, or a setting in the registry, changed)."""
        self._refuse_reentry("change its settings")
        trash: list[object] = []
        with self.lock:
            self.holder = get_ident()
            try:
                self._drain(trash)
                self.plan = STALE
            finally:
                self.holder = 0
        trash.clear()
        self._settle()

    def set_strict_choice(self, choice: bool | None) -> None:
        self.strict_choice = choice
        self.replan()

    def change_muted(self, change: int) -> None:
        self._refuse_reentry("be muted or unmuted")
        with self.lock:
            self.holder = get_ident()
            try:
                self.plan = STALE
                self.muted += change
            finally:
                self.holder = 0
        self._settle()

    # -- connecting ----------------------------------------------------------------------------

    def add(
        self, connection: ConnectionEntry, ident: Hashable | None, sender: object, uid: Hashable
    ) -> bool:
        """File ``connection`` under ``ident`` (or under ``uid``'s token when ``uid`` is set)
        for ``sender`` (None: any sender). Returns False, filing nothing, when a live
        connection is already there under that key."""
        self._refuse_reentry("connect a receiver")
        holder = (
            None
            if sender is None
            else hold_sender(sender, sender_key(sender), self.on_receiver_death)
        )
        trash: list[object] = []
        try:
            while True:
                token, version, hashed = self._uid_token(uid) if uid else (None, 0, 0)
                with self.lock:
                    self.holder = get_ident()
                    try:
                        self._drain(trash)
                        if uid and self.uid_version != version:
                            continue  # uids changed while we compared: compare again
                        self.dirty = True
                        added = self._file(
                            connection, ident, sender, holder, token, uid, hashed, trash
                        )
                        self.dirty = False
                        return added
                    finally:
                        self.holder = 0
        finally:
            trash.clear()
            self._settle()

    def _file(
        self,
        connection: ConnectionEntry,
        ident: Hashable | None,
        sender: object,
        holder: Callable[[], object] | None,
        token: UidToken | None,
        uid: Hashable,
        hashed: int,
        trash: list[object],
    ) -> bool:
        """The change ``add`` makes (lock held, the ledger marked dirty)."""
        if uid:
            token = token or self._new_token(uid, hashed)
            ident = token
        group = self._group_for(sender, holder, trash)
        container = self.anyone if group is None else group.members
        existing = container.get(ident)
        if existing is not None and existing() is not None:
            return False
        self.plan = STALE
        if token is not None:
            token.users += 1  # before the dead leftover's release, so the token stays filed
        if existing is not None:
            # A dead connection whose callback never ran (or has not run yet): it must not
            # shadow a live receiver that took its identity.
            self._release_token(existing.ident)
            trash.append(existing)
        connection.ident = ident
        if group is None:
            self.rebuild = True
        else:
            connection.group = group
            trash.append(self.routes.pop(group.key, None))
        container[ident] = connection
        return True

    def remove(self, ident: Hashable | None, sender: object, uid: Hashable) -> bool:
        """Remove the connection filed under ``ident`` (or ``uid``) for ``sender``; False if
        there was none."""
        self._refuse_reentry("disconnect a receiver")
        trash: list[object] = []
        try:
            while True:
                token, version, _ = self._uid_token(uid) if uid else (None, 0, 0)
                if uid and token is None:
                    return False
                with self.lock:
                    self.holder = get_ident()
                    try:
                        self._drain(trash)
                        if uid:
                            if self.uid_version != version:
                                continue
                            ident = token
                        if sender is None:
                            container = self.anyone
                        else:
                            group = self.groups.get(sender_key(sender))
                            if group is None or not group.holds(sender):
                                return False  # none, or a dead sender's: an id reused by another
                            container = group.members
                        connection = container.get(ident)
                        if connection is None:
                            return False
                        self.plan = STALE
                        self.dirty = True
                        self._unfile(connection, trash)
                        self.dirty = False
                        # A dead receiver's leftover is not what the caller asked to remove.
                        return bool(uid) or connection() is not None
                    finally:
                        self.holder = 0
        finally:
            trash.clear()
            self._settle()

    def _group_for(
        self, sender: object, holder: Callable[[], object] | None, trash: list[object]
    ) -> Group | None:
        """The group to file a connection for ``sender`` in (None: any sender), made from
        ``holder`` for a new sender; a dead sender's leftover group is replaced (lock held)."""
        if sender is None:
            return None
        key = sender_key(sender)
        group = self.groups.get(key)
        if group is not None and not group.holds(sender):
            # Only a guarded group can fail to hold its sender, and only once that sender is
            # dead: its id now belongs to this new object.
            self.plan = STALE
            self._drop_group(group, trash)
            group = None
        if group is None:
            assert holder is not None
            group = self.groups[key] = Group(key, holder, not held_by_value(sender))
        return group

    def _unfile(self, connection: ConnectionEntry, trash: list[object]) -> None:
        """Take ``connection`` out of its container (lock held; the plan is already stale);
        it, and the route it leaves out of date, go to ``trash``."""
        trash.append(connection)
        group: Group | None = connection.group
        if group is None:
            if self.anyone.get(connection.ident) is connection:
                del self.anyone[connection.ident]
                self.rebuild = True
                # What was built from the any-sender connections goes now, not at the next
                # send: it must not keep a disconnected strong receiver alive until then.
                trash.append((self.everyone, self.anyone_in_order, self.routes))
                self.everyone = _NOBODY_ROUTE
                self.anyone_in_order = []
                self.routes = {}
        elif group.members.get(connection.ident) is connection:
            del group.members[connection.ident]
            trash.append(self.routes.pop(group.key, None))
            if not group.members and self.groups.get(group.key) is group:
                del self.groups[group.key]
        self._release_token(connection.ident)

    def _drop_group(self, group: Group, trash: list[object]) -> None:
        """Forget a group whose sender died (lock held; the plan is already stale).

        Its connections go to ``trash`` and leave the group: each refers to its group, so a
        group still holding them would be a cycle, freed only by the cyclic collector, at any
        moment, perhaps with a lock held (and a strong receiver's finalizer with it)."""
        if self.groups.get(group.key) is group:
            del self.groups[group.key]
        trash.append(self.routes.pop(group.key, None))
        for connection in group.members.values():
            self._release_token(connection.ident)
        trash.extend(group.members.values())
        group.members.clear()

    # -- dispatch_uid tokens -------------------------------------------------------------------

    def _uid_token(self, uid: Hashable) -> tuple[UidToken | None, int, int]:
        """The token of ``uid`` if it has one, the version it was looked up at, and the uid's
        hash.

        The uid's ``__hash__`` and ``__eq__`` run here, outside the lock; the caller confirms
        under the lock that the version has not moved (else looks again)."""
        hashed = uid_hash(uid)
        with self.lock:
            self.holder = get_ident()
            try:
                bucket = self.uids.get(hashed, ())
                version = self.uid_version
            finally:
                self.holder = 0
        self._settle()
        for token in bucket:
            if same_uid(token.uid, uid):
                return token, version, hashed
        return None, version, hashed

    def _new_token(self, uid: Hashable, hashed: int) -> UidToken:
        """A token for a uid that has none (lock held)."""
        token = UidToken(uid, hashed)
        self.uids[token.hashed] = (*self.uids.get(token.hashed, ()), token)
        self.uid_version += 1
        return token

    def _release_token(self, ident: Hashable) -> None:
        """One connection fewer under a uid token; at none, the token goes (lock held)."""
        if type(ident) is not UidToken:
            return
        ident.users -= 1
        if ident.users == 0:
            remaining = tuple(t for t in self.uids.get(ident.hashed, ()) if t is not ident)
            if remaining:
                self.uids[ident.hashed] = remaining
            else:
                self.uids.pop(ident.hashed, None)
            self.uid_version += 1

    def anyone_sync_count(self) -> int:
        """How many sync receivers are connected for any sender (dead ones not yet swept
        included): what a compiled send is sized for (see tocsin._sendcode)."""
        self._refuse_reentry("be sent")
        with self.lock:
            self.holder = get_ident()
            try:
                connections = list(self.anyone.values())
            finally:
                self.holder = 0
        return sum(not connection.is_async for connection in connections)

    # -- publishing ----------------------------------------------------------------------------

    def current(self) -> Plan:
        """The plan a send goes by: the published one, or a fresh one if it is stale (which
        counts as a send). Pending ReceiverCollectedWarnings are issued first."""
        plan = self.plan
        if type(plan) is Plan:
            return plan
        if plan is None and not self.unsent:
            return _NOBODY_PLAN  # nothing connected, nothing to check: no lock needed
        self._refuse_reentry("be sent")
        trash: list[object] = []
        with self.lock:
            self.holder = get_ident()
            try:
                self._drain(trash)
                plan = self.plan
                if type(plan) is not Plan:
                    plan = self._build(trash)
                    self.plan = plan
                    self.sent_at = next_seq()
            finally:
                self.holder = 0
        trash.clear()
        self._settle()
        if self.unsent:
            self.issue_warnings(stacklevel=5)
        return plan if plan is not None else _NOBODY_PLAN

    def _build(self, trash: list[object]) -> Plan | None:
        """A plan for the state as it is now (lock held)."""
        if self.rebuild:
            # Even when nothing is left to send to: the old route must not keep a strong
            # receiver alive after its disconnect.
            self.dirty = True
            self._sweep_anyone(trash)
            trash.append((self.everyone, self.routes, self.anyone_in_order))
            self.anyone_in_order = sorted(self.anyone.values(), key=_by_seq)
            self.everyone = Route(self.anyone_in_order, None)
            self.routes = {}
            self.rebuild = False
            self.dirty = False
        observers = _registry.observers_of_key(self.key)
        strict = self.strict
        if not (self.anyone or self.groups or self.muted or strict or observers):
            return None
        return Plan(
            ledger=self,
            everyone=self.everyone,
            routes=self.routes,
            groups=self.groups,
            strict=strict,
            observers=observers,
            muted=bool(self.muted),
        )

    def _sweep_anyone(self, trash: list[object]) -> None:
        """Drop any-sender connections whose receiver died unnoticed (a callback lost to a
        RecursionError, say), so they cost nothing from now on (lock held)."""
        for connection in [c for c in self.anyone.values() if c.weak and c() is None]:
            self._unfile(connection, trash)

    def build_route(self, plan: Plan, key: Hashable, sender: object) -> Route:
        """The route for ``sender``, filed under ``key``, as the connections are now: the
        any-sender connections and the sender's own, merged in connection order."""
        self._refuse_reentry("be sent")
        trash: list[object] = []
        with self.lock:
            self.holder = get_ident()
            try:
                self._drain(trash)
                group = self.groups.get(key)
                route: Route | None
                if group is not None and group.holds(sender):
                    dead = [c for c in group.members.values() if c.weak and c() is None]
                    if dead:  # receivers that died unnoticed (a callback lost to RecursionError)
                        self.plan = STALE
                        self.dirty = True
                        for connection in dead:
                            self._unfile(connection, trash)
                        self.dirty = False
                        group = self.groups.get(key)
                if group is None or not group.holds(sender):
                    if group is not None and not group.alive():
                        self.plan = STALE
                        self.dirty = True
                        self._drop_group(group, trash)  # its sender died unnoticed
                        self.dirty = False
                    route = plan.everyone
                else:
                    route = self.routes.get(key) if plan.routes is self.routes else None
                    if route is None or (route.guard is not None and route.guard() is not sender):
                        anyone = (
                            sorted(self.anyone.values(), key=_by_seq)
                            if self.rebuild
                            else self.anyone_in_order
                        )
                        members: Iterable[ConnectionEntry] = group.members.values()
                        if len(group.members) > 1:
                            members = sorted(members, key=_by_seq)
                        if anyone:
                            members = heapq.merge(anyone, members, key=_by_seq)
                        route = Route(members, group.holder if group.guarded else None)
                        if plan.routes is self.routes:
                            self.routes[key] = route
            finally:
                self.holder = 0
        trash.clear()
        self._settle()
        return route

    # -- what is connected now (not a send) ----------------------------------------------------

    def snapshot(self, sender: object = None, *, everyone: bool = False) -> list[ConnectionEntry]:
        """The live connections a send from ``sender`` would reach, in call order, or (with
        ``everyone``) every connection; does not count as a send."""
        self._refuse_reentry("list its connections")
        trash: list[object] = []
        with self.lock:
            self.holder = get_ident()
            try:
                self._drain(trash)
                connections = list(self.anyone.values())
                if everyone:
                    for group in self.groups.values():
                        connections += group.members.values()
                elif sender is not None:
                    named = self.groups.get(sender_key(sender))
                    if named is not None and named.holds(sender):
                        connections += named.members.values()
            finally:
                self.holder = 0
        trash.clear()
        self._settle()
        connections.sort(key=_by_seq)
        # sorted() is stable: sync ones, then async ones, each in connection order.
        connections.sort(key=attrgetter("is_async"))
        return connections

    def sender_of(self, connection: ConnectionEntry) -> tuple[bool, object]:
        """(alive, sender) of a connection's group; (True, None) for any sender."""
        group: Group | None = connection.group
        if group is None:
            return True, None
        sender = group.holder()
        return (sender is not None or not group.guarded), sender

    # -- deaths --------------------------------------------------------------------------------

    def _on_death(self, item: ConnectionEntry | SenderRef) -> None:
        """Weakref callback: a receiver or a sender died. Never waits for the lock."""
        self.dead.append(item)
        # If the lock is taken (perhaps by this very thread, the collector having run inside
        # a locked region), its holder finishes the work as it releases it.
        if self._settle() and self.unsent:
            self.issue_warnings(stacklevel=3, in_callback=True)

    def _drain(self, trash: list[object]) -> None:
        """Finish what is pending (lock held): a change that was cut short, then the deaths
        callbacks reported."""
        if self.dirty:
            self._repair(trash)
        while self.dead:
            item = self.dead.pop()
            self.dirty = True
            self._forget(item, trash)
            self.dirty = False

    def _forget(self, item: ConnectionEntry | SenderRef, trash: list[object]) -> None:
        """A receiver or a sender died: drop what was filed for it (lock held)."""
        if type(item) is SenderRef:
            group = self.groups.get(item.key)
            if group is not None and group.holder is item:
                self.plan = STALE
                self._drop_group(group, trash)
            return
        dead: ConnectionEntry = item  # type: ignore[assignment]
        owner: Group | None = dead.group
        container = self.anyone if owner is None else owner.members
        if container.get(dead.ident) is not dead:
            return  # already removed, or its key belongs to a newer connection
        self.plan = STALE
        self._unfile(dead, trash)
        if (
            dead.label is not None
            and dead.seq > self.sent_at
            and self.signal() is not None  # a dead signal's receivers concern nobody
            and not sys.is_finalizing()  # at exit, everything dies unsent
        ):
            self.unsent.append(dead.label)

    def _repair(self, trash: list[object]) -> None:
        """Make the bookkeeping whole after a change that was cut short (lock held).

        Every change marks the ledger dirty before it starts and clean when it is done, so an
        exception in the middle of one (a RecursionError at the recursion limit can strike
        at any call) leaves the mark. The connections themselves are always filed or not,
        whole; what may be out of step is what is derived from them, and that is rebuilt
        here: the routes, the plan, empty groups, and the count of each uid token's users.
        """
        self.plan = STALE
        self.rebuild = True
        trash.append(self.routes)
        self.routes = {}
        for key, group in list(self.groups.items()):
            if not group.members:
                del self.groups[key]
        users: dict[int, int] = {}
        for connection in self._all_connections():
            if type(connection.ident) is UidToken:
                users[id(connection.ident)] = users.get(id(connection.ident), 0) + 1
        for hashed, bucket in list(self.uids.items()):
            kept = tuple(token for token in bucket if users.get(id(token)))
            for token in kept:
                token.users = users[id(token)]
            if kept:
                self.uids[hashed] = kept
            else:
                del self.uids[hashed]
        self.uid_version += 1
        self.dirty = False

    def _refuse_reentry(self, doing: str) -> None:
        """Raise when this thread holds the lock already: the caller is a finalizer that the
        garbage collector ran inside a locked region (it runs them at any allocation, and
        every region allocates). Waiting would hang the thread for ever, and acting would
        work on a change half made; the error reaches ``sys.unraisablehook``, so it is seen.
        Called without the lock, before taking it."""
        if self.holder != get_ident():
            return
        signal = self.signal()
        name = getattr(signal, "name", None)
        which = f"signal {name!r}" if name else f"signal at {self.key:#x}"
        raise RuntimeError(
            f"The {which} cannot {doing} now: this call was made by a finalizer (a __del__ "
            "or weakref.finalize callback) that the garbage collector ran while this same "
            "thread was changing that signal, so it would wait for itself for ever; nothing "
            "was done. Have the finalizer hand the work to code that runs later (a queue "
            "that the program drains, or loop.call_soon_threadsafe)."
        )

    def _settle(self) -> bool:
        """Finish the deaths reported meanwhile, if the lock is free (called without it).
        Returns whether it took the lock (then nobody, this thread included, held it)."""
        took = False
        while self.dead and self.lock.acquire(blocking=False):
            took = True
            trash: list[object] = []
            self.holder = get_ident()
            try:
                self._drain(trash)
            finally:
                self.holder = 0
                self.lock.release()
            trash.clear()
        return took

    def issue_warnings(self, *, stacklevel: int, in_callback: bool = False) -> None:
        """Issue the ReceiverCollectedWarnings waiting in ``unsent``.

        In a weakref callback an exception cannot propagate, so a warning that raises there
        (warnings turned into errors) is put back, for the signal's next call to raise."""
        while self.unsent:
            try:
                label = self.unsent.pop(0)
            except IndexError:
                return  # another thread issued it meanwhile
            signal = self.signal()
            message = (
                f"{describe_label(label)} was garbage-collected before {signal!r} was sent, "
                "so it never ran: nothing else referenced it. Keep a reference to it, or "
                "connect it with weak=False."
            )
            try:
                warnings.warn(ReceiverCollectedWarning(message), stacklevel=stacklevel)
            except BaseException:
                if not in_callback:
                    raise
                self.unsent.insert(0, label)
                return

    # -- integrity -----------------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a child process: a new lock (another thread may have held this one when the
        process forked, perhaps half-way through a change) and everything derived from the
        connections rebuilt before the child's first send goes on."""
        self.lock = threading.Lock()
        self.holder = 0
        self.dirty = True
        self.plan = STALE

    def check(self) -> None:
        """Assert the bookkeeping is consistent (for tests): every connection filed under its
        own key in its own container, groups never empty, the published plan (if any) in step
        with the connections, and tokens counting their users. Like any call that takes the
        lock, it first finishes what is pending: deaths reported, and the repair of a change
        that was cut short (a change that forgot to mark itself dirty is caught here)."""
        self._refuse_reentry("be checked")
        trash: list[object] = []
        with self.lock:
            self.holder = get_ident()
            try:
                self._drain(trash)
                for ident, connection in self.anyone.items():
                    assert connection.ident is ident or connection.ident == ident
                    assert connection.group is None
                for key, group in self.groups.items():
                    assert group.key == key and group.members, f"empty or misfiled group {key!r}"
                    for ident, connection in group.members.items():
                        assert connection.ident is ident or connection.ident == ident
                        assert connection.group is group
                users: dict[int, int] = {}
                for connection in self._all_connections():
                    if type(connection.ident) is UidToken:
                        users[id(connection.ident)] = users.get(id(connection.ident), 0) + 1
                filed = {id(token) for bucket in self.uids.values() for token in bucket}
                for bucket in self.uids.values():
                    for token in bucket:
                        assert token.users == users.get(id(token), 0) > 0, "token miscounted"
                assert set(users) <= filed, "a connection's uid token is no longer filed"
                plan = self.plan
                if plan is None:
                    assert not (self.anyone or self.groups or self.muted or self.strict)
                elif type(plan) is Plan:
                    assert not self.rebuild
                    expected = Route(sorted(self.anyone.values(), key=_by_seq), None)
                    assert plan.everyone.sync == expected.sync
                    assert plan.everyone.asynchronous == expected.asynchronous
                    assert plan.strict == self.strict and plan.muted == bool(self.muted)
                    assert plan.groups is self.groups
                    for key, route in self.routes.items():
                        owner = self.groups.get(key)
                        assert owner is not None, f"a route for {key!r}, which has no group"
                        members = sorted(owner.members.values(), key=_by_seq)
                        merged = Route(
                            heapq.merge(self.anyone_in_order, members, key=_by_seq), None
                        )
                        assert route.sync == merged.sync
                        assert route.asynchronous == merged.asynchronous
            finally:
                self.holder = 0

    def _all_connections(self) -> Iterable[ConnectionEntry]:
        yield from self.anyone.values()
        for group in self.groups.values():
            yield from group.members.values()
