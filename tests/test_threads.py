"""Threads: concurrent connect, disconnect and send, and weak-reference callbacks that fire
while the signal's lock is held."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

from tocsin import Signal

THREADS = 4


class Handler:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def __call__(self, **kwargs: Any) -> str:
        self.calls += 1
        return self.name

    def __repr__(self) -> str:
        return f"Handler({self.name!r})"


def run_in_threads(work: Callable[[int], None], count: int = THREADS) -> None:
    """Start ``count`` threads at once (behind a barrier); re-raise the first failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(index)
        except BaseException as error:  # reported to the test below
            errors.append(error)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck: deadlock?"
    if errors:
        raise errors[0]


def test_concurrent_connect_disconnect_and_send_lose_nothing() -> None:
    signal = Signal()
    keepers = [[Handler(f"{t}-{i}") for i in range(300)] for t in range(THREADS)]

    def work(index: int) -> None:
        mine = keepers[index]
        for i, handler in enumerate(mine):
            signal.connect(handler)
            signal.send(None)
            if i % 2:
                assert signal.disconnect(handler) is True
            signal.has_listeners()

    run_in_threads(work)
    expected = {h.name for group in keepers for i, h in enumerate(group) if i % 2 == 0}
    names = [c.receiver.name for c in signal.connections()]  # type: ignore[attr-defined]
    assert len(names) == len(expected)
    assert set(names) == expected


def test_concurrent_connects_of_one_receiver_make_one_connection() -> None:
    signal = Signal()
    handler = Handler("only")

    def work(index: int) -> None:
        for _ in range(500):
            signal.connect(handler)
            signal.connect(handler, sender="x")

    run_in_threads(work)
    assert len(signal.connections()) == 2
    assert signal.send("x") == [(handler, "only"), (handler, "only")]


def test_sends_during_churn_call_each_receiver_at_most_once() -> None:
    signal = Signal()
    stable = Handler("stable")
    signal.connect(stable)
    stop = threading.Event()

    def work(index: int) -> None:
        if index == 0:
            try:
                for i in range(2_000):
                    extra = Handler(f"extra-{i}")
                    signal.connect(extra)
                    signal.disconnect(extra)
            finally:
                stop.set()
        else:
            for _ in range(100_000):
                receivers = [r for r, _ in signal.send(None)]
                assert receivers.count(stable) == 1
                assert len(receivers) == len(set(map(id, receivers)))
                if stop.is_set():
                    break

    run_in_threads(work)
    assert signal.send(None) == [(stable, "stable")]


def test_receivers_collected_in_other_threads_are_cleaned_up(
    assert_no_bookkeeping: Callable[[Signal], None],
) -> None:
    signal = Signal()

    def work(index: int) -> None:
        for i in range(500):
            handler = Handler("temp")
            signal.connect(handler)
            signal.send(None)
            del handler
            if index == 0 and i % 50 == 0:
                gc.collect()

    run_in_threads(work)
    gc.collect()
    assert signal.connections() == []
    assert_no_bookkeeping(signal)


def test_callback_while_this_thread_holds_the_lock_does_not_deadlock(
    assert_no_bookkeeping: Callable[[Signal], None],
) -> None:
    signal = Signal()
    handler = Handler("dies")
    signal.connect(handler)
    signal.send(None)
    done = threading.Event()

    def hold_lock_and_collect() -> None:
        nonlocal handler
        signal._ledger.lock.acquire()
        try:
            del handler  # the weakref callback fires right here, with the lock held
            gc.collect()
        finally:
            signal._ledger.lock.release()
        done.set()

    worker = threading.Thread(target=hold_lock_and_collect)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set(), "deadlock in the weak-reference callback"
    assert signal.connections() == []  # finishes the cleanup the callback left behind
    assert_no_bookkeeping(signal)


def test_callback_while_another_thread_holds_the_lock_does_not_wait(
    assert_no_bookkeeping: Callable[[Signal], None],
) -> None:
    signal = Signal()
    handler = Handler("dies")
    signal.connect(handler)
    signal.send(None)
    locked, collected = threading.Event(), threading.Event()

    def holder() -> None:
        signal._ledger.lock.acquire()
        try:
            locked.set()
            assert collected.wait(timeout=10)
        finally:
            signal._ledger.lock.release()

    thread = threading.Thread(target=holder)
    thread.start()
    assert locked.wait(timeout=10)
    del handler  # would block forever if the callback waited for the lock
    collected.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert signal.send(None) == []  # the next call finishes the cleanup the callback left
    assert_no_bookkeeping(signal)


def test_deferred_sender_cleanup_never_confuses_a_reused_address(
    with_reused_address: Callable[[Callable[..., bool]], None],
) -> None:
    """While the lock is held, a dead sender's route is still in the plan: the id alone must
    not match a new object that took the dead sender's memory."""

    class Model:
        pass

    def scenario(reuse: Callable[..., Any]) -> bool:
        signal = Signal()
        handler = Handler("for the old senders")
        senders = [Model() for _ in range(100)]
        for sender in senders:
            signal.connect(handler, sender=sender)
            signal.send(sender)
        addresses = {id(sender) for sender in senders}
        signal._ledger.lock.acquire()  # as if another thread were connecting right now
        try:
            del senders, sender
            reused = reuse(addresses, Model)
            if not reused:
                return False
            assert signal._ledger.dead, "the cleanup should be waiting for the lock"
            for newcomer in reused:
                assert signal.send(newcomer) == []
                assert signal.has_listeners(newcomer) is False
        finally:
            signal._ledger.lock.release()
        signal.connect(Handler("next"), weak=False)  # any locked operation finishes the cleanup
        assert not signal._ledger.dead
        assert [c.sender for c in signal.connections()] == [None]
        signal._ledger.check()
        return True

    with_reused_address(scenario)
