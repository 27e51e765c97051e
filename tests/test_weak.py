"""Weak receivers, weak senders, and the warning for receivers that never had a chance to run."""

from __future__ import annotations

import contextlib
import functools
import gc
import tracemalloc
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from tocsin import ReceiverCollectedWarning, Signal

Unraisable = Callable[..., AbstractContextManager[list[Any]]]  # conftest.py's fixture


class Handler:
    def __init__(self) -> None:
        self.calls = 0

    def on_signal(self, **kwargs: Any) -> None:
        self.calls += 1

    def __call__(self, **kwargs: Any) -> None:
        self.calls += 1


class Model:
    """A sender, as a model class or instance would be."""


def assert_gone(signal: Signal, sender: object = None) -> None:
    gc.collect()
    assert signal.connections() == []
    assert signal.receivers_for(sender) == []
    assert signal.has_listeners(sender) is False
    assert signal.send(sender) == []
    ledger = signal._ledger  # no bookkeeping left behind
    ledger.check()
    assert ledger.anyone == {} and ledger.groups == {}


# -- 4. weak receivers ---------------------------------------------------------------------


def _function() -> Callable[..., Any]:
    def receiver(**kwargs: Any) -> None: ...

    return receiver


def _bound_method() -> Callable[..., Any]:
    return Handler().on_signal


@pytest.mark.parametrize(
    "make",
    [
        _function,
        lambda: lambda **kwargs: None,
        lambda: functools.partial(lambda tag, **kwargs: None, "tag"),
        Handler,
        _bound_method,
    ],
    ids=["function", "lambda", "partial", "callable object", "bound method"],
)
def test_weak_receiver_disappears_when_collected(make: Callable[[], Callable[..., Any]]) -> None:
    signal = Signal()
    receiver = make()
    signal.connect(receiver)
    assert len(signal.send(None)) == 1  # sent once: its collection is not suspicious
    del receiver
    assert_gone(signal)


def test_bound_method_dies_with_its_instance() -> None:
    signal = Signal()
    handler = Handler()
    signal.connect(handler.on_signal)
    gc.collect()
    signal.send(None)
    assert handler.calls == 1  # the bound method object itself was temporary: still connected
    del handler
    assert_gone(signal)


def test_strong_receiver_is_kept_alive() -> None:
    signal = Signal()
    signal.connect(lambda **kwargs: "alive", weak=False)
    gc.collect()
    assert [response for _, response in signal.send(None)] == ["alive"]
    assert signal.connections()[0].weak is False


def test_receiver_that_cannot_be_weakly_referenced_asks_for_weak_false() -> None:
    class Slotted:
        __slots__ = ()

        def __call__(self, **kwargs: Any) -> None: ...

    signal = Signal(name="s")
    with pytest.raises(TypeError, match=r"cannot be weakly referenced.*<Signal 's'>.*weak=False"):
        signal.connect(Slotted())
    assert signal.connections() == []
    signal.connect(Slotted(), weak=False)
    assert len(signal.send(None)) == 1


def test_validation_does_not_keep_a_weak_receiver_alive() -> None:
    signal = Signal()
    handler = Handler()
    alive = [True]
    weakref.finalize(handler, alive.clear)
    signal.connect(handler)
    signal.send(None)
    del handler
    gc.collect()
    assert alive == []


def test_connect_collect_cycles_do_not_grow_memory() -> None:
    signal = Signal()

    def cycle(n: int) -> None:
        for _ in range(n):
            receiver = Handler()  # a callable object: collected silently
            signal.connect(receiver)
            del receiver

    cycle(2_000)  # warm up: dicts and free lists reach their working size
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cycle(50_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000, f"{grown} bytes kept after 50,000 connect/collect cycles"
    assert signal._ledger.anyone == {}


# -- 5. weak senders -----------------------------------------------------------------------


def test_collected_sender_drops_its_connections() -> None:
    signal = Signal()
    handler = Handler()
    sender = Model()
    signal.connect(handler, sender=sender)
    assert len(signal.send(sender)) == 1
    del sender
    assert_gone(signal)
    assert handler.calls == 1


def test_new_object_at_a_dead_senders_address_gets_nothing(
    with_reused_address: Callable[[Callable[..., bool]], None],
) -> None:
    def scenario(reuse: Callable[..., Any]) -> bool:
        signal = Signal()
        handler = Handler()
        senders = [Model() for _ in range(100)]
        for sender in senders:
            signal.connect(handler, sender=sender)
            signal.send(sender)  # builds and caches the route for this sender
        addresses = {id(sender) for sender in senders}
        del senders, sender
        reused = reuse(addresses, Model)
        if not reused:
            return False
        for newcomer in reused:
            assert signal.send(newcomer) == []
            assert signal.has_listeners(newcomer) is False
        assert handler.calls == 100
        return True

    with_reused_address(scenario)


def connected_handlers(signal: Signal, sender: object) -> list[Handler]:
    """100 new Handlers, connected weakly to ``signal`` for ``sender`` and sent to once; the
    list returned holds the only references to them."""
    handlers = [Handler() for _ in range(100)]
    for handler in handlers:
        signal.connect(handler, sender=sender)
    signal.send(sender)
    return handlers


def connects_at(
    reuse: Callable[..., Any], addresses: set[int], signal: Signal, sender: object
) -> bool:
    """Connect new receivers made at dead ones' ``addresses`` (False if none could be), and
    check they are really connected: a dead connection left under an id is replaced, not
    taken for the new receiver."""
    reused = reuse(addresses, Handler)
    if not reused:
        return False
    for newcomer in reused:
        signal.connect(newcomer, sender=sender)
    assert signal.receivers_for(sender) == reused
    assert [r for r, _ in signal.send(sender)] == reused
    signal._ledger.check()
    return True


def test_new_receiver_at_a_dead_receivers_address_is_not_a_duplicate(
    with_reused_address: Callable[[Callable[..., bool]], None],
) -> None:
    def scenario(reuse: Callable[..., Any]) -> bool:
        signal = Signal()
        receivers = connected_handlers(signal, None)
        addresses = {id(receiver) for receiver in receivers}
        del receivers
        return connects_at(reuse, addresses, signal, None)

    with_reused_address(scenario)


def test_sender_that_cannot_be_weakly_referenced_is_kept_alive() -> None:
    class SlottedSender:
        __slots__ = ()

    signal = Signal()
    handler = Handler()
    sender = SlottedSender()
    address = id(sender)
    signal.connect(handler, sender=sender)
    del sender
    gc.collect()
    [connection] = signal.connections()
    assert id(connection.sender) == address
    assert len(signal.send(connection.sender)) == 1


def test_weak_sender_is_not_kept_alive_by_sends() -> None:
    signal = Signal(use_caching=True)
    handler = Handler()
    sender = Model()
    collected: list[bool] = []
    weakref.finalize(sender, collected.append, True)
    signal.connect(handler, sender=sender)
    for _ in range(3):
        signal.send(sender)
    signal.send(Model())  # a sender nobody listens to is not remembered either
    del sender
    gc.collect()
    assert collected == [True]


# -- 6. the silent-failure trap ------------------------------------------------------------


@contextlib.contextmanager
def recorded_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()


def connect_nested_function(signal: Signal) -> None:
    def on_save(**kwargs: Any) -> None: ...

    signal.connect(on_save)


def test_function_collected_before_any_send_warns() -> None:
    signal = Signal(name="saved")
    with recorded_warnings() as caught:
        connect_nested_function(signal)
    [warning] = caught
    assert warning.category is ReceiverCollectedWarning
    assert issubclass(ReceiverCollectedWarning, UserWarning)
    message = str(warning.message)
    assert "connect_nested_function.<locals>.on_save" in message
    assert "test_weak.py" in message  # where it was defined
    assert "<Signal 'saved'>" in message
    assert "weak=False" in message
    assert signal.connections() == []


@pytest.mark.parametrize(
    "make",
    [lambda: lambda **kwargs: None, lambda: functools.partial(lambda tag, **kwargs: None, "t")],
    ids=["lambda", "partial"],
)
def test_lambda_and_partial_collected_before_any_send_warn(make: Callable[[], Any]) -> None:
    signal = Signal(name="saved")
    with recorded_warnings() as caught:
        signal.connect(make())
    assert [w.category for w in caught] == [ReceiverCollectedWarning]
    assert "<lambda>" in str(caught[0].message)


def test_sent_before_connect_but_not_after_still_warns() -> None:
    signal = Signal()
    signal.send(None)
    with recorded_warnings() as caught:
        connect_nested_function(signal)
    assert [w.category for w in caught] == [ReceiverCollectedWarning]


@pytest.mark.parametrize("sender", [None, "someone else"])
def test_receiver_that_had_a_chance_to_run_is_collected_silently(sender: object) -> None:
    signal = Signal()
    with recorded_warnings() as caught:
        receiver = _function()
        signal.connect(receiver)
        signal.send(sender)
        del receiver
    assert caught == []
    assert signal.connections() == []


def test_has_listeners_does_not_count_as_a_send() -> None:
    signal = Signal()
    with recorded_warnings() as caught:
        receiver = _function()
        signal.connect(receiver)
        assert signal.has_listeners()
        del receiver
    assert [w.category for w in caught] == [ReceiverCollectedWarning]


@pytest.mark.parametrize("make", [Handler, _bound_method], ids=["callable object", "bound method"])
def test_objects_and_bound_methods_dying_with_their_owner_are_silent(
    make: Callable[[], Any],
) -> None:
    signal = Signal()
    with recorded_warnings() as caught:
        signal.connect(make())
    assert caught == []
    assert signal.connections() == []


def test_disconnected_receiver_is_collected_silently() -> None:
    signal = Signal()
    with recorded_warnings() as caught:
        receiver = _function()
        signal.connect(receiver)
        signal.disconnect(receiver)
        del receiver
    assert caught == []


def test_strong_receiver_never_warns() -> None:
    signal = Signal()
    with recorded_warnings() as caught:
        receiver = _function()
        signal.connect(receiver, weak=False)
        signal.disconnect(receiver)
        del receiver
    assert caught == []


def test_warning_turned_into_an_error_is_raised_by_the_next_call(
    unraisable: Unraisable,
) -> None:
    """A garbage-collector callback cannot raise: under ``-W error`` the warning comes out of
    the signal's next call instead, before it does anything, where a test can catch it."""
    signal = Signal(name="s")
    keeper = Handler()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with unraisable():  # nothing at all may be unraisable
            connect_nested_function(signal)
            gc.collect()
        with pytest.raises(ReceiverCollectedWarning, match="on_save"):
            signal.connect(keeper)
        assert signal.connections() == []  # the raising call changed nothing
        signal.connect(keeper)  # raised once: the next call goes through
    assert signal.receivers_for(None) == [keeper]
    assert signal._ledger.anyone.keys() == {id(keeper)}


def test_bound_method_of_an_object_without_weakrefs_asks_for_weak_false() -> None:
    class Slotted:
        __slots__ = ()

        def on(self, **kwargs: Any) -> None: ...

    signal = Signal(name="s")
    with pytest.raises(TypeError, match=r"Slotted\.on cannot be weakly referenced.*weak=False"):
        signal.connect(Slotted().on)
    assert signal.connections() == []


def drop_where_callbacks_cannot_run(holder: list[Any]) -> None:
    """Empty ``holder`` at the deepest frame Python allows, where CPython 3.12 and later
    cannot call a Python weakref callback: the callbacks of what dies there are lost."""

    def deepest(depth: int = 0) -> int:
        try:
            return deepest(depth + 1)
        except RecursionError:
            return depth

    # Python grants extra frames to a handler of RecursionError, so the drop must happen at
    # the deepest frame reached without raising one: found first, then reached again.
    limit = deepest()

    def dive(depth: int) -> None:
        if depth < limit:
            dive(depth + 1)
        else:
            del holder[:]  # a statement, not a call: it needs no frame of its own

    dive(0)


@pytest.mark.parametrize("for_sender", [False, True], ids=["any sender", "one sender"])
def test_a_lost_callback_never_shadows_a_new_receiver_at_the_same_address(
    for_sender: bool,
    with_reused_address: Callable[[Callable[..., bool]], None],
    unraisable: Unraisable,
) -> None:
    """Receivers dying at the recursion limit: CPython 3.12+ cannot run their callbacks."""
    sender = Model() if for_sender else None

    def scenario(reuse: Callable[..., Any]) -> bool:
        signal = Signal()
        holder = connected_handlers(signal, sender)
        addresses = {id(receiver) for receiver in holder}
        with unraisable(RecursionError) as lost:
            drop_where_callbacks_cannot_run(holder)
        if not lost:
            pytest.skip("this CPython runs weakref callbacks even at the recursion limit")
        return connects_at(reuse, addresses, signal, sender)

    with_reused_address(scenario)


@pytest.mark.parametrize("for_sender", [False, True], ids=["any sender", "one sender"])
def test_a_failed_callback_never_shadows_a_new_receiver_at_the_same_address(
    for_sender: bool,
    with_reused_address: Callable[[Callable[..., bool]], None],
    callbacks_lost: Callable[[Signal], Any],
) -> None:
    sender = Model() if for_sender else None

    def scenario(reuse: Callable[..., Any]) -> bool:
        signal = Signal()
        receivers = connected_handlers(signal, sender)
        addresses = {id(receiver) for receiver in receivers}
        with callbacks_lost(signal) as unraisable:
            del receivers
        assert {type(u.exc_value) for u in unraisable} == {RecursionError}
        return connects_at(reuse, addresses, signal, sender)

    with_reused_address(scenario)


@pytest.mark.parametrize("weak", [True, False], ids=["weak receiver", "strong receiver"])
def test_a_receiver_freed_with_its_sender_is_freed_at_once_and_outside_the_lock(
    weak: bool,
) -> None:
    """No cycle keeps the receiver for the cyclic collector, which could run its finalizer
    anywhere, even while the signal's lock is held."""
    signal = Signal()
    seen: list[bool] = []

    class Receiver:
        def __call__(self, **kwargs: Any) -> None: ...

        def __del__(self) -> None:
            seen.append(signal._ledger.lock.locked())
            signal.has_listeners()  # would deadlock if run under the signal's lock

    sender = Model()
    receiver = Receiver()
    signal.connect(receiver, sender=sender, weak=weak)
    signal.send(sender)
    if weak:
        kept = receiver  # a weak receiver outlives the sender only while something keeps it
    del receiver
    gc.disable()  # only reference counting may free it now
    try:
        del sender
        if weak:
            del kept
        assert seen == [False]
    finally:
        gc.enable()
    assert signal.connections() == []
