"""``Signal`` and ``receiver``: the core of tocsin, and its hot path.

A signal keeps its connections in one dict, keyed by (receiver identity or dispatch_uid,
sender key), so connect and disconnect are O(1) and deduplicate for free. Sending never reads
that dict: it reads a *plan*, an immutable picture of the connections grouped by sender, built
on the first send after a change and then shared by every thread without a lock. A change
only swaps the plan for ``_STALE``; the next send builds a fresh one.
"""

from __future__ import annotations

import difflib
import threading
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from types import CodeType, FunctionType, MethodType
from typing import Any, TypeVar

from tocsin import _asyncio, _registry
from tocsin._loops import compiled_loops, loops_for, refuse_reserved
from tocsin._modules import check_duplicate
from tocsin._references import (
    AnyConnection,
    Receiver,
    SenderRef,
    StrongConnection,
    WeakConnection,
    WeakMethodConnection,
    accepts_keywords,
    connection_key,
    describe,
    dispatch_uid_of,
    hold_sender,
    sender_key,
    sender_key_of,
)

R = TypeVar("R", bound=Callable[..., Any])


class ReceiverCollectedWarning(UserWarning):
    """A weakly connected function was garbage-collected before the signal was ever sent.

    Nothing else held the function (typically a lambda or a function defined inside another
    function), so it vanished without running once. Keep a reference to it, or connect it
    with ``weak=False``.
    """


@dataclass(frozen=True, slots=True)
class Argument:
    """One argument a signal declares it is sent with."""

    name: str
    doc: str = ""
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Connection:
    """A live connection, as reported by ``Signal.connections()``."""

    receiver: Callable[..., Any]
    sender: object  # None means "any sender"
    dispatch_uid: Hashable | None
    weak: bool
    is_async: bool


class _Route:
    """The receivers one send will call: sync ones, then async ones, both in connection order.

    ``guard`` is set when the route was filed under a sender's ``id()``: it returns that
    sender while it lives, so a new object that reuses the id is not mistaken for it.
    """

    __slots__ = ("asynchronous", "guard", "sync")

    def __init__(self, connections: Iterable[AnyConnection], guard: Callable[[], object] | None):
        connections = list(connections)
        self.sync = tuple(c.getter() for c in connections if not c.is_async)
        self.asynchronous = tuple(c.getter() for c in connections if c.is_async)
        self.guard = guard


class _Plan:
    """An immutable picture of a signal's connections, read by sends without any lock.

    Routes for particular senders are built the first time that sender is sent, and only for
    senders some connection names, so the cache cannot grow with the number of senders seen.
    Two threads may build the same route at once; both results are equal, either one wins.
    """

    __slots__ = ("connections", "everyone", "guards", "routes")

    def __init__(self, connections: tuple[AnyConnection, ...]) -> None:
        self.connections = connections
        self.everyone = _Route((c for c in connections if c.sender_ref is None), None)
        self.guards: dict[Hashable, Callable[[], object] | None] = {}
        for c in connections:
            if c.sender_ref is not None:
                guard = c.sender_ref if isinstance(c.sender_ref, SenderRef) else None
                self.guards.setdefault(sender_key_of(c.key), guard)
        self.routes: dict[Hashable, _Route] = {}

    def route(self, sender: object) -> _Route:
        if not self.guards:
            return self.everyone
        key = sender_key(sender)
        route = self.routes.get(key)
        if route is None:
            if key not in self.guards:
                return self.everyone
            named = (
                c for c in self.connections if c.sender_ref is None or sender_key_of(c.key) == key
            )
            route = self.routes[key] = _Route(named, self.guards[key])
        if route.guard is not None and route.guard() is not sender:
            return self.everyone
        return route

    def send(
        self, signal: Signal, sender: object, named: dict[str, Any]
    ) -> list[tuple[Receiver, Any]]:
        route = self.everyone if not self.guards else self.route(sender)
        if route.asynchronous:
            refuse_reserved(signal, named)
            return _asyncio.send_from_sync(
                signal, route.sync, route.asynchronous, sender, named, robust=False
            )
        names = tuple(named)
        loops = compiled_loops(names) or loops_for(names)
        return loops[0](route.sync, signal, sender, **named)

    def send_robust(
        self, signal: Signal, sender: object, named: dict[str, Any]
    ) -> list[tuple[Receiver, Any]]:
        route = self.everyone if not self.guards else self.route(sender)
        if route.asynchronous:
            refuse_reserved(signal, named)
            return _asyncio.send_from_sync(
                signal, route.sync, route.asynchronous, sender, named, robust=True
            )
        names = tuple(named)
        loops = compiled_loops(names) or loops_for(names)
        return loops[1](route.sync, signal, sender, **named)

    async def asend(
        self, signal: Signal, sender: object, named: dict[str, Any], robust: bool
    ) -> list[tuple[Receiver, Any]]:
        refuse_reserved(signal, named)
        route = self.everyone if not self.guards else self.route(sender)
        return await _asyncio.send_from_async(
            signal, route.sync, route.asynchronous, sender, named, robust
        )


class _CheckedPlan(_Plan):
    """A plan for a strict signal: every send checks its arguments before anyone is called."""

    __slots__ = ()

    def send(
        self, signal: Signal, sender: object, named: dict[str, Any]
    ) -> list[tuple[Receiver, Any]]:
        signal.check_arguments(named, "send")
        return super().send(signal, sender, named)

    def send_robust(
        self, signal: Signal, sender: object, named: dict[str, Any]
    ) -> list[tuple[Receiver, Any]]:
        signal.check_arguments(named, "send_robust")
        return super().send_robust(signal, sender, named)

    async def asend(
        self, signal: Signal, sender: object, named: dict[str, Any], robust: bool
    ) -> list[tuple[Receiver, Any]]:
        signal.check_arguments(named, "asend_robust" if robust else "asend")
        return await super().asend(signal, sender, named, robust)


class _ObservedPlan(_CheckedPlan):
    """A plan for a signal that is watched or muted: checks (when strict), tells the
    observers, then calls the receivers unless muted."""

    __slots__ = ("muted", "observers", "strict")

    def __init__(
        self,
        connections: tuple[AnyConnection, ...],
        strict: bool,
        observers: tuple[_registry.Observer, ...],
        muted: bool,
    ) -> None:
        super().__init__(connections)
        self.strict = strict
        self.observers = observers
        self.muted = muted

    def _observe(self, signal: Signal, sender: object, named: dict[str, Any], method: str) -> bool:
        """Check and tell the observers; return whether the receivers should run."""
        if self.strict:
            signal.check_arguments(named, method)
        refuse_reserved(signal, named)
        for observer in self.observers:
            observer(signal, sender, named, method)
        return not self.muted

    def send(
        self, signal: Signal, sender: object, named: dict[str, Any]
    ) -> list[tuple[Receiver, Any]]:
        if not self._observe(signal, sender, named, "send"):
            return []
        return _Plan.send(self, signal, sender, named)

    def send_robust(
        self, signal: Signal, sender: object, named: dict[str, Any]
    ) -> list[tuple[Receiver, Any]]:
        if not self._observe(signal, sender, named, "send_robust"):
            return []
        return _Plan.send_robust(self, signal, sender, named)

    async def asend(
        self, signal: Signal, sender: object, named: dict[str, Any], robust: bool
    ) -> list[tuple[Receiver, Any]]:
        if not self._observe(signal, sender, named, "asend_robust" if robust else "asend"):
            return []
        return await _Plan.asend(self, signal, sender, named, robust)


class _StalePlan:
    """Stands in for the plan after a change: the first send builds and publishes a new one."""

    def send(
        self, signal: Signal, sender: object, named: dict[str, Any]
    ) -> list[tuple[Receiver, Any]]:
        return signal._publish().send(signal, sender, named)

    def send_robust(
        self, signal: Signal, sender: object, named: dict[str, Any]
    ) -> list[tuple[Receiver, Any]]:
        return signal._publish().send_robust(signal, sender, named)

    async def asend(
        self, signal: Signal, sender: object, named: dict[str, Any], robust: bool
    ) -> list[tuple[Receiver, Any]]:
        return await signal._publish().asend(signal, sender, named, robust)


_STALE = _StalePlan()
_NOBODY = _Plan(())


def _check_declared(
    signal: Signal, specs: tuple[Argument, ...], named: Mapping[str, Any], method: str
) -> None:
    declared = {spec.name for spec in specs}
    for name in named:
        if name not in declared:
            hint = difflib.get_close_matches(name, declared, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise TypeError(
                f"{signal!r}.{method}() got an unexpected argument {name!r}{did_you_mean}; "
                f"it declares: {', '.join(_declared(specs)) or 'no arguments'}"
            )
    for spec in specs:
        if not spec.optional and spec.name not in named:
            raise TypeError(
                f"{signal!r}.{method}() is missing the required argument {spec.name!r}; "
                f"it declares: {', '.join(_declared(specs))}"
            )


def _declared(specs: tuple[Argument, ...]) -> list[str]:
    return [f"{spec.name} (optional)" if spec.optional else spec.name for spec in specs]


def _normalise_arguments(arguments: object, signal_name: str | None) -> tuple[Argument, ...] | None:
    if arguments is None:
        return None
    if isinstance(arguments, Mapping):
        items: list[object] = [Argument(name, doc) for name, doc in arguments.items()]
    elif isinstance(arguments, Iterable) and not isinstance(arguments, str | bytes):
        items = list(arguments)
    else:
        raise TypeError(
            f"arguments= of Signal {signal_name!r} must be a list of names or Argument objects, "
            f"or a mapping of name to description; got {arguments!r}"
        )
    specs: list[Argument] = []
    for item in items:
        spec = Argument(item) if isinstance(item, str) else item
        if not isinstance(spec, Argument) or not spec.name.isidentifier():
            raise TypeError(f"Signal {signal_name!r} declares an invalid argument: {item!r}")
        if spec.name in ("signal", "sender"):
            raise ValueError(
                f"Signal {signal_name!r} declares {spec.name!r}, which every receiver already "
                "gets; declare only the other arguments"
            )
        if any(s.name == spec.name for s in specs):
            raise ValueError(f"Signal {signal_name!r} declares the argument {spec.name!r} twice")
        specs.append(spec)
    return tuple(specs)


class Signal:
    """A signal: receivers connect to it, senders send it, every receiver hears the send.

    ``Signal()`` takes what ``django.dispatch.Signal`` takes. tocsin adds ``name`` (shown in
    ``repr()`` and every error), ``doc`` (the signal's docstring), ``arguments`` (the names it
    is sent with, which ``strict`` mode checks) and accepts Django < 4.0's ``providing_args``.
    """

    def __init__(
        self,
        use_caching: bool = False,
        *,
        name: str | None = None,
        doc: str | None = None,
        arguments: Iterable[str | Argument] | Mapping[str, str] | None = None,
        strict: bool | None = None,
        providing_args: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(use_caching, bool) and isinstance(use_caching, Sequence | set):
            # Django < 3.1 took providing_args as the first positional argument.
            providing_args, use_caching = use_caching, False
        if providing_args is not None:
            if arguments is not None:
                raise TypeError(f"Signal {name!r}: pass arguments= or providing_args=, not both")
            arguments = providing_args
        self.name = name
        self.doc = doc
        if doc is not None:
            self.__doc__ = doc
        # Accepted for Django compatibility: routes are always cached, for every sender.
        self.use_caching = use_caching
        self._specs = _normalise_arguments(arguments, name)
        self._strict = strict
        self._lock = threading.Lock()
        self._connections: dict[Hashable, AnyConnection] = {}
        # Counts the plans published by a send. A connection remembers the count it was made
        # at: if the count has not moved when its receiver dies, no send ever reached it.
        self._sends = 0
        self._dead: list[AnyConnection | SenderRef] = []  # left by weakref callbacks, see _release
        self._view: _Plan | None = None  # built for readers while the plan is stale
        self._plan: _Plan | _StalePlan | None = None
        # Bound once: a weakref callback per connection would cost a bound method each.
        self._receiver_collected = self._on_receiver_collected
        self._sender_collected = self._on_sender_collected
        self._muted = 0  # how many muted() blocks are open; see muted()
        _registry.enrol(self, Signal._replan)
        self._replan()

    def __repr__(self) -> str:
        if self.name:
            return f"<Signal {self.name!r}>"
        return f"<Signal at {id(self):#x}>"

    # -- declared arguments -----------------------------------------------------------------

    @property
    def arguments(self) -> tuple[str, ...]:
        """The names this signal is sent with, in documented order (empty when undeclared)."""
        return tuple(spec.name for spec in self._specs or ())

    @property
    def argument_specs(self) -> tuple[Argument, ...] | None:
        """The declared arguments with their descriptions, or None when undeclared."""
        return self._specs

    @property
    def strict(self) -> bool:
        """Whether sends check their arguments now: the signal's own choice, else the global one."""
        chosen = _registry.strict_default if self._strict is None else self._strict
        return chosen and self._specs is not None

    @strict.setter
    def strict(self, value: bool | None) -> None:
        self._strict = value
        self._replan()

    @property
    def strict_choice(self) -> bool | None:
        """The signal's own strict setting: True or False, or None when it follows
        ``set_strict()``. Assigning it back to ``strict`` restores exactly this choice."""
        return self._strict

    def check_arguments(self, named: Mapping[str, Any], method: str = "send") -> None:
        """Raise TypeError if ``named`` does not fit the declared arguments.

        An unknown name (with a "did you mean" hint for a near miss) or a missing required
        one is an error; the message names this signal, ``method`` and the argument. Strict
        mode calls this before every send. A subclass may add rules of its own (see
        ``tocsin.catalogue.request_started``). Does nothing when no arguments are declared.
        """
        if self._specs is not None:
            _check_declared(self, self._specs, named, method)

    # -- connecting -------------------------------------------------------------------------

    def connect(
        self,
        receiver: R,
        sender: object = None,
        weak: bool = True,
        dispatch_uid: Hashable | None = None,
    ) -> R:
        """Connect ``receiver`` to this signal, for ``sender`` only or (None) for any sender.

        The receiver is called as ``receiver(signal=..., sender=..., **named)``. A second
        connect of the same (receiver or dispatch_uid, sender) pair does nothing. Returns the
        receiver, so ``@signal.connect`` works as a decorator.
        """
        # Duplicate-import check (tocsin._modules): outside the lock, as warnings run any code.
        if not dispatch_uid:  # a dispatch_uid names the connection: no copy can add another
            check_duplicate(receiver, self)
        connection = self._new_connection(receiver, weak, dispatch_uid)
        key = connection_key(receiver, sender, dispatch_uid)
        connection.key = key
        connection.sender_ref = hold_sender(sender, key, self._sender_collected)
        self._acquire()
        try:
            if key not in self._connections:
                self._connections[key] = connection
                self._invalidate()
        finally:
            self._release()
        return receiver

    def disconnect(
        self,
        receiver: Receiver | None = None,
        sender: object = None,
        dispatch_uid: Hashable | None = None,
    ) -> bool:
        """Remove the connection of (``receiver`` or ``dispatch_uid``, ``sender``).

        Returns True if a connection was removed, False if there was none.
        """
        if receiver is None and not dispatch_uid:
            raise TypeError(f"{self!r}.disconnect() needs a receiver or a dispatch_uid")
        key = connection_key(receiver, sender, dispatch_uid)  # type: ignore[arg-type]
        self._acquire()
        try:
            removed = self._connections.pop(key, None)
            if removed is not None:
                self._invalidate()
        finally:
            self._release()
        return removed is not None

    def _new_connection(
        self, receiver: Receiver, weak: bool, dispatch_uid: Hashable | None
    ) -> AnyConnection:
        """Validate a receiver and wrap it; raises before the signal is touched."""
        if not callable(receiver):
            raise TypeError(
                f"Signal receivers must be callable. {self!r}.connect() got {receiver!r} "
                f"({type(receiver).__name__})."
            )
        if not accepts_keywords(receiver):
            raise ValueError(
                f"Signal receivers must accept keyword arguments (**kwargs). "
                f"{describe(receiver)} connected to {self!r} does not."
            )
        if dispatch_uid:
            try:
                hash(dispatch_uid)
            except TypeError:
                raise TypeError(
                    f"dispatch_uid for {self!r} must be hashable; got {dispatch_uid!r} "
                    f"({type(dispatch_uid).__name__})"
                ) from None
        is_async = _asyncio.is_async_callable(receiver)
        connection: AnyConnection
        if not weak:
            connection = StrongConnection(receiver)
        else:
            try:
                connection = (
                    WeakMethodConnection(receiver, self._receiver_collected)
                    if isinstance(receiver, MethodType)
                    else WeakConnection(receiver, self._receiver_collected)
                )
            except TypeError:
                raise TypeError(
                    f"{describe(receiver)} cannot be weakly referenced, so it cannot be connected "
                    f"to {self!r} with weak=True; pass weak=False to keep it alive"
                ) from None
            # Only plain functions and partials are watched: a callable object or a bound
            # method dying with its owner is the ordinary way for a receiver to go.
            watched = isinstance(receiver, FunctionType | partial)
            connection.epoch = self._sends if watched else None
            if watched:
                connection.label = _label(receiver)
        connection.is_async = is_async
        return connection

    # -- sending ----------------------------------------------------------------------------

    def send(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver for ``sender`` with ``named``; return (receiver, response) pairs.

        The first exception raised by a sync receiver propagates and stops the send. Async
        receivers run after the sync ones, concurrently (see docs/async.md): one failing
        raises its exception, several raise an ``ExceptionGroup``.
        """
        plan = self._plan
        if plan is None:  # nobody connected and nothing to check: the common case
            return []
        return plan.send(self, sender, named)

    def send_robust(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
        """Like ``send``, but an ``Exception`` from a receiver becomes its response.

        Each failure is logged at ERROR on the ``"tocsin"`` logger; the other receivers still
        run. ``KeyboardInterrupt`` and ``SystemExit`` are not caught.
        """
        plan = self._plan
        if plan is None:
            return []
        return plan.send_robust(self, sender, named)

    async def asend(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
        """Send from async code; return (receiver, response) pairs like ``send``.

        The sync receivers run first, in connection order, together in one worker thread (see
        ``set_sync_to_async``); then the async receivers run concurrently in a ``TaskGroup``.
        The pairs list the sync receivers, then the async ones, each in connection order.
        The first exception of a sync receiver propagates and nothing after it runs. One
        failing async receiver raises its own exception, several an ``ExceptionGroup``; the
        other async receivers are cancelled.
        """
        plan = self._plan
        if plan is None:
            return []
        return await plan.asend(self, sender, named, False)

    async def asend_robust(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
        """Like ``asend``, but an ``Exception`` from a receiver becomes its response.

        Each failure is logged as ``send_robust`` logs it; every receiver runs.
        """
        plan = self._plan
        if plan is None:
            return []
        return await plan.asend(self, sender, named, True)

    # -- for tests ----------------------------------------------------------------------------

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Within the block this signal calls nobody: every send method returns ``[]``.

        It holds in every thread, and blocks nest. Receivers stay connected throughout (so
        nothing connected or disconnected inside the block is lost or reordered); sends are
        still checked in strict mode and still reach observers such as
        ``tocsin.testing.capture``.
        """
        self._set_muted(+1)
        try:
            yield
        finally:
            self._set_muted(-1)

    def _set_muted(self, change: int) -> None:
        self._acquire()
        try:
            self._muted += change
            self._invalidate()
        finally:
            self._release()

    @contextmanager
    def connected_to(self, receiver: R, sender: object = None) -> Iterator[R]:
        """Connect ``receiver`` strongly for the block, and always disconnect it on exit.

        The block gets the receiver (``with signal.connected_to(handler) as handler:``). It is
        disconnected however the block ends, ``KeyboardInterrupt`` included.
        """
        self.connect(receiver, sender=sender, weak=False)
        try:
            yield receiver
        finally:
            self.disconnect(receiver, sender=sender)

    # -- introspection ----------------------------------------------------------------------

    def has_listeners(self, sender: object = None) -> bool:
        """Whether ``send(sender)`` would call at least one receiver now."""
        route = self._current().route(sender)
        return any(get() is not None for get in route.sync + route.asynchronous)

    def receivers_for(self, sender: object = None) -> list[Receiver]:
        """The receivers ``send(sender)`` would call now, in the order it would call them."""
        route = self._current().route(sender)
        return [
            receiver for get in route.sync + route.asynchronous if (receiver := get()) is not None
        ]

    def connections(self) -> list[Connection]:
        """Every live connection, in call order: sync receivers, then async ones, each kind
        in the order it was connected (the order ``send`` uses)."""
        live = []
        connections = self._current().connections
        for c in sorted(connections, key=lambda c: c.is_async):  # sorted() is stable
            receiver = c()
            sender = None if c.sender_ref is None else c.sender_ref()
            if receiver is None or (c.sender_ref is not None and sender is None):
                continue
            uid = dispatch_uid_of(c.key)
            live.append(Connection(receiver, sender, uid, c.weak, c.is_async))
        return live

    # -- plan and lock management -----------------------------------------------------------

    def _invalidate(self) -> None:
        """Called with the lock held after any change of ``_connections``."""
        self._view = None
        # With nobody left and nothing to check, go straight back to the fast path.
        special = self.strict or self._muted or _registry.observers_of(self)
        self._plan = _STALE if self._connections or special else None

    def _build(self) -> _Plan | None:
        connections = tuple(self._connections.values())
        observers = _registry.observers_of(self)
        if observers or self._muted:
            return _ObservedPlan(connections, self.strict, observers, bool(self._muted))
        if self.strict:
            return _CheckedPlan(connections)
        return _Plan(connections) if connections else None

    def _publish(self) -> _Plan:
        """Build the plan for a send, and disarm the receivers it is the first send for."""
        self._acquire()
        try:
            plan = self._view if self._view is not None else self._build()
            self._plan = plan
            self._view = None
            self._sends += 1
        finally:
            self._release()
        return _NOBODY if plan is None else plan

    def _current(self) -> _Plan:
        """The plan as it is now, for readers that must not count as a send."""
        plan = self._plan
        if plan is None:
            return _NOBODY
        if isinstance(plan, _Plan):
            return plan
        self._acquire()
        try:
            if self._view is None:
                self._view = self._build()
            return self._view or _NOBODY
        finally:
            self._release()

    def _replan(self) -> None:
        self._acquire()
        try:
            self._invalidate()
        finally:
            self._release()

    def _acquire(self) -> None:
        self._lock.acquire()
        self._drain()

    def _release(self) -> None:
        # A weakref callback may fire while we hold the lock (gc runs anywhere, in any thread)
        # and must never wait for it: it leaves its work in _dead, which we finish here.
        while True:
            self._drain()
            self._lock.release()
            if not self._dead or not self._lock.acquire(blocking=False):
                return

    def _drain(self) -> None:
        while self._dead:
            item = self._dead.pop()
            current = self._connections.get(item.key)
            # The key may belong to a newer connection by now (same uid, same id reused).
            if current is not None and (current is item or current.sender_ref is item):
                del self._connections[item.key]
                self._invalidate()

    def _on_receiver_collected(self, connection: WeakConnection) -> None:
        # Forget first: the warning may be turned into an exception (-W error).
        self._forget(connection)
        if connection.epoch == self._sends:
            warnings.warn(
                ReceiverCollectedWarning(self._collected_message(connection)), stacklevel=2
            )

    def _on_sender_collected(self, ref: SenderRef) -> None:
        self._forget(ref)

    def _forget(self, item: AnyConnection | SenderRef) -> None:
        self._dead.append(item)
        if self._lock.acquire(blocking=False):
            self._release()

    def _collected_message(self, connection: WeakConnection) -> str:
        label = connection.label
        if isinstance(label, CodeType):
            label = f"{label.co_qualname} ({label.co_filename}:{label.co_firstlineno})"
        return (
            f"{label} was garbage-collected before {self!r} was sent, so it never ran: nothing "
            "else referenced it. Keep a reference to it, or connect it with weak=False."
        )


def _label(receiver: Receiver) -> object:
    # A function's code object names it and its source line without allocating a string.
    if isinstance(receiver, FunctionType):
        return receiver.__code__
    return describe(receiver)


def receiver(
    signal: Signal | list[Signal] | tuple[Signal, ...], **connect_kwargs: Any
) -> Callable[[R], R]:
    """Decorator connecting a function to one signal or to each of a list of signals.

    ``connect_kwargs`` are those of ``Signal.connect`` (``sender``, ``weak``,
    ``dispatch_uid``). The function is returned unchanged.
    """
    signals = list(signal) if isinstance(signal, list | tuple) else [signal]
    for s in signals:
        if not isinstance(s, Signal):
            raise TypeError(f"receiver() takes a Signal or a list or tuple of Signals; got {s!r}")

    def decorator(func: R) -> R:
        for s in signals:
            s.connect(func, **connect_kwargs)
        return func

    return decorator
