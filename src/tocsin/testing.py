"""Helpers for testing code that sends signals: mute, capture, isolate, make strict.

- ``muted(*signals)`` silences signals for a block (or a decorated function);
- ``capture(*signals)`` records what was sent, with assertions whose failures say what was
  sent instead;
- ``isolated(*signals)`` puts the connections (and strict settings) back as they were;
- ``strict(enabled, *signals)`` turns argument checking on or off for a block;
- ``SignalsTestCase`` offers the same to ``unittest`` suites.

Recording is done by observers (see ``tocsin._registry.observe``), which a signal consults
only while one is registered: none of this costs anything on the send path when unused.
This module imports no test framework, so plain ``unittest`` suites can use it; the pytest
plugin (``tocsin.pytest_plugin``) builds on it.
"""

from __future__ import annotations

import functools
import inspect
import reprlib
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast, overload

from tocsin import Signal, _registry, _snapshot, set_strict
from tocsin._references import safe_repr

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "ANY",
    "Capture",
    "Sent",
    "SignalsTestCase",
    "capture",
    "isolated",
    "muted",
    "strict",
]

F = TypeVar("F", bound=Callable[..., Any])


class _Any:
    """The type of ``ANY``."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ANY"


ANY: Final[Any] = _Any()
"""Matches anything: as a sender, or as the expected value of an argument."""


def _signals_argument(function: str, signals: tuple[object, ...]) -> tuple[Signal, ...]:
    """Check that every positional argument of ``function`` is a Signal; drop repeats."""
    chosen: list[Signal] = []
    for position, signal in enumerate(signals, start=1):
        if not isinstance(signal, Signal):
            hint = (
                " (pass the signals one by one: f(*signals))"
                if isinstance(signal, list | tuple | set)
                else ""
            )
            raise TypeError(
                f"{function}() takes signals; argument {position} is {signal!r} "
                f"({type(signal).__name__}){hint}"
            )
        if not any(signal is seen for seen in chosen):
            chosen.append(signal)
    return tuple(chosen)


# -- muted ------------------------------------------------------------------------------------


class _Muted:
    """What ``muted()`` returns: a context manager that is also a decorator."""

    def __init__(self, signals: tuple[Signal, ...]) -> None:
        self._signals = signals
        # The blocks entered in each thread, innermost last: one object may be entered from
        # several threads at once, and each exit must close its own thread's block.
        self._open: dict[int, list[ExitStack]] = {}

    def __enter__(self) -> None:
        with ExitStack() as stack:
            for signal in self._signals or _registry.live_signals():
                stack.enter_context(signal.muted())
            self._open.setdefault(threading.get_ident(), []).append(stack.pop_all())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        thread = threading.get_ident()
        blocks = self._open[thread]
        block = blocks.pop()
        if not blocks:
            del self._open[thread]
        block.close()

    def __call__(self, func: F) -> F:
        """Decorate ``func`` (sync or async): each call runs in a fresh muted block."""
        if not callable(func):
            raise TypeError(f"muted() decorates a function; got {safe_repr(func)}")
        signals = self._signals
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_muted_async(*args: Any, **kwargs: Any) -> Any:
                with _Muted(signals):
                    return await func(*args, **kwargs)

            return cast(F, run_muted_async)

        @functools.wraps(func)
        def run_muted(*args: Any, **kwargs: Any) -> Any:
            with _Muted(signals):
                return func(*args, **kwargs)

        return cast(F, run_muted)


def muted(*signals: Signal) -> _Muted:
    """Silence ``signals`` (every signal that exists when the block starts, when none are
    given): their receivers are not called and every send method returns ``[]``.

    Use it as a context manager or as a decorator of a sync or async function. It holds in
    every thread, blocks nest, and nothing is disconnected, so connections made or removed
    inside the block are kept as they are. Sends are still checked in strict mode and still
    recorded by ``capture()``. Signals created inside a block muting everything are not muted.
    """
    return _Muted(_signals_argument("muted", signals))


# -- capture ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """One recorded send: which signal, from which sender, with which arguments, how.

    ``kwargs`` is a copy of the send's keyword arguments, made at the send: it does not change
    when the sender's dict does, but its values are the objects that were sent, not copies.
    ``method`` is "send", "send_robust", "asend" or "asend_robust".
    """

    signal: Signal
    sender: Any
    kwargs: dict[str, Any]
    method: str


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 8

# A failure message lists at most this many sends: the last ones, which are usually the ones
# the assertion was about.
_LISTED = 30


def _arguments(sender: object, kwargs: Mapping[str, Any]) -> str:
    parts = [] if sender is ANY else [f"sender={_short.repr(sender)}"]
    parts += [f"{name}={_short.repr(value)}" for name, value in kwargs.items()]
    return ", ".join(parts)


def _describe_sent(index: int, sent: Sent) -> str:
    return f"  [{index}] {sent.signal!r}.{sent.method}({_arguments(sent.sender, sent.kwargs)})"


class Capture(Sequence[Sent]):
    """The sends recorded by ``capture()``, in the order they were made: a sequence of
    ``Sent`` that can be indexed, iterated and counted while recording goes on.

    It records between entering and leaving its ``with`` (or ``async with``) block, from every
    thread. It keeps what it recorded (senders, argument values) alive until ``clear()``.
    """

    def __init__(self, signals: tuple[Signal, ...], sender: object) -> None:
        self._signals = signals  # empty: every signal, including those created later
        self._sender = sender
        self._records: list[Sent] = []
        # Re-entrant: the garbage collector may run a finalizer inside one of the regions
        # below, in this thread, and that finalizer may send a signal this capture records.
        # Each region is one C-level list operation whose only allocation comes before it
        # touches the list, so a record appended from there leaves the list whole.
        self._lock = threading.RLock()
        self._observations: list[_registry.Observation] = []
        self._observer = self._record  # one bound method, so that closing finds it

    def _record(
        self, signal: Signal, sender: object, named: Mapping[str, Any], method: str
    ) -> None:
        # Runs inside the send, in the sending thread: it must not fail, and takes the lock
        # only to append, so that concurrent sends are recorded whole and in one order.
        if self._sender is not ANY and not _snapshot.same_sender(self._sender, sender):
            return
        sent = Sent(signal, sender, dict(named), method)
        with self._lock:
            self._records.append(sent)

    # -- recording ---------------------------------------------------------------------------

    def __enter__(self) -> Capture:
        if self._observations:
            raise RuntimeError(
                f"{self!r} is already recording; a capture records one block at a time"
            )
        observations: list[_registry.Observation] = []
        try:
            for signal in self._signals or [None]:
                observations.append(_registry.observe(self._observer, signal))
        except BaseException:
            for observation in observations:
                observation.close()
            raise
        self._observations = observations
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        observations, self._observations = self._observations, []
        for observation in observations:
            observation.close()

    async def __aenter__(self) -> Capture:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    # -- reading -----------------------------------------------------------------------------

    def _snapshot(self) -> list[Sent]:
        with self._lock:
            return list(self._records)

    @overload
    def __getitem__(self, index: int) -> Sent: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sent]: ...

    def __getitem__(self, index: int | slice) -> Sent | list[Sent]:
        with self._lock:
            return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Sent]:
        return iter(self._snapshot())

    def __repr__(self) -> str:
        watched = ", ".join(map(repr, self._signals)) or "every signal"
        return f"<Capture of {watched}: {len(self)} sent>"

    def of(self, signal: Signal) -> list[Sent]:
        """The records of one signal, in order."""
        self._check_captured(signal, "of")
        return [sent for sent in self._snapshot() if sent.signal is signal]

    def clear(self) -> None:
        """Forget everything recorded so far; recording goes on if it was on."""
        with self._lock:
            self._records.clear()

    # -- asserting ---------------------------------------------------------------------------

    def assert_sent(
        self,
        signal: Signal | None = None,
        *,
        sender: object = ANY,
        times: int | None = None,
        **kwargs: Any,
    ) -> Sent:
        """Check that ``signal`` (any signal, when None) was sent from ``sender`` with at least
        the arguments ``kwargs``, at least once, or exactly ``times`` times; return the last
        matching record.

        Arguments are compared with ``==`` and arguments not named are not checked; ``ANY``
        matches any value. A sender matches as it does when connecting: by identity, or by
        value for str, bytes, int and bool. On failure, raises ``AssertionError`` listing what
        was sent and, for the nearest misses, which argument differed.
        """
        if times is not None and (
            not isinstance(times, int) or isinstance(times, bool) or times < 1
        ):
            raise ValueError(
                f"assert_sent() takes times=1 or more; got {times!r}"
                + (" (use assert_not_sent() to check that nothing was sent)" if times == 0 else "")
            )
        if signal is not None:
            self._check_captured(signal, "assert_sent")
        records = self._snapshot()
        matching = [i for i, sent in enumerate(records) if _matches(sent, signal, sender, kwargs)]
        if matching and (times is None or len(matching) == times):
            return records[matching[-1]]
        expected = _describe_expected(signal, sender, kwargs)
        if not matching:
            lines = [f"{expected} was not sent."]
            lines += _near_misses(records, signal, sender, kwargs)
        else:
            lines = [
                f"{expected} was sent {_count(len(matching))}, not {_count(times or 0)}: "
                + ", ".join(f"[{i}]" for i in matching)
                + "."
            ]
        raise AssertionError("\n".join(lines + _what_was_sent(records)))

    def assert_not_sent(
        self, signal: Signal | None = None, *, sender: object = ANY, **kwargs: Any
    ) -> None:
        """Check that no send matches: ``signal`` (any signal, when None) from ``sender``
        with at least the arguments ``kwargs``, matched as ``assert_sent`` matches them.

        On failure, raises ``AssertionError`` naming the matching sends and listing what was
        sent.
        """
        if signal is not None:
            self._check_captured(signal, "assert_not_sent")
        records = self._snapshot()
        matching = [i for i, sent in enumerate(records) if _matches(sent, signal, sender, kwargs)]
        if matching:
            expected = _describe_expected(signal, sender, kwargs)
            first = (
                f"{expected} was sent {_count(len(matching))}: "
                + ", ".join(f"[{i}]" for i in matching)
                + "."
            )
            raise AssertionError("\n".join([first, *_what_was_sent(records)]))

    def _check_captured(self, signal: object, method: str) -> None:
        """Refuse a question about a signal this capture does not record: the answer would
        always be "nothing was sent", which would make assert_not_sent() pass vacuously."""
        if not isinstance(signal, Signal):
            raise TypeError(f"Capture.{method}() takes a Signal; got {signal!r}")
        if self._signals and not any(signal is watched for watched in self._signals):
            raise ValueError(
                f"Capture.{method}(): {signal!r} is not recorded by this capture, which records "
                f"only {', '.join(map(repr, self._signals))}; pass it to capture() too"
            )


def _equal(expected: object, actual: object) -> bool:
    return expected is actual or bool(expected == actual)


def _matches(sent: Sent, signal: Signal | None, sender: object, kwargs: Mapping[str, Any]) -> bool:
    if signal is not None and sent.signal is not signal:
        return False
    if sender is not ANY and not _snapshot.same_sender(sender, sent.sender):
        return False
    return all(
        name in sent.kwargs and _equal(value, sent.kwargs[name]) for name, value in kwargs.items()
    )


def _differences(sent: Sent, sender: object, kwargs: Mapping[str, Any]) -> list[str]:
    differences = []
    if sender is not ANY and not _snapshot.same_sender(sender, sent.sender):
        differences.append(f"sender was {_short.repr(sent.sender)}, not {_short.repr(sender)}")
    for name, value in kwargs.items():
        if name not in sent.kwargs:
            differences.append(f"{name} was not sent")
        elif not _equal(value, sent.kwargs[name]):
            actual = _short.repr(sent.kwargs[name])
            differences.append(f"{name} was {actual}, not {_short.repr(value)}")
    return differences


def _near_misses(
    records: list[Sent], signal: Signal | None, sender: object, kwargs: Mapping[str, Any]
) -> list[str]:
    """For the sends of the right signal that differ least from what was expected, which
    arguments differed (at most three, the latest first)."""
    candidates = [
        (i, _differences(sent, sender, kwargs))
        for i, sent in enumerate(records)
        if signal is None or sent.signal is signal
    ]
    if not candidates:
        return []
    fewest = min(len(differences) for _, differences in candidates)
    nearest = [(i, d) for i, d in reversed(candidates) if len(d) == fewest][:3]
    return [f"Near miss [{i}]: {'; '.join(differences)}." for i, differences in nearest]


def _what_was_sent(records: list[Sent]) -> list[str]:
    if not records:
        return ["Nothing was sent."]
    lines = [f"What was sent ({len(records)}):"]
    if len(records) > _LISTED:
        lines.append(f"  ... the first {len(records) - _LISTED} not shown ...")
    start = max(0, len(records) - _LISTED)
    lines += [_describe_sent(i, records[i]) for i in range(start, len(records))]
    return lines


def _describe_expected(signal: Signal | None, sender: object, kwargs: Mapping[str, Any]) -> str:
    name = "A signal" if signal is None else repr(signal)
    arguments = _arguments(sender, kwargs)
    return f"{name} with {arguments}" if arguments else name


def _count(times: int) -> str:
    return "once" if times == 1 else f"{times} times"


def capture(*signals: Signal, sender: object = ANY) -> Capture:
    """Record every send of ``signals`` (of every signal, including those created meanwhile,
    when none are given) made from ``sender`` (any sender by default).

    Use the result as a context manager (``with`` or ``async with``): it records from entering
    the block to leaving it, every send method, in every thread, in order, whether or not
    anyone listens, and muted signals too. Receivers still run as usual. Returns the
    ``Capture``, a sequence of ``Sent`` records with assertion methods.
    """
    return Capture(_signals_argument("capture", signals), sender)


# -- isolated ---------------------------------------------------------------------------------


def isolated(*signals: Signal) -> AbstractContextManager[None]:
    """Put ``signals`` (every signal that exists when the block starts, when none are given)
    back as they were when the block ends, however it ends.

    Receivers connected inside the block are disconnected; receivers disconnected inside are
    connected again, in their original order, with their sender, ``weak`` flag and
    ``dispatch_uid``. A weak receiver that died meanwhile stays gone: the block does not keep
    anything alive. ``strict`` settings changed inside are restored, and so is the global
    ``set_strict()`` setting when no signal is given. Signals created inside the block are
    left alone.
    """
    chosen = _signals_argument("isolated", signals)
    return _isolated(chosen)


@contextmanager
def _isolated(signals: tuple[Signal, ...]) -> Iterator[None]:
    every_signal = not signals
    present = list(signals) or _registry.live_signals()
    saved = [
        (
            weakref.ref(signal),
            [_snapshot.Remembered(c, keep_alive=True) for c in signal.connections()],
            signal.strict_choice,
        )
        for signal in present
    ]
    del present
    global_strict = _global_strict() if every_signal else None
    try:
        yield
    finally:
        if global_strict is not None and _global_strict() is not global_strict:
            set_strict(global_strict)
        for signal_ref, remembered, strict_choice in saved:
            signal = signal_ref()
            if signal is None:
                continue
            if signal.strict_choice is not strict_choice:
                signal.strict = strict_choice
            _restore(signal, remembered)


def _restore(signal: Signal, remembered: list[_snapshot.Remembered]) -> None:
    """Make ``signal``'s connections those ``remembered`` that are still alive, touching as
    few connections as possible (reconnecting moves a connection to the end)."""
    wanted = [c for c in (r.recall() for r in remembered) if c is not None]
    current = signal.connections()
    wanted_keys = {_snapshot.full_identity(c) for c in wanted}
    for connection in current:
        if _snapshot.full_identity(connection) not in wanted_keys:
            signal.disconnect(connection.receiver, connection.sender, connection.dispatch_uid)
    kept = [c for c in current if _snapshot.full_identity(c) in wanted_keys]
    # Sync and async receivers are ordered separately (each in connection order).
    for is_async in (False, True):
        have = [c for c in kept if c.is_async is is_async]
        want = [c for c in wanted if c.is_async is is_async]
        same = 0
        while same < min(len(have), len(want)) and _snapshot.full_identity(
            have[same]
        ) == _snapshot.full_identity(want[same]):
            same += 1
        for connection in have[same:]:
            signal.disconnect(connection.receiver, connection.sender, connection.dispatch_uid)
        for connection in want[same:]:
            signal.connect(
                connection.receiver,
                sender=connection.sender,
                weak=connection.weak,
                dispatch_uid=connection.dispatch_uid,
            )


def _global_strict() -> bool:
    """The ``set_strict()`` setting."""
    return _registry.strict_default


# -- strict -----------------------------------------------------------------------------------


def strict(enabled: bool = True, *signals: Signal) -> AbstractContextManager[None]:
    """Turn strict mode on (or, with ``enabled=False``, off) for the block: for ``signals``,
    or for every signal that does not choose for itself when none are given.

    On exit, each signal gets back exactly what it had: its own choice, or following the
    global setting; with no signal given, the global setting comes back.
    """
    if not isinstance(enabled, bool):
        raise TypeError(
            f"strict() takes True or False first, then the signals, as in "
            f"strict(True, signal); got {safe_repr(enabled)}"
        )
    return _strict(enabled, _signals_argument("strict", signals))


@contextmanager
def _strict(enabled: bool, signals: tuple[Signal, ...]) -> Iterator[None]:
    if not signals:
        previous = set_strict(enabled)
        try:
            yield
        finally:
            set_strict(previous)
        return
    choices = [(signal, signal.strict_choice) for signal in signals]
    try:
        for signal in signals:
            signal.strict = enabled
        yield
    finally:
        for signal, choice in choices:
            signal.strict = choice


# -- unittest ---------------------------------------------------------------------------------


class SignalsTestCase:
    """A mixin for ``unittest.TestCase`` with signal assertions::

        class CheckoutTests(SignalsTestCase, unittest.TestCase): ...

    Its failures raise the test case's ``failureException``, as other assertions do.
    """

    # Provided by unittest.TestCase.
    failureException: type[BaseException]
    if TYPE_CHECKING:

        def addCleanup(
            self, function: Callable[..., Any], /, *args: Any, **kwargs: Any
        ) -> None: ...

    @contextmanager
    def assertSignalSent(
        self,
        signal: Signal | None = None,
        *,
        sender: object = ANY,
        times: int | None = None,
        **kwargs: Any,
    ) -> Iterator[Capture]:
        """A context manager: fail unless the block sends ``signal`` (any signal, when None)
        as ``Capture.assert_sent`` describes. The block gets the ``Capture``. When the block
        raises, the exception propagates and nothing is checked."""
        with capture(*([] if signal is None else [signal])) as captured:
            yield captured
        try:
            captured.assert_sent(signal, sender=sender, times=times, **kwargs)
        except AssertionError as failure:
            raise self.failureException(str(failure)) from None

    @contextmanager
    def assertSignalNotSent(
        self, signal: Signal | None = None, *, sender: object = ANY, **kwargs: Any
    ) -> Iterator[Capture]:
        """A context manager: fail if the block sends ``signal`` (any signal, when None) as
        ``Capture.assert_not_sent`` describes. The block gets the ``Capture``."""
        with capture(*([] if signal is None else [signal])) as captured:
            yield captured
        try:
            captured.assert_not_sent(signal, sender=sender, **kwargs)
        except AssertionError as failure:
            raise self.failureException(str(failure)) from None

    def captureSignals(self, *signals: Signal, sender: object = ANY) -> Capture:
        """Start recording ``signals`` (every signal, when none are given) now, until the
        test ends; return the ``Capture``. See ``capture()``."""
        captured = capture(*signals, sender=sender)
        captured.__enter__()
        self.addCleanup(captured.__exit__, None, None, None)
        return captured
