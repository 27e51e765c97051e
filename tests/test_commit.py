"""tocsin.commit: batches that send only when their block succeeds, and ledgers that tie
them to transactions."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest

import tocsin
from tocsin import Signal
from tocsin.commit import TransactionLedger

order_paid = Signal(name="order_paid", arguments=["order"])


@pytest.fixture
def paid(hear: Any) -> Any:
    return hear(order_paid)


def orders(heard: Any) -> list[object]:
    return [named["order"] for _, _, named in heard.events]


def test_the_sends_go_out_in_order_when_the_block_ends(paid: Any) -> None:
    with tocsin.on_commit() as batch:
        batch.send(order_paid, "shop", order=1)
        batch.send(order_paid, "shop", order=2)
        assert paid.events == []
    assert paid.events == [
        ("order_paid", "shop", {"order": 1}),
        ("order_paid", "shop", {"order": 2}),
    ]


def test_an_exception_in_the_block_discards_the_sends(paid: Any) -> None:
    with pytest.raises(ValueError), tocsin.on_commit() as batch:
        batch.send(order_paid, None, order=1)
        raise ValueError("card declined")
    assert paid.events == []


def test_an_inner_block_joins_the_outer_one(paid: Any) -> None:
    with tocsin.on_commit() as outer:
        outer.send(order_paid, None, order=1)
        with tocsin.on_commit() as inner:
            inner.send(order_paid, None, order=2)
        assert paid.events == []
        outer.send(order_paid, None, order=3)
    assert orders(paid) == [1, 2, 3]


def test_an_outer_failure_discards_what_inner_blocks_collected(paid: Any) -> None:
    with pytest.raises(RuntimeError), tocsin.on_commit():
        with tocsin.on_commit() as inner:
            inner.send(order_paid, None, order=1)
        raise RuntimeError("the whole checkout failed")
    assert paid.events == []


def test_an_inner_failure_discards_only_the_inner_sends(paid: Any) -> None:
    with tocsin.on_commit() as outer:
        outer.send(order_paid, None, order=1)
        with pytest.raises(KeyError), tocsin.on_commit() as inner:
            inner.send(order_paid, None, order=2)
            raise KeyError("coupon")
    assert orders(paid) == [1]


def test_batches_are_thread_local(paid: Any) -> None:
    """A block opened in another thread does not join this thread's open block."""
    sent_in_thread: list[list[object]] = []

    def other_thread() -> None:
        with tocsin.on_commit() as batch:
            batch.send(order_paid, None, order="from the thread")
        sent_in_thread.append(orders(paid))

    with tocsin.on_commit() as batch:
        batch.send(order_paid, None, order="from the main thread")
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(10)
    assert sent_in_thread == [["from the thread"]]
    assert orders(paid) == ["from the thread", "from the main thread"]


def test_batches_are_task_local(paid: Any) -> None:
    """Two tasks with blocks open at the same time each send their own, when each ends."""

    async def shop() -> None:
        both_open = asyncio.Barrier(2)
        first_done = asyncio.Event()

        async def first() -> None:
            async with tocsin.on_commit() as batch:
                batch.send(order_paid, None, order="first")
                await both_open.wait()
            first_done.set()

        async def second() -> None:
            async with tocsin.on_commit() as batch:
                batch.send(order_paid, None, order="second")
                await both_open.wait()
                await first_done.wait()
                assert orders(paid) == ["first"]  # not held back by this open block

        async with asyncio.timeout(10):
            await asyncio.gather(first(), second())

    asyncio.run(shop())
    assert orders(paid) == ["first", "second"]


def test_the_async_form_sends_through_asend_on_the_callers_loop() -> None:
    where: list[str] = []
    loop: list[asyncio.AbstractEventLoop] = []

    async def on_the_loop(sender: object, **kwargs: Any) -> None:
        where.append("async on the caller's loop" if asyncio.get_running_loop() is loop[0] else "?")

    def off_the_loop(sender: object, **kwargs: Any) -> None:
        # asend runs sync receivers in a worker thread: waiting for the loop cannot deadlock.
        done = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "loop is free"), loop[0])
        where.append(done.result(timeout=10))

    async def checkout() -> None:
        loop.append(asyncio.get_running_loop())
        async with tocsin.on_commit() as batch:
            batch.send(order_paid, None, order=1)

    order_paid.connect(on_the_loop)
    order_paid.connect(off_the_loop)
    try:
        asyncio.run(checkout())
    finally:
        order_paid.disconnect(on_the_loop)
        order_paid.disconnect(off_the_loop)
    assert where == ["loop is free", "async on the caller's loop"]


def test_a_receiver_error_at_the_end_propagates_and_stops_the_rest(paid: Any) -> None:
    def refuse(sender: object, order: int, **kwargs: Any) -> None:
        if order == 2:
            raise RuntimeError("mail server down")

    order_paid.connect(refuse)
    try:
        with pytest.raises(RuntimeError, match="mail server down"), tocsin.on_commit() as batch:
            for order in (1, 2, 3):
                batch.send(order_paid, None, order=order)
    finally:
        order_paid.disconnect(refuse)
    assert orders(paid) == [1, 2]


def test_strict_signals_are_checked_when_the_send_is_collected() -> None:
    strict = Signal(name="strict_one", arguments=["order"], strict=True)
    with tocsin.on_commit() as batch:
        with pytest.raises(TypeError, match="unexpected argument 'ordre'"):
            batch.send(strict, None, ordre=1)
        batch.send(strict, None, order=1)


def test_bad_sends_are_refused_at_once() -> None:
    with tocsin.on_commit() as batch:
        with pytest.raises(TypeError, match="takes the signal to send first; got 'order_paid'"):
            batch.send("order_paid", None, order=1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="argument named 'sender'"):
            batch.send(order_paid, None, sender="twice")
        with pytest.raises(TypeError, match="argument named 'signal'"):
            batch.send(order_paid, None, signal="twice")


def test_a_batch_collects_only_inside_its_block_and_serves_one_block() -> None:
    batch = tocsin.on_commit()
    with pytest.raises(RuntimeError, match="collects only inside its with block"):
        batch.send(order_paid, None, order=1)
    with batch:
        assert batch.is_open
    assert not batch.is_open
    with pytest.raises(RuntimeError, match="already used"), batch:
        pass
    with pytest.raises(RuntimeError, match="collects only inside its with block"):
        batch.send(order_paid, None, order=1)


def test_an_inner_block_outliving_its_outer_block_is_an_error(paid: Any) -> None:
    async def shop() -> None:
        inner_open = asyncio.Event()
        outer_done = asyncio.Event()

        async def background() -> None:
            async with tocsin.on_commit() as inner:
                inner.send(order_paid, None, order="late")
                inner_open.set()
                await outer_done.wait()

        async with tocsin.on_commit():
            task = asyncio.create_task(background())  # inherits the open outer batch
            await inner_open.wait()
        outer_done.set()
        with pytest.raises(RuntimeError, match="ended after the batch it was opened in"):
            async with asyncio.timeout(10):
                await task

    asyncio.run(shop())
    assert paid.events == []


# --- ledgers --------------------------------------------------------------------------------------


class Transactions:
    """A toy database session: a stack of open transactions, reported to a ledger."""

    def __init__(self, outside: Any = "wait") -> None:
        self.stack: list[str] = []
        self.ledger = TransactionLedger(
            lambda: self.stack[-1] if self.stack else None, outside=outside
        )

    def begin(self, name: str) -> None:
        if not self.stack:
            self.ledger.begin(name)
        self.stack.append(name)

    def commit(self) -> None:
        name = self.stack.pop()
        if self.stack:
            self.ledger.release(name, self.stack[-1])
        else:
            self.ledger.commit(name)

    def rollback(self) -> None:
        self.ledger.discard(self.stack.pop())


def test_a_tied_batch_waits_for_the_outermost_commit(paid: Any) -> None:
    db = Transactions()
    db.begin("main")
    with db.ledger.batch() as batch:
        batch.send(order_paid, None, order=1)
    assert paid.events == []
    db.commit()
    assert orders(paid) == [1]


def test_a_rolled_back_savepoint_drops_its_sends_and_a_released_one_keeps_them(
    paid: Any,
) -> None:
    db = Transactions()
    db.begin("main")
    with db.ledger.batch() as batch:
        batch.send(order_paid, None, order="main")
        db.begin("savepoint 1")
        batch.send(order_paid, None, order="rolled back")
        db.rollback()
        db.begin("savepoint 2")
        batch.send(order_paid, None, order="released")
        db.commit()
    db.commit()
    assert orders(paid) == ["main", "released"]


def test_a_tied_batch_ending_between_transactions_waits_for_the_next_one(paid: Any) -> None:
    db = Transactions(outside="wait")
    with db.ledger.batch() as batch:
        batch.send(order_paid, None, order=1)
    db.begin("next")
    assert paid.events == []
    db.commit()
    assert orders(paid) == [1]


def test_a_ledger_for_autocommit_sends_a_batch_ending_between_transactions(paid: Any) -> None:
    db = Transactions(outside="send")
    with db.ledger.batch() as batch:
        batch.send(order_paid, None, order=1)
    assert orders(paid) == [1]


def test_a_plain_batch_inside_a_tied_one_follows_the_transaction(paid: Any) -> None:
    db = Transactions()
    db.begin("main")
    with db.ledger.batch(), tocsin.on_commit() as plain:
        plain.send(order_paid, None, order=1)
    db.rollback()
    assert paid.events == []


def test_a_tied_batch_does_not_join_a_plain_one(paid: Any) -> None:
    db = Transactions()
    db.begin("main")
    with tocsin.on_commit(), db.ledger.batch() as tied:
        tied.send(order_paid, None, order=1)
    assert paid.events == []  # the plain block ended, the transaction has not
    db.commit()
    assert orders(paid) == [1]


def test_a_ledger_refuses_an_unknown_outside_policy() -> None:
    with pytest.raises(ValueError, match="must be 'send' or 'wait'; got 'later'"):
        TransactionLedger(lambda: None, outside="later")  # type: ignore[arg-type]


def test_the_integrations_current_runs_outside_the_ledgers_lock() -> None:
    """``current()`` is the integration's code: it may use the ledger itself."""
    asked: list[bool] = []

    def current() -> object:
        asked.append(ledger._lock.locked())
        ledger.release("savepoint", into="transaction")  # takes the lock: no deadlock
        return None

    ledger = TransactionLedger(current, outside="send")
    signal = Signal(name="s")
    heard: list[object] = []
    signal.connect(lambda sender, **kwargs: heard.append(sender), weak=False)
    with ledger.batch() as batch:
        batch.send(signal, "first")
    assert heard == ["first"]
    assert asked and not any(asked)


def test_a_failing_current_leaves_the_batch_open_with_its_sends() -> None:
    failing = True

    def current() -> object:
        if failing:
            raise ConnectionError("the database went away")
        return None

    ledger = TransactionLedger(current, outside="send")
    signal = Signal(name="s")
    heard: list[object] = []
    signal.connect(lambda sender, **kwargs: heard.append(sender), weak=False)
    batch = ledger.batch()
    batch.__enter__()
    failing = False
    batch.send(signal, "kept")
    failing = True
    with pytest.raises(ConnectionError):
        batch.__exit__(None, None, None)
    assert batch.is_open  # nothing was lost: the block can still end
    failing = False
    batch.__exit__(None, None, None)
    assert heard == ["kept"]


class Collected:
    """Garbage the cyclic collector frees (it refers to itself), whose finalizer runs
    ``action``: the collector runs such finalizers at whatever allocation triggers it."""

    def __init__(self, action: Any) -> None:
        self.cycle = self
        self.action = action

    def __del__(self) -> None:
        self.action()


def test_a_finalizer_the_collector_runs_inside_the_ledgers_lock_is_refused(
    monkeypatch: pytest.MonkeyPatch, unraisable: Any
) -> None:
    """Waiting for the lock its own thread holds would hang that thread for ever: the
    finalizer gets a RuntimeError (reported by sys.unraisablehook), and the commit it
    interrupted completes."""
    ledger = TransactionLedger(lambda: "transaction", outside="wait")
    signal = Signal(name="s")
    heard: list[object] = []
    signal.connect(lambda sender, **kwargs: heard.append(sender), weak=False)
    with ledger.batch() as batch:
        batch.send(signal, "paid")
    original = TransactionLedger._every_send

    def collecting(self: TransactionLedger) -> Any:
        gc.collect()  # the collector runs here, inside the region
        return original(self)

    monkeypatch.setattr(TransactionLedger, "_every_send", collecting)
    enabled = gc.isenabled()
    gc.disable()  # so that the garbage waits for the collection inside the region
    try:
        Collected(lambda: ledger.discard("transaction"))
        with unraisable(RuntimeError) as reported:
            finished = threading.Thread(target=ledger.commit, args=("transaction",), daemon=True)
            finished.start()
            finished.join(20)
            assert not finished.is_alive(), "a deadlock"
    finally:
        if enabled:
            gc.enable()
    monkeypatch.undo()
    [report] = reported
    assert "cannot commit or discard a transaction now" in str(report.exc_value)
    assert heard == ["paid"]
