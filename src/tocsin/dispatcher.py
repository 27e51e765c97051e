"""``Signal`` and ``receiver``: the public face of tocsin's core.

This module checks what users hand in and says clearly what is wrong, then delegates: a
signal's state and lock live in its ledger (``tocsin._ledger``), what a send reads in its
plan (``tocsin._plan``), the send functions themselves in ``tocsin._sendcode``, declared
arguments in ``tocsin.arguments``, settings that reach across signals (strict mode, observers)
in ``tocsin._registry``, and async dispatch in ``tocsin._asyncio``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import call
from typing import TYPE_CHECKING, Any, TypeVar

from tocsin import _asyncio, _registry, _sendcode
from tocsin._ledger import Ledger
from tocsin._modules import check_duplicate
from tocsin._plan import Plan
from tocsin._references import (
    Receiver,
    accepts_keywords,
    describe_receiver,
    make_connection,
    receiver_identity,
    safe_repr,
    uid_hash,
)
from tocsin.arguments import Argument, check_declared, declare

R = TypeVar("R", bound=Callable[..., Any])

# What receiver() passes on to connect(), checked when the decorator is made.
_CONNECT_KEYWORDS = frozenset({"sender", "weak", "dispatch_uid"})


@dataclass(frozen=True, slots=True)
class Connection:
    """A live connection, as reported by ``Signal.connections()``."""

    receiver: Callable[..., Any]
    sender: object  # None means "any sender"
    dispatch_uid: Hashable | None
    weak: bool
    is_async: bool


class Signal:
    """A signal: receivers connect to it, senders send it, every receiver hears the send.

    ``Signal()`` takes what ``django.dispatch.Signal`` takes. tocsin adds ``name`` (shown in
    ``repr()`` and every error), ``doc`` (the signal's docstring), ``arguments`` (the names it
    is sent with, which ``strict`` mode checks) and accepts Django < 4.0's ``providing_args``.
    """

    # The send methods are generated (see tocsin._sendcode); on a signal's first send, the
    # signal gets its own, compiled for the names it was sent with. Type checkers see their
    # signatures here.
    if TYPE_CHECKING:

        def send(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
            """Call every receiver for ``sender`` with ``named``; see ``tocsin._sendcode``."""
            ...

        def send_robust(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
            """Like ``send``, but an ``Exception`` from a receiver becomes its response."""
            ...

    else:
        send = _sendcode.send
        send_robust = _sendcode.send_robust

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
        if isinstance(use_caching, str):
            raise TypeError(
                f"Signal() got {use_caching!r} as its first argument, which is use_caching as "
                f"in Django; to name a signal, pass name=: Signal(name={use_caching!r})"
            )
        if not isinstance(use_caching, bool) and isinstance(use_caching, Sequence | set):
            # Django < 3.1 took providing_args as the first positional argument.
            providing_args, use_caching = use_caching, False
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Signal(name=...) must be a str or None; got {safe_repr(name)}")
        if doc is not None and not isinstance(doc, str):
            raise TypeError(f"Signal {name!r}: doc= must be a str or None; got {safe_repr(doc)}")
        if providing_args is not None and (
            isinstance(providing_args, str | bytes) or not isinstance(providing_args, Iterable)
        ):
            raise TypeError(
                f"Signal {name!r}: providing_args= must be a list of argument names; got "
                f"{safe_repr(providing_args)}"
            )
        if providing_args is not None:
            if arguments is not None:
                raise TypeError(f"Signal {name!r}: pass arguments= or providing_args=, not both")
            arguments = providing_args
        if strict is not None and not isinstance(strict, bool):
            raise TypeError(
                f"Signal {name!r}: strict= must be True, False or None (follow set_strict()); "
                f"got {safe_repr(strict)}"
            )
        self.name = name
        self.doc = doc
        if doc is not None:
            self.__doc__ = doc
        # Accepted for Django compatibility: routes are always cached, for every sender.
        self.use_caching = use_caching
        self._specs = declare(arguments, name)
        self._ledger = Ledger(self, declared=self._specs is not None, strict_choice=strict)
        _registry.enrol(self, self._ledger)

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
        """Whether sends check their arguments now: the signal's own choice, else the global one
        (``set_strict``); always False for a signal that declares no arguments."""
        return self._ledger.strict

    @strict.setter
    def strict(self, value: bool | None) -> None:
        if value is not None and not isinstance(value, bool):
            raise TypeError(
                f"{self!r}.strict must be True, False or None (follow set_strict()); "
                f"got {safe_repr(value)}"
            )
        self._ledger.set_strict_choice(value)

    @property
    def strict_choice(self) -> bool | None:
        """The signal's own strict setting: True or False, or None when it follows
        ``set_strict()``. Assigning it back to ``strict`` restores exactly this choice."""
        return self._ledger.strict_choice

    def check_arguments(self, named: Mapping[str, Any], method: str = "send") -> None:
        """Raise TypeError if ``named`` does not fit the declared arguments.

        An unknown name (with a "did you mean" hint for a near miss) or a missing required
        one is an error; the message names this signal, ``method`` and the argument. Does
        nothing when no arguments are declared.

        A signal's first send calls this once for the names it was sent with, strict or not,
        to learn whether they pass (its own send is compiled accordingly; an exception then
        only means they do not). In strict mode, later sends with exactly those names are not
        checked again, and a send with other names is checked every time. So a subclass that
        adds rules of its own (see ``tocsin.catalogue.request_started``) must judge the
        names, not the values.
        """
        if not isinstance(named, Mapping):
            raise TypeError(
                f"{self!r}.check_arguments() takes the arguments as a mapping of name to "
                f"value, as a send gets them; got {safe_repr(named)}"
            )
        if self._specs is not None:
            check_declared(self, self._specs, named, method)

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
        self._connect(receiver, sender, weak, dispatch_uid)
        return receiver

    def _connect(
        self, receiver: Receiver, sender: object, weak: bool, dispatch_uid: Hashable | None
    ) -> bool:
        """``connect``, telling whether it made a connection (False: it was there already)."""
        ledger = self._ledger
        if ledger.unsent:
            ledger.issue_warnings(stacklevel=4)
        if not dispatch_uid:  # a dispatch_uid names the connection: no copy can add another
            check_duplicate(receiver, self)  # a module imported twice (see tocsin._modules)
        if not callable(receiver):
            raise TypeError(
                f"Signal receivers must be callable. {self!r}.connect() got "
                f"{safe_repr(receiver)} ({type(receiver).__name__})."
            )
        if not accepts_keywords(receiver):
            raise ValueError(
                f"Signal receivers must accept keyword arguments (**kwargs). "
                f"{describe_receiver(receiver)} connected to {self!r} does not."
            )
        if dispatch_uid:
            self._check_uid(dispatch_uid, "connect")
        try:
            connection = make_connection(
                receiver,
                weak=weak,
                is_async=_asyncio.is_async_callable(receiver),
                per_sender=sender is not None,
                on_death=ledger.on_receiver_death,
            )
        except TypeError:
            raise TypeError(
                f"{describe_receiver(receiver)} cannot be weakly referenced, so it cannot be "
                f"connected to {self!r} with weak=True; pass weak=False to keep it alive"
            ) from None
        ident = None if dispatch_uid else receiver_identity(receiver)
        return ledger.add(connection, ident, sender, dispatch_uid or None)

    def disconnect(
        self,
        receiver: Receiver | None = None,
        sender: object = None,
        dispatch_uid: Hashable | None = None,
    ) -> bool:
        """Remove the connection of (``receiver`` or ``dispatch_uid``, ``sender``).

        Returns True if a connection was removed, False if there was none.
        """
        ledger = self._ledger
        if ledger.unsent:
            ledger.issue_warnings(stacklevel=3)
        if receiver is None and not dispatch_uid:
            raise TypeError(f"{self!r}.disconnect() needs a receiver or a dispatch_uid")
        if dispatch_uid:
            self._check_uid(dispatch_uid, "disconnect")
        ident = None if dispatch_uid else receiver_identity(receiver)  # type: ignore[arg-type]
        return ledger.remove(ident, sender, dispatch_uid or None)

    def _check_uid(self, dispatch_uid: Hashable, method: str) -> None:
        try:
            uid_hash(dispatch_uid)
        except TypeError:
            raise TypeError(
                f"dispatch_uid for {self!r}.{method}() must be hashable; got "
                f"{safe_repr(dispatch_uid)} ({type(dispatch_uid).__name__}). Use a str, such "
                "as the receiver's dotted name, or another hashable value"
            ) from None

    # -- sending from async code ------------------------------------------------------------

    async def asend(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
        """Send from async code; return (receiver, response) pairs like ``send``.

        The sync receivers run first, in connection order, together in one worker thread (see
        ``set_sync_to_async``); then the async receivers run concurrently in a ``TaskGroup``.
        The pairs list the sync receivers, then the async ones, each in connection order.
        The first exception of a sync receiver propagates and nothing after it runs. One
        failing async receiver raises its own exception, several an ``ExceptionGroup``; the
        other async receivers are cancelled.
        """
        return await self._asend(sender, named, "asend")

    async def asend_robust(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
        """Like ``asend``, but an ``Exception`` from a receiver becomes its response.

        Each failure is logged as ``send_robust`` logs it; every receiver runs.
        """
        return await self._asend(sender, named, "asend_robust")

    async def _asend(
        self, sender: object, named: dict[str, Any], method: str
    ) -> list[tuple[Receiver, Any]]:
        ledger = self._ledger
        if ledger.plan is None and not named and not ledger.unsent:
            return []  # as a compiled send: other names still go through the checks
        route = _sendcode.prelude(self, ledger, sender, named, method)
        if route is None:
            return []
        # Every receiver alive now is held until the send is over (see docs/guarantees.md).
        sync = [*map(call, route.sync)]
        asynchronous = [*map(call, route.asynchronous)]
        return await _asyncio.send_from_async(
            self,
            sync,
            asynchronous,
            sender,
            named,
            method == "asend_robust",
            _sendcode.log_robust_failure,
        )

    # -- for tests --------------------------------------------------------------------------

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Within the block this signal calls nobody: every send method returns ``[]``.

        It holds in every thread, and blocks nest. Receivers stay connected throughout (so
        nothing connected or disconnected inside the block is lost or reordered); sends are
        still checked in strict mode and still reach observers such as
        ``tocsin.testing.capture``.
        """
        self._ledger.change_muted(+1)
        try:
            yield
        finally:
            self._ledger.change_muted(-1)

    @contextmanager
    def connected_to(self, receiver: R, sender: object = None) -> Iterator[R]:
        """Connect ``receiver`` strongly for the block, and always disconnect it on exit.

        The block gets the receiver (``with signal.connected_to(handler) as handler:``). It is
        disconnected however the block ends, ``KeyboardInterrupt`` included; but a receiver
        that was already connected for ``sender`` before the block stays connected after it.
        """
        added = self._connect(receiver, sender, False, None)
        try:
            yield receiver
        finally:
            if added:
                self.disconnect(receiver, sender=sender)

    # -- introspection ----------------------------------------------------------------------

    def has_listeners(self, sender: object = None) -> bool:
        """Whether a send from ``sender`` would reach at least one connected receiver now (a
        ``muted()`` block aside). Does not count as a send."""
        return any(get() is not None for get in self._getters(sender))

    def receivers_for(self, sender: object = None) -> list[Receiver]:
        """The receivers a send from ``sender`` would call now, in the order it would call
        them (sync ones first). Does not count as a send."""
        return [receiver for get in self._getters(sender) if (receiver := get()) is not None]

    def _getters(self, sender: object) -> Iterable[Callable[[], Receiver | None]]:
        ledger = self._ledger
        if ledger.unsent:
            ledger.issue_warnings(stacklevel=4)
        plan = ledger.plan
        if type(plan) is Plan:
            route = plan.route(sender)
            return route.sync + route.asynchronous
        return [connection.getter for connection in ledger.snapshot(sender)]

    def connections(self) -> list[Connection]:
        """Every live connection, in call order: sync receivers, then async ones, each kind
        in the order it was connected (the order ``send`` uses)."""
        ledger = self._ledger
        if ledger.unsent:
            ledger.issue_warnings(stacklevel=3)
        live = []
        for entry in ledger.snapshot(everyone=True):
            receiver = entry()
            alive, sender = ledger.sender_of(entry)
            if receiver is None or not alive:
                continue
            uid = getattr(entry.ident, "uid", None)
            live.append(Connection(receiver, sender, uid, entry.weak, entry.is_async))
        return live


def receiver(signal: Any | list[Any] | tuple[Any, ...], **connect_kwargs: Any) -> Callable[[R], R]:
    """Decorator connecting a function to one signal or to each of a list of signals.

    ``connect_kwargs`` are those of ``Signal.connect`` (``sender``, ``weak``,
    ``dispatch_uid``). Any object with a ``connect`` method is accepted, as by Django's
    decorator, so one decorator serves tocsin and ``django.dispatch`` signals alike. The
    function is returned unchanged.
    """
    signals = list(signal) if isinstance(signal, list | tuple) else [signal]
    for s in signals:
        if not callable(getattr(s, "connect", None)):
            raise TypeError(
                f"receiver() takes a Signal (or any object with a connect() method) or a list "
                f"or tuple of them; got {safe_repr(s)} ({type(s).__name__})"
            )
    unknown = sorted(set(connect_kwargs) - _CONNECT_KEYWORDS)
    if unknown:
        raise TypeError(
            f"receiver({', '.join(map(safe_repr, signals))}) got {unknown[0]!r}, which "
            "connect() does not take; it takes sender, weak and dispatch_uid"
        )

    def decorator(func: R) -> R:
        for s in signals:
            s.connect(func, **connect_kwargs)
        return func

    return decorator
