"""Every live signal, and the settings that reach across signals: the strict default and the
observers that see sends.

A signal keeps an immutable plan of what a send must do, so anything that changes what a
send does (turning strict mode on everywhere, watching every signal's sends) has to replan
the signals it touches. This module is where such settings live. Each signal enrols here
when it is created, with its ledger; a change replans the ledger of every signal concerned.
The registry holds signals weakly: enrolling keeps nothing alive.

A forked child process starts with every lock reset (another thread may have held one at
the fork) and every plan marked for rebuilding: see ``os.register_at_fork`` below.

No user code runs under this module's lock, nor does any signal's lock get taken under it:
a change of setting is made under it, and the signals concerned are replanned after it is
released (a replan only makes their next send read the settings again).
"""

from __future__ import annotations

import os
import threading
import weakref
from _thread import get_ident
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tocsin._references import safe_repr

if TYPE_CHECKING:
    from types import TracebackType

    from tocsin._ledger import Ledger
    from tocsin.dispatcher import Signal

Observer = Callable[["Signal", object, Mapping[str, Any], str], None]
"""``observer(signal, sender, named, method)``, called for each send it watches.

``method`` is "send", "send_robust", "asend" or "asend_robust". ``named`` is the send's
keyword arguments; an observer must not change it. Observers run in the sending thread,
after the arguments were checked (strict mode) and before any receiver, even when the signal
is muted or nobody listens. An exception from an observer propagates from the send, and no
receiver runs.
"""

_lock = threading.Lock()
# The thread holding _lock, while it does (0: none); see _refuse_reentry.
_holder = 0

# id(signal) -> (a weak reference to it, its ledger). Entries go when the signal does.
_enrolled: dict[int, tuple[weakref.ref[Signal], weakref.ref[Ledger]]] = {}

# Observers of every signal, then of particular signals (by id), each in registration order.
_everywhere: tuple[Observer, ...] = ()
_particular: dict[int, tuple[Observer, ...]] = {}

# Strict mode for every signal that does not choose for itself; see set_strict().
strict_default = os.environ.get("TOCSIN_STRICT", "").strip().lower() in {"1", "true", "yes", "on"}


def _refuse_reentry(doing: str) -> None:
    """Raise when this thread holds _lock already: the caller is a finalizer the garbage
    collector ran inside a locked region, which would otherwise wait for itself for ever (as
    ``Ledger._refuse_reentry`` explains for a signal's own lock)."""
    if _holder == get_ident():
        raise RuntimeError(
            f"tocsin cannot {doing} now: this call was made by a finalizer (a __del__ or "
            "weakref.finalize callback) that the garbage collector ran while this same thread "
            "was updating tocsin's list of signals, so it would wait for itself for ever; "
            "nothing was done. Have the finalizer hand the work to code that runs later."
        )


def enrol(signal: Signal, ledger: Ledger) -> None:
    """Make ``signal`` known, with the ledger that holds its state."""
    global _holder
    key = id(signal)
    # The callback runs wherever the collector does, possibly while this very thread holds
    # _lock: it must not wait for it. It leaves a note that the next holder acts on.
    reference = weakref.ref(signal, lambda ref: _departed.append((key, ref)))
    _refuse_reentry("create a signal")
    with _lock:
        _holder = get_ident()
        try:
            _prune()
            _enrolled[key] = (reference, weakref.ref(ledger))
        finally:
            _holder = 0


# (id, reference) of signals that died; pruned by whoever next holds _lock.
_departed: list[tuple[int, object]] = []


def _prune() -> None:
    """Forget the signals that died; called with _lock held."""
    while _departed:
        key, reference = _departed.pop()
        # The id may belong to a newer signal by now: drop only the dead one's entries.
        if key in _enrolled and _enrolled[key][0] is reference:
            del _enrolled[key]
            _particular.pop(key, None)


def live_signals() -> list[Signal]:
    """Every signal alive now, in the order they were created."""
    global _holder
    _refuse_reentry("list the live signals")
    with _lock:
        _holder = get_ident()
        try:
            _prune()
            references = list(_enrolled.values())
        finally:
            _holder = 0
    signals = []
    for reference, _ in references:
        signal = reference()
        if signal is not None:
            signals.append(signal)
    return signals


def _concerned(keys: list[int] | None) -> list[Ledger]:
    """The ledgers of the live enrolled signals with these ids (all when None); _lock held."""
    _prune()
    chosen = _enrolled.values() if keys is None else [_enrolled[k] for k in keys if k in _enrolled]
    return [ledger for _, ref in chosen if (ledger := ref()) is not None]


def _replan(ledgers: list[Ledger]) -> None:
    """Mark each plan stale, without _lock: a replan only makes the next send read the
    settings again, so it needs to come after the change, not under the same lock."""
    for ledger in ledgers:
        ledger.replan()


def set_strict(enabled: bool) -> bool:
    """Check the arguments of every send of every signal that declares its arguments.

    Signals created with an explicit ``strict=`` keep their own setting. The environment
    variable ``TOCSIN_STRICT=1`` turns this on at import. Returns the previous setting, so
    a caller can put it back.
    """
    global strict_default, _holder
    if not isinstance(enabled, bool):
        raise TypeError(f"set_strict() takes True or False; got {safe_repr(enabled)}")
    _refuse_reentry("change strict mode")
    with _lock:
        _holder = get_ident()
        try:
            previous = strict_default
            strict_default = enabled
            ledgers = _concerned(None)
        finally:
            _holder = 0
    _replan(ledgers)
    return previous


def observers_of_key(key: int) -> tuple[Observer, ...]:
    """The observers that watch the sends of the signal ``id(signal) == key``, in the order
    they are called."""
    particular = _particular.get(key)
    return _everywhere + particular if particular else _everywhere


class Observation:
    """One observer watching one signal (or all): ``close()`` it, or use it as a context
    manager, to stop watching. Closing twice does nothing."""

    def __init__(self, observer: Observer, signal: Signal | None) -> None:
        self.observer = observer
        self.signal = signal
        self._open = False

    def _start(self) -> None:
        global _everywhere, _holder
        _refuse_reentry("start an observer")
        with _lock:
            _holder = get_ident()
            try:
                if self.signal is None:
                    _everywhere = (*_everywhere, self.observer)
                    ledgers = _concerned(None)
                else:
                    key = id(self.signal)
                    _particular[key] = (*_particular.get(key, ()), self.observer)
                    ledgers = _concerned([key])
                self._open = True
            finally:
                _holder = 0
        _replan(ledgers)

    def close(self) -> None:
        """Stop watching; sends from now on no longer reach the observer."""
        global _everywhere, _holder
        _refuse_reentry("stop an observer")
        with _lock:
            _holder = get_ident()
            try:
                if not self._open:
                    return
                self._open = False
                if self.signal is None:
                    _everywhere = _without(_everywhere, self.observer)
                    ledgers = _concerned(None)
                else:
                    key = id(self.signal)
                    remaining = _without(_particular.get(key, ()), self.observer)
                    if remaining:
                        _particular[key] = remaining
                    else:
                        _particular.pop(key, None)
                    ledgers = _concerned([key])
            finally:
                _holder = 0
        _replan(ledgers)

    def __enter__(self) -> Observation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _without(observers: tuple[Observer, ...], observer: Observer) -> tuple[Observer, ...]:
    """``observers`` less one registration of ``observer`` (the last one, by identity)."""
    for index in range(len(observers) - 1, -1, -1):
        if observers[index] is observer:
            return observers[:index] + observers[index + 1 :]
    return observers


def observe(observer: Observer, signal: Signal | None = None) -> Observation:
    """Call ``observer`` for every send of ``signal`` (of every signal, present and future,
    when None) until the returned ``Observation`` is closed. See ``Observer``."""
    if not callable(observer):
        raise TypeError(f"observe() takes a callable observer; got {safe_repr(observer)}")
    observation = Observation(observer, signal)
    observation._start()
    return observation


def _after_fork_in_child() -> None:
    """The child of a fork has one thread: any lock another thread held is held for ever."""
    global _lock, _holder
    _lock = threading.Lock()
    _holder = 0
    for _, ref in list(_enrolled.values()):
        ledger = ref()
        if ledger is not None:
            ledger.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
