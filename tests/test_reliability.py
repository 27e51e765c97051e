"""Reliability: the ways a dispatcher can hang, lose a receiver or stop half-way, each ruled out
by the behaviour that replaces it.

Each test names one behaviour that docs/guarantees.md promises: user code (finalizers,
comparisons, warning hooks) never runs while a signal's lock is held; an exception anywhere,
a RecursionError included, leaves the lock free and the state consistent; argument names reach
receivers exactly as passed; a robust send survives whatever its error report meets; strict
mode set from one thread reaches signals created in others; a dead receiver never shadows a
live one; errors name what is wrong; ``@receiver`` takes any signal with a ``connect``.

Tests that need a process of their own (fork, interpreter exit, ``python -bb``, an async
receiver that exits) are in test_process.py.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import subprocess
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pytest

import tocsin
from tocsin import (
    Argument,
    ReceiverCollectedWarning,
    Signal,
    _registry,
    catalogue,
    emit,
    receiver,
    set_strict,
)
from tocsin._ledger import Ledger

T = TypeVar("T")
Unraisable = Callable[..., AbstractContextManager[list[Any]]]  # conftest.py's fixture


def kept(**kwargs: Any) -> str:
    """A receiver that lives as long as the module (so it is never collected unsent)."""
    return "kept"


class Handler:
    """A weakly connectable receiver that counts its calls."""

    def __init__(self, name: str = "handler") -> None:
        self.name = name
        self.calls = 0

    def __call__(self, **kwargs: Any) -> str:
        self.calls += 1
        return self.name


class Model:
    """A sender matched by identity."""


def finishes(action: Callable[[], T], timeout: float = 20) -> T:
    """Run ``action`` in a thread of its own and return what it returns (or raise what it
    raises); fail if it is still running after ``timeout`` seconds. A thread stuck on a
    signal's lock would otherwise hang the whole test run: it is left behind as a daemon."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, action()))
        except BaseException as error:  # handed to the test below
            outcome.append((False, error))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"{action!r} did not finish within {timeout} s: a deadlock")
    [(returned, value)] = outcome
    if not returned:
        raise value
    return value  # type: ignore[no-any-return]


def bounded(test: Callable[..., None]) -> Callable[..., None]:
    """Run a test's body with ``finishes``: a lock left held fails it instead of hanging."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        finishes(lambda: test(*args, **kwargs), timeout=60)

    return run


def usable(signal: Signal) -> None:
    """Assert, from another thread (so a lock left held fails the test instead of hanging it),
    that ``signal`` connects, sends and disconnects, and that its bookkeeping is consistent."""

    def use() -> None:
        signal.connect(kept, sender="probe")
        assert (kept, "kept") in signal.send("probe")
        assert (kept, "kept") in signal.send_robust("probe")
        assert signal.disconnect(kept, sender="probe") is True
        signal._ledger.check()

    finishes(use)


# -- user code never runs under the lock ------------------------------------------------------


class Owner:
    """A receiver connected with weak=False whose finalizer uses the signal it was on."""

    def __init__(self, signal: Signal, finalized: list[str]) -> None:
        self.signal = signal
        self.finalized = finalized

    def __call__(self, **kwargs: Any) -> str:
        return "owner"

    def __del__(self) -> None:
        self.signal.disconnect(kept)
        self.signal.connect(kept, sender="after")
        self.finalized.append("finalized")


def _sender_dies(signal: Signal, make: Callable[[], Owner]) -> None:
    sender = Model()
    owner = make()
    signal.connect(owner, sender=sender, weak=False)
    assert (owner, "owner") in signal.send(sender)
    del owner, sender  # the sender's connections go, and with them the last owner reference


def _owner_disconnected(signal: Signal, make: Callable[[], Owner]) -> None:
    owner = make()
    signal.connect(owner, weak=False)
    assert (owner, "owner") in signal.send(None)
    signal.disconnect(owner)
    del owner
    signal.send(None)  # publishes the connections without it


def _uid_disconnected(signal: Signal, make: Callable[[], Owner]) -> None:
    signal.connect(make(), weak=False, dispatch_uid="owner")
    assert "owner" in [response for _, response in signal.send(None)]
    signal.disconnect(dispatch_uid="owner")
    signal.send(None)


def _sender_death_noticed_later(signal: Signal, make: Callable[[], Owner]) -> None:
    sender = Model()
    signal.connect(make(), sender=sender, weak=False)
    signal.send(sender)
    # The sender dies while the lock is held (as if by another thread): its connections are
    # dropped later, by whoever takes the lock next, here a connect.
    with signal._ledger.lock:
        del sender
    signal.connect(kept, weak=False)


@pytest.mark.parametrize(
    "drop",
    [_sender_dies, _owner_disconnected, _uid_disconnected, _sender_death_noticed_later],
    ids=["its sender dies", "disconnect", "disconnect by dispatch_uid", "death noticed later"],
)
def test_a_finalizer_that_uses_the_signal_runs_after_the_lock_is_released(
    drop: Callable[[Signal, Callable[[], Owner]], None],
) -> None:
    signal = Signal(name="s")
    finalized: list[str] = []

    def scenario() -> None:
        signal.connect(kept)
        drop(signal, lambda: Owner(signal, finalized))
        gc.collect()

    finishes(scenario)
    assert finalized == ["finalized"]
    assert kept in signal.receivers_for("after")
    assert kept not in signal.receivers_for(None)
    signal._ledger.check()
    signal.disconnect(kept, sender="after")


class Collected:
    """Garbage the cyclic collector frees (it refers to itself), whose finalizer uses a
    signal: the collector runs such finalizers at whatever allocation triggers it."""

    def __init__(self, action: Callable[[], object]) -> None:
        self.cycle = self
        self.action = action

    def __del__(self) -> None:
        self.action()


FINALIZER_ACTIONS: dict[str, Callable[[Signal], object]] = {
    "send": lambda signal: signal.send(None, order=2),
    "connect": lambda signal: signal.connect(kept, sender="late"),
    "disconnect": lambda signal: signal.disconnect(kept),
    "connections": lambda signal: signal.connections(),
}


@pytest.mark.parametrize("action", list(FINALIZER_ACTIONS))
@pytest.mark.parametrize("region", ["send", "connect"])
def test_a_finalizer_the_collector_runs_inside_a_change_is_refused_not_left_waiting(
    action: str,
    region: str,
    monkeypatch: pytest.MonkeyPatch,
    unraisable: Callable[..., AbstractContextManager[list[Any]]],
) -> None:
    """The collector may run a finalizer at any allocation, and every locked region
    allocates: one that then uses the same signal from the same thread would wait for ever on
    a lock its own thread holds. It gets a RuntimeError naming the signal (reported by
    sys.unraisablehook, as for any finalizer), and the change it interrupted completes. A
    send that needs no lock (the signal's published state is still current) just goes on."""
    signal = Signal(name="orders")
    signal.connect(kept)
    signal.send(None, order=1)

    def on_save(**kwargs: Any) -> str:
        return "saved"

    # The collector runs here, inside the region (as it might at any allocation there).
    method = "_build" if region == "send" else "_file"
    original = getattr(Ledger, method)

    def collecting(self: Ledger, *args: Any) -> Any:
        gc.collect()
        return original(self, *args)

    monkeypatch.setattr(Ledger, method, collecting)
    enabled = gc.isenabled()
    gc.disable()  # so that the garbage waits for the collection inside the region
    done: list[object] = []
    try:
        Collected(lambda: done.append(FINALIZER_ACTIONS[action](signal)))
        with unraisable(RuntimeError) as reported:
            if region == "send":
                signal.connect(on_save)
                responses = finishes(lambda: signal.send(None, order=3))
                assert responses == [(kept, "kept"), (on_save, "saved")]
            else:
                finishes(lambda: signal.connect(on_save))
    finally:
        if enabled:
            gc.enable()
    monkeypatch.undo()
    if (region, action) == ("connect", "send"):
        # The connect had not begun to change anything yet when the collector ran.
        assert (reported, done) == ([], [[(kept, "kept")]])
    else:
        [report] = reported
        message = str(report.exc_value)
        assert message.startswith("The signal 'orders' cannot ")
        assert "finalizer" in message and "nothing was done" in message
        assert done == []
    assert [c.receiver for c in signal.connections()] == [kept, on_save]
    signal._ledger.check()
    usable(signal)


@pytest.mark.parametrize(
    ("doing", "use"),
    [
        ("create a signal", lambda: Signal(name="made by a finalizer")),
        ("list the live signals", lambda: _registry.live_signals()),
        ("change strict mode", lambda: set_strict(False)),
    ],
    ids=["Signal()", "live signals", "set_strict"],
)
def test_a_finalizer_the_collector_runs_inside_the_registrys_lock_is_refused(
    doing: str,
    use: Callable[[], object],
    monkeypatch: pytest.MonkeyPatch,
    unraisable: Callable[..., AbstractContextManager[list[Any]]],
) -> None:
    """The same for tocsin's list of signals, whose lock creating a signal takes."""
    original = _registry._prune

    def collecting() -> None:
        gc.collect()  # the collector runs here, inside the region
        original()

    monkeypatch.setattr(_registry, "_prune", collecting)
    enabled = gc.isenabled()
    gc.disable()
    try:
        Collected(use)
        with unraisable(RuntimeError) as reported:
            signal = finishes(lambda: Signal(name="orders"))
    finally:
        if enabled:
            gc.enable()
    monkeypatch.undo()
    [report] = reported
    assert str(report.exc_value).startswith(f"tocsin cannot {doing} now: ")
    assert signal in _registry.live_signals()
    usable(signal)


class Reentrant:
    """A sender or dispatch_uid whose ``__hash__`` and ``__eq__`` use the signal: any of them
    called while the signal's lock is held would deadlock."""

    def __init__(self, signal: Signal, name: str) -> None:
        self.signal = signal
        self.name = name

    def __hash__(self) -> int:
        self.signal.has_listeners()
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        self.signal.connections()
        return isinstance(other, Reentrant) and other.name == self.name


def test_senders_and_uids_whose_comparisons_use_the_signal_do_not_deadlock() -> None:
    signal = Signal(name="s")
    sender = Reentrant(signal, "sender")

    def scenario() -> None:
        signal.connect(kept, sender=sender)
        signal.connect(kept, dispatch_uid=Reentrant(signal, "uid"))
        signal.connect(kept, dispatch_uid=Reentrant(signal, "uid"))  # equal: the same one
        signal.connect(kept, sender=sender, dispatch_uid=Reentrant(signal, "uid"))
        assert signal.send(sender) == [(kept, "kept")] * 3
        assert signal.send_robust(Reentrant(signal, "sender")) == [(kept, "kept")]
        assert len(signal.connections()) == 3
        assert signal.disconnect(dispatch_uid=Reentrant(signal, "uid")) is True
        assert signal.disconnect(dispatch_uid=Reentrant(signal, "uid"), sender=sender) is True
        assert signal.disconnect(kept, sender=sender) is True

    finishes(scenario)
    assert signal.connections() == []
    signal._ledger.check()


def _connect_nested_function(signal: Signal) -> None:
    def on_save(**kwargs: Any) -> None: ...

    signal.connect(on_save)


def test_a_warning_hook_that_uses_the_signal_runs_after_the_lock_is_released() -> None:
    signal = Signal(name="s")
    shown: list[str] = []

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        shown.append(f"{message} ({len(signal.connections())} connected)")

    def scenario() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            signal.connect(kept)
            _connect_nested_function(signal)  # collected unsent: ReceiverCollectedWarning
            gc.collect()

    finishes(scenario)
    [text] = shown
    assert "on_save" in text and "(1 connected)" in text
    signal.disconnect(kept)


# -- an exception anywhere leaves the lock free and the state consistent -----------------------


def _depth() -> int:
    frame = sys._getframe(1)
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


def _at_depth(extra: int, action: Callable[[], object]) -> None:
    if extra <= 0:
        action()
    else:
        _at_depth(extra - 1, action)


def near_the_recursion_limit(
    action: Callable[[], object], prepare: Callable[[], object] = lambda: None
) -> Iterator[bool]:
    """Run ``action`` with the stack ever closer to the recursion limit, from comfortably
    below it to past it, so that a RecursionError strikes at each point of its work in turn;
    ``prepare()`` runs before each, at the caller's depth. Yields, after each run, whether it
    raised RecursionError."""
    room = sys.getrecursionlimit() - _depth()
    for extra in range(room - 70, room + 2):
        prepare()
        try:
            _at_depth(extra, action)
        except RecursionError:
            yield True
        else:
            yield False


@pytest.mark.parametrize("sender", [None, "auth", Model()], ids=["any", "by value", "object"])
@bounded
def test_connect_at_the_recursion_limit_leaves_the_signal_usable(sender: object) -> None:
    signal = Signal(name="s")
    handler = Handler()
    raised = []
    for hit in near_the_recursion_limit(
        lambda: signal.connect(handler, sender=sender),
        prepare=lambda: signal.disconnect(handler, sender=sender),
    ):
        raised.append(hit)
        usable(signal)
        assert signal.receivers_for(sender) in ([], [handler])  # it took effect, or did not
        signal.connect(handler, sender=sender)
        assert signal.receivers_for(sender) == [handler]
        assert signal.send(sender) == [(handler, "handler")]
    assert True in raised and False in raised  # the limit was reached, and passed
    assert signal.disconnect(handler, sender=sender) is True
    assert signal.connections() == []
    signal._ledger.check()


@pytest.mark.parametrize("sender", [None, "auth", Model()], ids=["any", "by value", "object"])
@bounded
def test_disconnect_at_the_recursion_limit_leaves_the_signal_usable(sender: object) -> None:
    signal = Signal(name="s")
    handler = Handler()
    raised = []
    for hit in near_the_recursion_limit(
        lambda: signal.disconnect(handler, sender=sender),
        prepare=lambda: signal.connect(handler, sender=sender),
    ):
        raised.append(hit)
        usable(signal)
        assert signal.receivers_for(sender) in ([], [handler])
        signal.disconnect(handler, sender=sender)
        assert signal.receivers_for(sender) == []
        assert signal.send(sender) == []
    assert True in raised and False in raised
    assert signal.connections() == []
    signal._ledger.check()


def _dies_near_the_recursion_limit(signal: Signal, sender: object) -> Iterator[None]:
    """Connect a new receiver for ``sender`` and let it die at each depth near the limit
    (where CPython may be unable to run its weakref callback); yield after each death."""
    holder: list[Handler] = []

    def prepare() -> None:
        handler = Handler()
        signal.connect(handler, sender=sender)
        holder.append(handler)

    for _ in near_the_recursion_limit(holder.clear, prepare):
        holder.clear()  # if the limit struck before it could
        yield


def _senders_die_near_the_recursion_limit(signal: Signal) -> Iterator[None]:
    """Connect ``kept`` (connected for any sender already) for a new sender, and let the
    sender die at each depth near the limit; yield after each death."""
    holder: list[Model] = []

    def prepare() -> None:
        sender = Model()
        signal.connect(kept, sender=sender)
        assert signal.send(sender) == [(kept, "kept"), (kept, "kept")]
        holder.append(sender)

    for _ in near_the_recursion_limit(holder.clear, prepare):
        holder.clear()
        yield


@pytest.mark.parametrize("sender", [None, "auth"], ids=["any", "by value"])
@bounded
def test_a_receiver_dying_at_the_recursion_limit_leaves_the_signal_usable(
    sender: object, unraisable: Unraisable
) -> None:
    signal = Signal(name="s")
    signal.connect(kept, sender=sender)
    with unraisable(RecursionError) as reported:
        for _ in _dies_near_the_recursion_limit(signal, sender):
            usable(signal)
            assert signal.send(sender) == [(kept, "kept")]
            assert signal.send_robust(sender) == [(kept, "kept")]
            assert signal.receivers_for(sender) == [kept]
            signal._ledger.check()
    assert reported, "no weakref callback ever hit the limit: the test did not test"
    gc.collect()
    assert [c.receiver for c in signal.connections()] == [kept]
    signal.disconnect(kept, sender=sender)
    signal._ledger.check()


@bounded
def test_a_sender_dying_at_the_recursion_limit_leaves_the_signal_usable(
    unraisable: Unraisable,
) -> None:
    signal = Signal(name="s")
    signal.connect(kept)
    with unraisable(RecursionError):
        for _ in _senders_die_near_the_recursion_limit(signal):
            usable(signal)
            assert signal.send(Model()) == [(kept, "kept")]
    gc.collect()
    assert [c.sender for c in signal.connections()] == [None]
    signal.disconnect(kept)


# -- argument names reach receivers exactly as passed ---------------------------------------

# Python normalises identifiers (NFKC): spelled as parameters, the micro sign would become a
# Greek mu, full-width letters plain ones, the "fi" ligature two letters, the black-letter H
# and the Kelvin sign plain letters; so a send compiled with them as parameters would refuse
# them.
NORMALISED_NAMES = ["\u00b5", "\uff46\uff55\uff4c\uff4c", "\ufb01le", "\u210c", "\u212a"]


def _send(signal: Signal, method: str, sender: object, named: dict[str, Any]) -> Any:
    if method.startswith("a"):
        return asyncio.run(getattr(signal, method)(sender, **named))
    return getattr(signal, method)(sender, **named)


@pytest.mark.parametrize("method", ["send", "send_robust", "asend", "asend_robust"])
@pytest.mark.parametrize("name", NORMALISED_NAMES)
def test_argument_names_python_would_normalise_reach_receivers_as_passed(
    name: str, method: str
) -> None:
    signal = Signal(name="s")
    heard: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> None:
        heard.append({key: value for key, value in kwargs.items() if key != "signal"})

    signal.connect(record)
    sends: list[dict[str, Any]] = [
        {name: 1},  # the first send: the one its compiled send is made for
        {name: 2},
        {name: 3, "plain": 4},
        {"plain": 5},
        {"plain": 6, name: 7},
    ]
    for named in sends:
        _send(signal, method, "sender", named)
    assert heard == [{"sender": "sender", **named} for named in sends]
    assert [list(h) for h in heard] == [["sender", *named] for named in sends]


@pytest.mark.parametrize("method", ["send", "send_robust"])
def test_argument_names_python_would_normalise_reach_receivers_after_plain_ones(
    method: str,
) -> None:
    signal = Signal(name="s")
    heard: list[dict[str, Any]] = []
    signal.connect(lambda **kwargs: heard.append(kwargs), weak=False)
    _send(signal, method, None, {"plain": 1})
    _send(signal, method, None, dict.fromkeys(NORMALISED_NAMES, 2))
    assert [sorted(set(h) - {"signal", "sender"}) for h in heard] == [
        ["plain"],
        sorted(NORMALISED_NAMES),
    ]


# -- a robust send goes on whatever its error report meets ------------------------------------


class Unprintable:
    """A callable object that fails, and whose repr fails too."""

    def __call__(self, **kwargs: Any) -> None:
        raise ValueError("receiver failed")

    def __repr__(self) -> str:
        raise RuntimeError("repr failed")


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str failed")


def raises_unprintable(**kwargs: Any) -> None:
    raise UnprintableError


@pytest.mark.parametrize("method", ["send_robust", "asend_robust"])
def test_a_robust_send_goes_on_when_its_error_report_fails(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    signal = Signal(name="s")
    unprintable = Unprintable()
    partial = functools.partial(Unprintable())  # weakly connected, like the others
    last = Handler("last")
    for connected in (unprintable, partial, raises_unprintable, last):
        signal.connect(connected)
    with caplog.at_level(logging.ERROR, logger="tocsin"):
        responses = _send(signal, method, None, {})
    assert [r for r, _ in responses] == [unprintable, partial, raises_unprintable, last]
    assert [type(response) for _, response in responses] == [
        ValueError,
        ValueError,
        UnprintableError,
        str,
    ]
    assert last.calls == 1
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert "Unprintable" in messages[0] and "receiver failed" in messages[0]
    assert "functools.partial" in messages[1]
    assert "raises_unprintable" in messages[2]


# -- strict mode set from one thread reaches signals created in others ------------------------


@bounded
def test_set_strict_while_other_threads_create_signals() -> None:
    creators = 3
    barrier = threading.Barrier(creators + 1)
    done = threading.Event()
    errors: list[BaseException] = []
    made: list[list[Signal]] = [[] for _ in range(creators)]

    def create(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            for count in range(3000):
                signal = Signal(name=f"s{index}-{count}", arguments=["order"])
                if count % 10 == 0:
                    made[index].append(signal)  # the rest die at once
                if count % 50 == 0:
                    gc.collect()
                if done.is_set():
                    return
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(creators)]
    # Many live signals make each set_strict() long; frequent switches put creations inside.
    crowd = [Signal(name=f"crowd {n}", arguments=["order"]) for n in range(2000)]
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    for thread in threads:
        thread.start()
    previous = set_strict(False)
    try:
        barrier.wait(timeout=10)
        for flip in range(200):
            set_strict(flip % 2 == 0)
        done.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        signals = [signal for group in made for signal in group]
        set_strict(True)
        for signal in signals:
            assert signal.strict is True
            with pytest.raises(TypeError, match="unexpected argument 'ordr'"):
                signal.send(None, ordr=1)
        set_strict(False)
        for signal in signals:
            assert signal.strict is False
            assert signal.send(None, ordr=1) == []
        assert all(signal.strict is False for signal in crowd)
    finally:
        sys.setswitchinterval(previous_interval)
        set_strict(previous)


# -- a dead receiver never shadows a live one --------------------------------------------------


@pytest.mark.parametrize("sender", [None], ids=["any"])
@bounded
def test_a_receiver_whose_death_went_unnoticed_never_shadows_a_new_one(
    sender: object,
    with_reused_address: Callable[[Callable[..., bool]], None],
    unraisable: Unraisable,
) -> None:
    """When a receiver dies too deep in the stack for CPython to run its weakref callback,
    the signal never learns of the death; a new receiver that gets its address must still
    connect."""

    def scenario(reuse: Callable[..., Any]) -> bool:
        signal = Signal(name="s")
        with unraisable(RecursionError):
            for _ in _dies_near_the_recursion_limit(signal, sender):
                unnoticed = [entry for entry in _entries(signal) if entry() is None]
                if unnoticed:
                    break
            else:
                pytest.skip("no receiver died unnoticed at the recursion limit on this Python")
        newcomers = reuse({unnoticed[0].ident}, Handler)
        if not newcomers:
            return False
        newcomer = newcomers[0]
        assert signal.connect(newcomer, sender=sender) is newcomer
        assert signal.receivers_for(sender) == [newcomer]
        assert signal.send(sender) == [(newcomer, "handler")]
        assert newcomer.calls == 1
        assert signal.disconnect(newcomer, sender=sender) is True
        signal._ledger.check()
        return True

    with_reused_address(scenario)


def _entries(signal: Signal) -> list[Any]:
    """Every connection the signal has filed, dead or alive."""
    ledger = signal._ledger
    entries = list(ledger.anyone.values())
    for group in ledger.groups.values():
        entries += group.members.values()
    return entries


# -- errors name what is wrong and what to do ---------------------------------------------------


class NotCallable:
    def __repr__(self) -> str:
        raise ZeroDivisionError("repr failed")


@pytest.mark.parametrize(
    ("action", "error", "expected"),
    [
        (
            lambda signal: signal.disconnect(dispatch_uid=["a", "list"]),
            TypeError,
            [r"<Signal 's'>\.disconnect\(\)", "dispatch_uid", "hashable", r"\['a', 'list'\]"],
        ),
        (
            lambda signal: signal.connect(kept, dispatch_uid={"a": 1}),
            TypeError,
            [r"<Signal 's'>\.connect\(\)", "dispatch_uid", "hashable", "Use a str"],
        ),
        (
            lambda signal: Signal(name="s", arguments=[Argument(3)]),  # type: ignore[arg-type]
            TypeError,
            ["Signal 's'", "argument named 3", "identifier"],
        ),
        (
            lambda signal: signal.connect(NotCallable()),
            TypeError,
            [r"<Signal 's'>\.connect\(\)", "must be callable", "NotCallable"],
        ),
    ],
    ids=["unhashable uid to disconnect", "unhashable uid to connect", "Argument(3)", "repr"],
)
def test_errors_name_the_signal_the_argument_and_the_fix(
    action: Callable[[Signal], object], error: type[Exception], expected: list[str]
) -> None:
    signal = Signal(name="s")
    signal.connect(kept)
    before = signal.connections()
    with pytest.raises(error) as raised:
        action(signal)
    for pattern in expected:
        assert raised.match(pattern)
    # Shown alone: no "During handling of the above exception" with a lesser error.
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None or raised.value.__suppress_context__
    assert signal.connections() == before
    signal._ledger.check()
    signal.disconnect(kept)


# -- @receiver takes any signal with a connect method --------------------------------------------


class FakeSignal:
    """Just enough of a signal for ``@receiver``: a ``connect`` method."""

    def __init__(self) -> None:
        self.connected: list[tuple[Callable[..., Any], dict[str, Any]]] = []

    def connect(self, receiver: Callable[..., Any], **kwargs: Any) -> None:
        self.connected.append((receiver, kwargs))


def test_receiver_decorates_any_object_with_a_connect_method() -> None:
    fake = FakeSignal()
    ours = Signal(name="ours")

    @receiver([ours, fake], sender="x", weak=False, dispatch_uid="both")
    def on_both(**kwargs: Any) -> str:
        return "both"

    assert fake.connected == [(on_both, {"sender": "x", "weak": False, "dispatch_uid": "both"})]
    assert ours.send("x") == [(on_both, "both")]
    ours.disconnect(dispatch_uid="both", sender="x")


def test_receiver_decorates_a_django_signal() -> None:
    dispatch = pytest.importorskip("django.dispatch", reason="Django is not installed")
    theirs = dispatch.Signal()
    ours = Signal(name="ours")

    @receiver([theirs, ours], weak=False)
    def on_both(sender: object, **kwargs: Any) -> str:
        return f"heard {sender}"

    assert theirs.send("django") == [(on_both, "heard django")]
    assert ours.send("tocsin") == [(on_both, "heard tocsin")]
    theirs.disconnect(on_both)
    ours.disconnect(on_both)


def test_receiver_refuses_what_has_no_connect_method() -> None:
    with pytest.raises(TypeError, match=r"receiver\(\) takes a Signal .* got 'order_saved'"):
        receiver("order_saved")


# -- ReceiverCollectedWarning can be caught when warnings are errors --------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda signal: signal.send(None),
        lambda signal: signal.send_robust(None),
        lambda signal: asyncio.run(signal.asend(None)),
        lambda signal: signal.connect(kept),
        lambda signal: signal.disconnect(kept),
        lambda signal: signal.receivers_for(None),
        lambda signal: signal.has_listeners(),
        lambda signal: signal.connections(),
    ],
    ids=[
        "send",
        "send_robust",
        "asend",
        "connect",
        "disconnect",
        "receivers_for",
        "has_listeners",
        "connections",
    ],
)
def test_receiver_collected_warning_as_an_error_comes_from_the_next_call(
    call: Callable[[Signal], object], unraisable: Unraisable
) -> None:
    signal = Signal(name="s")
    other = Handler()
    signal.connect(other)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with unraisable():  # nothing at all may be unraisable
            _connect_nested_function(signal)
            gc.collect()
        with pytest.raises(ReceiverCollectedWarning, match=r"on_save .*never ran"):
            call(signal)
        assert other.calls == 0  # raised before it did anything
        assert [c.receiver for c in signal.connections()] == [other]
        call(signal)  # raised once only
    signal._ledger.check()


# -- defects the reliability suite found, and their fixes ------------------------------------


# -- dispatch_uid tokens released twice --------------------------------------------------------


def test_a_uid_shared_with_a_dead_senders_connection_still_names_its_other_connection() -> None:
    """A sender's death drops its connections but leaves them in a cycle until the collector
    runs; a weak receiver among them dying first must not release their dispatch_uid again."""
    signal = Signal(name="s")
    signal.connect(kept, sender="b", dispatch_uid="v")
    sender, handler = Model(), Handler()
    signal.connect(handler, sender=sender, dispatch_uid="v")  # the same uid, another sender
    del sender  # its connections go...
    del handler  # ...then the receiver dies, before the collector ran
    signal.connect(kept, sender="b", dispatch_uid="v")  # already connected: nothing changes
    assert signal.send("b") == [(kept, "kept")]
    assert signal.disconnect(dispatch_uid="v", sender="b") is True
    assert signal.connections() == []
    signal._ledger.check()


# -- strict mode ----------------------------------------------------------------------------------


class Relaying(Signal):
    """A subclass that overrides send and calls the class's own."""

    def send(self, sender: object, **named: Any) -> list[tuple[Any, Any]]:
        return super().send(sender, **named)


@pytest.mark.parametrize(
    "how",
    ["first send after send_robust", "subclass calling super().send", "Signal.send unbound"],
)
def test_strict_mode_refuses_a_send_missing_a_required_argument_every_time(how: str) -> None:
    signal = (Relaying if how.startswith("subclass") else Signal)(
        name="s", arguments=["order"], strict=True
    )
    signal.connect(kept)
    signal.send_robust(None, order=1)  # publishes what sends read
    for _ in range(3):
        with pytest.raises(TypeError, match="missing the required argument 'order'"):
            if how == "Signal.send unbound":
                Signal.send(signal, None)
            else:
                signal.send(None)


# -- a disconnected strong receiver stays referenced --------------------------------------------


@pytest.mark.parametrize("sent_since", [False, True])
def test_disconnecting_a_strong_receiver_lets_it_go(sent_since: bool) -> None:
    signal = Signal(name="s")
    handler = Handler()
    alive = weakref.ref(handler)
    signal.connect(handler, weak=False)
    signal.send(None)
    signal.disconnect(handler)
    if sent_since:
        signal.send(None)
    del handler
    gc.collect()
    assert alive() is None


def test_a_block_of_connected_to_lets_its_receiver_go() -> None:
    signal = Signal(name="s")
    handler = Handler()
    alive = weakref.ref(handler)
    with signal.connected_to(handler):
        signal.send(None)
    del handler
    gc.collect()
    assert alive() is None


# -- deaths the signal never learnt of -------------------------------------------------------------


def test_a_new_receiver_at_an_unnoticed_dead_receivers_address_connects_for_its_sender(
    with_reused_address: Callable[[Callable[..., bool]], None], unraisable: Unraisable
) -> None:
    """Reproduction: a receiver connected for sender "auth" dies where its weakref callback
    cannot run; a new receiver at its address connecting for "auth" raises KeyError."""

    def scenario(reuse: Callable[..., Any]) -> bool:
        signal = Signal(name="s")
        with unraisable(RecursionError):
            for _ in _dies_near_the_recursion_limit(signal, "auth"):
                group = signal._ledger.groups.get("auth")
                dead = [c for c in (group.members.values() if group else ()) if c() is None]
                if dead:
                    break
            else:
                pytest.skip("no receiver died unnoticed at the recursion limit")
        newcomers = reuse({dead[0].ident}, Handler)
        if not newcomers:
            return False
        newcomer = newcomers[0]
        signal.connect(newcomer, sender="auth")
        assert signal.send("auth") == [(newcomer, "handler")]
        return True

    with_reused_address(scenario)


@pytest.mark.parametrize("sender", ["auth", Model()], ids=["by value", "object"])
def test_connections_whose_death_went_unnoticed_are_reclaimed(
    sender: object, unraisable: Unraisable
) -> None:
    """Any-sender connections a lost callback left behind are swept on the next send; those
    for one sender (and a dead sender's group) never are."""
    signal = Signal(name="s")
    with unraisable(RecursionError):
        for _ in _dies_near_the_recursion_limit(signal, sender):
            pass
    gc.collect()
    signal.connect(kept, weak=False)
    signal.send(sender)
    signal.disconnect(kept)
    signal.send(sender)
    ledger = signal._ledger
    assert ledger.groups == {}, "dead connections still filed"


def test_disconnect_by_uid_at_the_recursion_limit_keeps_the_bookkeeping_consistent(
    unraisable: Unraisable,
) -> None:
    signal = Signal(name="s")
    with unraisable(RecursionError):
        for _ in near_the_recursion_limit(
            lambda: signal.disconnect(dispatch_uid="u"),
            prepare=lambda: signal.connect(kept, dispatch_uid="u"),
        ):
            signal.disconnect(dispatch_uid="u")
            signal._ledger.check()
    assert signal._ledger.uids == {}


def test_a_sender_dying_at_the_recursion_limit_keeps_the_bookkeeping_consistent(
    unraisable: Unraisable,
) -> None:
    """Fails on Python 3.11, where C calls count towards the recursion limit: a sender's
    group is dropped but its cached route stays."""
    signal = Signal(name="s")
    signal.connect(kept)
    with unraisable(RecursionError):
        for _ in _senders_die_near_the_recursion_limit(signal):
            signal.send(Model())
            signal._ledger.check()


# -- errors from async receivers -------------------------------------------------------------------


def test_an_async_receivers_error_from_send_has_no_unrelated_context() -> None:
    signal = Signal(name="s")

    async def failing(**kwargs: Any) -> None:
        raise ValueError("receiver failed")

    signal.connect(failing)
    with pytest.raises(ValueError, match="receiver failed") as raised:
        signal.send(None)
    # Not "During handling of the above exception (RuntimeError: no running event loop)".
    context = raised.value.__context__
    assert context is None or raised.value.__suppress_context__, repr(context)


# -- an argument named "signal" --------------------------------------------------------------------


def test_an_argument_named_signal_is_refused_the_same_way_every_time() -> None:
    signal = Signal(name="s")
    outcomes = []
    for _ in range(2):
        try:
            signal.send(None, signal="oops")
        except TypeError:
            outcomes.append("refused")
        else:
            outcomes.append("accepted")
    assert outcomes[0] == outcomes[1], outcomes


# -- bad input accepted, or refused unclearly ------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "error", "pattern"),
    [
        (lambda: tocsin.set_strict("no"), TypeError, r"set_strict\(\).*True or False"),
        (lambda: Signal(name="x", doc=3), TypeError, "doc"),
        (lambda: Signal("x"), TypeError, "use_caching|providing_args"),
        (lambda: Signal(name="x", providing_args=3), TypeError, "providing_args"),
        (lambda: catalogue.group_of(3), TypeError, "catalogue signal"),
        (lambda: emit.model_signals(3), TypeError, "class"),
        (lambda: tocsin.load_entry_points(3), TypeError, "group"),
        (lambda: Signal(name="x").check_arguments(["order"]), TypeError, "mapping"),
    ],
    ids=[
        "set_strict('no')",
        "Signal(doc=3)",
        "Signal('x')",
        "Signal(providing_args=3)",
        "catalogue.group_of(3)",
        "emit.model_signals(3)",
        "load_entry_points(3)",
        "check_arguments(list)",
    ],
)
def test_bad_input_accepted_or_refused_unclearly(
    action: Callable[[], object], error: type[Exception], pattern: str, global_strict_off: None
) -> None:
    with pytest.raises(error, match=pattern):
        action()


def test_receiver_with_a_bad_keyword_names_the_signal() -> None:
    signal = Signal(name="orders")
    with pytest.raises(TypeError, match=r"<Signal 'orders'>.*bogus"):
        tocsin.receiver(signal, bogus=1)(kept)


# -- the command line and a closed pipe ---------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [["catalogue", "--json"], ["catalogue"], []],
    ids=["catalogue --json", "catalogue", "summary"],
)
def test_the_command_line_writing_to_a_closed_pipe_exits_quietly(arguments: list[str]) -> None:
    """``python -m tocsin catalogue --json | head -1``: no BrokenPipeError traceback."""
    reading, writing = os.pipe()
    os.close(reading)  # the reader left before the first line was written
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "tocsin", *arguments],
            stdout=writing,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writing)
    assert finished.stderr == ""
    assert finished.returncode == 1


def test_a_uid_refiled_over_a_dead_leftover_keeps_its_token(
    callbacks_lost: Callable[[Signal], Any],
) -> None:
    """A new connection replacing a dead one under the same dispatch_uid keeps the uid's
    token filed: a third connect with that uid is the same connection, and sends call it once."""
    signal = Signal(name="s")
    dying = Handler("dying")
    signal.connect(dying, dispatch_uid="x")
    signal.send(None)
    with callbacks_lost(signal):
        del dying  # its connection stays filed, dead
    first, second = Handler("first"), Handler("second")
    signal.connect(first, dispatch_uid="x")  # replaces the dead leftover
    signal._ledger.check()
    signal.connect(second, dispatch_uid="x")  # the uid is taken: nothing new
    assert [response for _, response in signal.send(None)] == ["first"]
    assert signal.disconnect(dispatch_uid="x") is True
    assert signal.connections() == []


def test_a_finalizer_run_by_a_replan_may_create_a_signal() -> None:
    """set_strict() (or observe()) replans every signal, which finishes the deaths they have
    pending; a finalizer run then may use the registry itself (creating a signal enrols it)."""
    created: list[Signal] = []

    class Receiver:
        def __call__(self, **kwargs: Any) -> None: ...

        def __del__(self) -> None:
            created.append(Signal(name="made by a finalizer"))

    signal = Signal(name="s")
    sender = Model()
    signal.connect(Receiver(), sender=sender, weak=False)
    signal._ledger.lock.acquire()  # as if another thread were busy: the death waits
    del sender
    signal._ledger.lock.release()
    previous = set_strict(False)
    try:
        finishes(lambda: set_strict(True))
    finally:
        set_strict(previous)
    assert len(created) == 1
