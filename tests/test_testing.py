"""tocsin.testing: muted, capture and its assertions, isolated, strict, SignalsTestCase."""

from __future__ import annotations

import asyncio
import gc
import inspect
import subprocess
import sys
import threading
import unittest
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tocsin import Signal, _registry, set_strict
from tocsin.testing import (
    ANY,
    Capture,
    Sent,
    SignalsTestCase,
    capture,
    isolated,
    muted,
    strict,
)

SEND_METHODS = ("send", "send_robust", "asend", "asend_robust")


def send_by(signal: Signal, method: str, sender: object = None, **named: Any) -> list[Any]:
    """Send with any of the four methods, as a plain call."""
    result = getattr(signal, method)(sender, **named)
    return asyncio.run(result) if method.startswith("a") else result


class Heard(list[tuple[str, dict[str, Any]]]):
    """Receivers that record their calls; kept by the test, so weak connections last."""

    def receiver(self, name: str) -> Callable[..., str]:
        def receive(**kwargs: Any) -> str:
            kwargs.pop("signal")
            self.append((name, kwargs))
            return name

        receive.__qualname__ = name
        return receive


# Module-level receivers outlive every test (no ReceiverCollectedWarning to think about).
def r_a(**kwargs: Any) -> str:
    return "a"


def r_b(**kwargs: Any) -> str:
    return "b"


def r_c(**kwargs: Any) -> str:
    return "c"


async def r_async(**kwargs: Any) -> str:
    return "async"


def receivers_of(signal: Signal, sender: object = None) -> list[Any]:
    return [receiver for receiver, _ in signal.send(sender)]


# -- ANY --------------------------------------------------------------------------------------


def test_any_equals_everything_and_says_so() -> None:
    assert ANY == 1 and ANY == None and object() == ANY  # noqa: E711
    assert (ANY != "x") is False
    assert repr(ANY) == "ANY"


# -- muted ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", SEND_METHODS)
def test_muted_silences_each_signal_given_and_only_those(method: str) -> None:
    first, second, other = Signal(), Signal(), Signal()
    for signal in (first, second, other):
        signal.connect(r_a)
    with muted(first, second):
        assert send_by(first, method) == []
        assert send_by(second, method) == []
        assert send_by(other, method) == [(r_a, "a")]
    assert send_by(first, method) == [(r_a, "a")]


def test_muted_without_signals_silences_every_signal_that_exists() -> None:
    existing = Signal()
    existing.connect(r_a)
    with muted():
        created_inside = Signal()
        created_inside.connect(r_b)
        assert existing.send(None) == []
        assert created_inside.send(None) == [(r_b, "b")]
    assert existing.send(None) == [(r_a, "a")]


def test_muted_ends_when_the_block_raises_and_blocks_nest() -> None:
    signal = Signal()
    signal.connect(r_a)
    block = muted(signal)
    with pytest.raises(KeyError), block:
        with block:
            assert signal.send(None) == []
        assert signal.send(None) == []
        raise KeyError
    assert signal.send(None) == [(r_a, "a")]


def test_muted_keeps_connections_made_and_removed_inside() -> None:
    signal = Signal()
    signal.connect(r_a)
    with muted(signal):
        signal.connect(r_b)
        signal.disconnect(r_a)
    assert receivers_of(signal) == [r_b]


def test_muted_as_a_decorator_mutes_each_call_only() -> None:
    signal = Signal()
    signal.connect(r_a)

    @muted(signal)
    def load(x: int) -> tuple[int, list[Any]]:
        """Load things."""
        return x, signal.send(None)

    assert load(1) == (1, [])
    assert load.__doc__ == "Load things."
    assert signal.send(None) == [(r_a, "a")]


def test_muted_decorator_without_signals_mutes_signals_existing_at_each_call() -> None:
    @muted()
    def send(signal: Signal) -> list[Any]:
        return signal.send(None)

    created_after_decorating = Signal()
    created_after_decorating.connect(r_a)
    assert send(created_after_decorating) == []


def test_muted_decorates_async_functions_for_the_whole_await() -> None:
    signal = Signal()
    signal.connect(r_a)

    @muted(signal)
    async def load() -> list[Any]:
        await asyncio.sleep(0)
        return await signal.asend(None)

    assert inspect.iscoroutinefunction(load)
    assert asyncio.run(load()) == []
    assert signal.send(None) == [(r_a, "a")]


def test_muted_refuses_what_is_not_a_signal_naming_it() -> None:
    with pytest.raises(TypeError, match=r"muted\(\) takes signals; argument 2 is 'post_save'"):
        muted(Signal(), "post_save")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"one by one"):
        muted([Signal()])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="decorates a function"):
        muted()(42)  # type: ignore[type-var]


def test_a_muted_send_is_still_captured() -> None:
    signal = Signal(name="quiet")
    heard = Heard()
    signal.connect(heard.receiver("r"), weak=False)
    with capture(signal) as sent, muted(signal):
        assert signal.send("me", x=1) == []
    assert heard == []
    assert [(s.sender, s.kwargs) for s in sent] == [("me", {"x": 1})]


# -- capture: recording -----------------------------------------------------------------------


def test_capture_records_every_send_method_with_sender_and_arguments() -> None:
    signal = Signal(name="paid")
    with capture(signal) as sent:
        for number, method in enumerate(SEND_METHODS):
            send_by(signal, method, "shop", order=number)
    assert list(sent) == [
        Sent(signal, "shop", {"order": number}, method)
        for number, method in enumerate(SEND_METHODS)
    ]


def test_capture_records_unheard_sends_and_receivers_still_run() -> None:
    heard_signal, unheard_signal = Signal(), Signal()
    heard = Heard()
    heard_signal.connect(heard.receiver("r"), weak=False)
    with capture(heard_signal, unheard_signal) as sent:
        assert heard_signal.send(None, x=1) == [(heard_signal.receivers_for()[0], "r")]
        unheard_signal.send(None)
    assert heard == [("r", {"sender": None, "x": 1})]
    assert [s.signal for s in sent] == [heard_signal, unheard_signal]


def test_capture_records_only_the_signals_given() -> None:
    watched, other = Signal(), Signal()
    with capture(watched) as sent:
        other.send(None)
        watched.send(None)
    assert [s.signal for s in sent] == [watched]


def test_capture_without_signals_records_every_signal_including_new_ones() -> None:
    existing = Signal()
    with capture() as sent:
        existing.send(None)
        created_inside = Signal()
        created_inside.send(None)
    assert [s.signal for s in sent] == [existing, created_inside]


def test_capture_records_only_while_active() -> None:
    signal = Signal()
    signal.send(None, when="before")
    with capture(signal) as sent:
        signal.send(None, when="during")
    signal.send(None, when="after")
    assert [s.kwargs["when"] for s in sent] == ["during"]


def test_capture_filters_by_sender_as_signals_match_senders() -> None:
    class Shop:
        pass

    signal = Signal()
    name = "".join(["ca", "rt"])  # equal to "cart", not the same object
    with capture(signal, sender=Shop) as shop_sends, capture(signal, sender="cart") as cart_sends:
        signal.send(Shop, n=1)
        signal.send(Shop(), n=2)  # an instance is not the class
        signal.send(name, n=3)
    assert [s.kwargs["n"] for s in shop_sends] == [1]
    assert [s.kwargs["n"] for s in cart_sends] == [3]


def test_capture_works_with_async_with() -> None:
    signal = Signal()

    async def main() -> Capture:
        async with capture(signal) as sent:
            await signal.asend(None, x=1)
        await signal.asend(None, x=2)
        return sent

    assert [s.kwargs for s in asyncio.run(main())] == [{"x": 1}]


def test_capture_records_sends_from_other_threads_whole_and_in_one_order() -> None:
    signal = Signal()
    threads, per_thread = 4, 500
    barrier = threading.Barrier(threads)

    def work(index: int) -> None:
        barrier.wait(timeout=10)
        for i in range(per_thread):
            signal.send(index, i=i)

    with capture(signal) as sent:
        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers)
    assert len(sent) == threads * per_thread
    for index in range(threads):  # each thread's sends appear in the order it made them
        assert [s.kwargs["i"] for s in sent if s.sender == index] == list(range(per_thread))


def test_a_record_keeps_the_arguments_as_sent() -> None:
    signal = Signal()
    seen: list[Mapping[str, Any]] = []
    basket = ["apple"]

    def keep(signal: Signal, sender: object, named: Mapping[str, Any], method: str) -> None:
        seen.append(named)

    with _registry.observe(keep, signal), capture(signal) as sent:
        signal.send(None, basket=basket, total=3)
    seen[0]["total"] = 99  # type: ignore[index]  # someone else changes their dict later
    assert sent[0].kwargs == {"basket": ["apple"], "total": 3}
    assert sent[0].kwargs["basket"] is basket  # values are the objects sent, not copies


def test_a_capture_is_a_sequence_with_of_and_clear() -> None:
    first, second = Signal(name="first"), Signal(name="second")
    with capture() as sent:
        first.send(None, n=0)
        second.send(None, n=1)
        first.send(None, n=2)
        assert len(sent) == 3
        assert sent[-1].kwargs == {"n": 2}
        assert [s.kwargs["n"] for s in sent[:2]] == [0, 1]
        assert [s.kwargs["n"] for s in sent.of(first)] == [0, 2]
        sent.clear()
        second.send(None, n=3)
    assert [s.kwargs["n"] for s in sent] == [3]
    assert repr(sent) == "<Capture of every signal: 1 sent>"


def test_a_capture_cannot_record_two_blocks_at_once() -> None:
    recording = capture()
    with recording, pytest.raises(RuntimeError, match="already recording"):
        recording.__enter__()
    with recording:  # after the block it can record again
        pass


def test_capture_refuses_what_is_not_a_signal() -> None:
    with pytest.raises(TypeError, match=r"capture\(\) takes signals; argument 1 is 'x' \(str\)"):
        capture("x")  # type: ignore[arg-type]


# -- capture: assertions ----------------------------------------------------------------------


class Shop:
    pass


@pytest.fixture
def order_signals() -> tuple[Signal, Signal, Capture]:
    placed = Signal(name="order_placed")
    changed = Signal(name="stock_changed")
    with capture() as sent:
        placed.send(Shop, order=41, total=5.0)
        changed.send(None, product="basil", quantity=-1)
        placed.send(Shop, order=42, total=9.5)
    return placed, changed, sent


def test_assert_sent_matches_a_subset_of_arguments_and_returns_the_last_match(
    order_signals: tuple[Signal, Signal, Capture],
) -> None:
    placed, changed, sent = order_signals
    assert sent.assert_sent(placed) is sent[2]
    assert sent.assert_sent(placed, sender=Shop, order=41) is sent[0]
    assert sent.assert_sent(placed, order=ANY, total=9.5) is sent[2]
    assert sent.assert_sent(product="basil") is sent[1]  # any signal
    assert sent.assert_sent(placed, times=2) is sent[2]
    assert sent.assert_sent(changed, times=1, sender=None) is sent[1]


def test_assert_sent_failure_lists_what_was_sent_and_the_argument_that_differed(
    order_signals: tuple[Signal, Signal, Capture],
) -> None:
    placed, _, sent = order_signals
    with pytest.raises(AssertionError) as failure:
        sent.assert_sent(placed, sender=Shop, order=42, total=10.0)
    assert str(failure.value) == (
        f"<Signal 'order_placed'> with sender={Shop!r}, order=42, total=10.0 was not sent.\n"
        "Near miss [2]: total was 9.5, not 10.0.\n"
        "What was sent (3):\n"
        f"  [0] <Signal 'order_placed'>.send(sender={Shop!r}, order=41, total=5.0)\n"
        "  [1] <Signal 'stock_changed'>.send(sender=None, product='basil', quantity=-1)\n"
        f"  [2] <Signal 'order_placed'>.send(sender={Shop!r}, order=42, total=9.5)"
    )


def test_assert_sent_failure_names_a_missing_argument_and_a_different_sender(
    order_signals: tuple[Signal, Signal, Capture],
) -> None:
    placed, _, sent = order_signals
    with pytest.raises(AssertionError, match=r"Near miss \[2\]: coupon was not sent\.\n"):
        sent.assert_sent(placed, order=42, coupon="SPRING")
    with pytest.raises(AssertionError, match=r"Near miss \[2\]: sender was .*Shop'>, not None\."):
        sent.assert_sent(placed, sender=None, order=42)


def test_assert_sent_counts_exactly_when_told_how_many_times(
    order_signals: tuple[Signal, Signal, Capture],
) -> None:
    placed, _, sent = order_signals
    with pytest.raises(
        AssertionError, match=r"^<Signal 'order_placed'> was sent 2 times, not once: \[0\], \[2\]\."
    ):
        sent.assert_sent(placed, times=1)
    with pytest.raises(ValueError, match=r"times=1 or more; got 0 \(use assert_not_sent"):
        sent.assert_sent(placed, times=0)
    with pytest.raises(ValueError, match="got True"):
        sent.assert_sent(placed, times=True)


def test_assert_sent_says_when_nothing_was_sent() -> None:
    signal = Signal(name="never")
    with capture() as sent:
        pass
    with pytest.raises(AssertionError) as failure:
        sent.assert_sent(signal, x=1)
    assert str(failure.value) == "<Signal 'never'> with x=1 was not sent.\nNothing was sent."


def test_a_long_failure_message_shows_the_last_sends() -> None:
    signal = Signal(name="tick")
    with capture(signal) as sent:
        for i in range(100):
            signal.send(None, i=i, blob="x" * 500)
    with pytest.raises(AssertionError) as failure:
        sent.assert_sent(signal, i=1000)
    message = str(failure.value)
    assert "... the first 70 not shown ..." in message
    assert "[69]" not in message and "[70] <Signal 'tick'>" in message
    assert max(len(line) for line in message.splitlines()) < 250  # long values are shortened


def test_assert_not_sent_passes_or_names_the_matching_sends(
    order_signals: tuple[Signal, Signal, Capture],
) -> None:
    placed, changed, sent = order_signals
    sent.assert_not_sent(placed, order=43)
    sent.assert_not_sent(changed, sender=Shop)
    with pytest.raises(
        AssertionError,
        match=r"^<Signal 'order_placed'> with total=9.5 was sent once: \[2\]\.\nWhat was sent",
    ):
        sent.assert_not_sent(placed, total=9.5)
    with pytest.raises(AssertionError, match=r"^A signal was sent 3 times"):
        sent.assert_not_sent()


def test_asking_about_a_signal_the_capture_does_not_record_is_an_error() -> None:
    watched, other = Signal(name="watched"), Signal(name="other")
    with capture(watched) as sent:
        other.send(None)
    for ask in (sent.assert_sent, sent.assert_not_sent, sent.of):
        with pytest.raises(ValueError, match=r"<Signal 'other'> is not recorded by this capture"):
            ask(other)
    with pytest.raises(TypeError, match=r"takes a Signal; got 'watched'"):
        sent.of("watched")  # type: ignore[arg-type]


# -- isolated ---------------------------------------------------------------------------------


def test_isolated_removes_what_was_connected_inside() -> None:
    signal = Signal()
    signal.connect(r_a)
    with isolated(signal):
        signal.connect(r_b)
        signal.connect(r_c, sender="x")
    assert receivers_of(signal) == [r_a]
    assert receivers_of(signal, "x") == [r_a]


def test_isolated_restores_what_was_disconnected_inside_in_the_original_order() -> None:
    class Model:
        pass

    signal = Signal()
    signal.connect(r_a)
    signal.connect(r_b, sender=Model, dispatch_uid="b-for-model")
    signal.connect(r_async)
    signal.connect(r_c, weak=False)
    before = signal.connections()
    with isolated(signal):
        signal.disconnect(r_a)
        signal.disconnect(dispatch_uid="b-for-model", sender=Model)
        signal.disconnect(r_c)
        signal.connect(r_c)  # again, but weakly and at the end
        signal.disconnect(r_async)
    assert signal.connections() == before


def test_isolated_restores_a_dispatch_uid_taken_by_another_receiver_inside() -> None:
    signal = Signal()
    signal.connect(r_a, dispatch_uid="uid")
    with isolated(signal):
        signal.disconnect(dispatch_uid="uid")
        signal.connect(r_b, dispatch_uid="uid")
    assert receivers_of(signal) == [r_a]


def test_isolated_restores_even_when_the_block_raises() -> None:
    signal = Signal()
    signal.connect(r_a)
    with pytest.raises(KeyboardInterrupt), isolated(signal):
        signal.disconnect(r_a)
        signal.connect(r_b)
        raise KeyboardInterrupt
    assert receivers_of(signal) == [r_a]


def test_isolated_leaves_untouched_connections_in_place() -> None:
    signal = Signal()
    signal.connect(r_a)
    signal.connect(r_b)
    with isolated(signal):
        signal.connect(r_c)
        signal.send(None)
    assert receivers_of(signal) == [r_a, r_b]


def test_isolated_keeps_weak_receivers_weak() -> None:
    signal = Signal()
    heard = Heard()
    receiver = heard.receiver("temporary")
    signal.connect(receiver)
    signal.send(None)  # it has run once: its death is not a ReceiverCollectedWarning
    probe = weakref.ref(receiver)
    with isolated(signal):
        signal.disconnect(receiver)
        del receiver
        gc.collect()
        assert probe() is None  # the snapshot does not keep it alive
    assert signal.connections() == []


def test_isolated_does_not_resurrect_a_weak_receiver_that_died_inside() -> None:
    signal = Signal()
    heard = Heard()
    receiver = heard.receiver("temporary")
    signal.connect(receiver)
    signal.connect(r_a)
    signal.send(None)
    with isolated(signal):
        del receiver
        gc.collect()
    assert receivers_of(signal) == [r_a]


def test_isolated_restores_a_strong_receiver_nobody_else_holds() -> None:
    signal = Signal()
    signal.connect(lambda **kwargs: "kept", weak=False)
    with isolated(signal):
        (connection,) = signal.connections()
        signal.disconnect(connection.receiver)
        del connection
        gc.collect()
    assert [response for _, response in signal.send(None)] == ["kept"]


def test_isolated_drops_a_connection_whose_sender_died_inside() -> None:
    class Model:
        pass

    signal = Signal()
    model = Model()
    signal.connect(r_a, sender=model)
    with isolated(signal):
        del model
        gc.collect()
    assert signal.connections() == []


def test_isolated_touches_only_the_signals_given() -> None:
    inside, outside = Signal(), Signal()
    with isolated(inside):
        inside.connect(r_a)
        outside.connect(r_a)
    assert inside.connections() == []
    assert len(outside.connections()) == 1


def test_isolated_without_signals_covers_every_existing_signal_but_not_new_ones() -> None:
    existing = Signal()
    with isolated():
        existing.connect(r_a)
        created_inside = Signal()
        created_inside.connect(r_a)
    assert existing.connections() == []
    assert len(created_inside.connections()) == 1


def test_isolated_restores_strict_choices_and_the_global_setting(global_strict_off: None) -> None:
    chose_off = Signal(arguments=["x"], strict=False)
    follows = Signal(arguments=["x"])
    with isolated():
        set_strict(True)
        chose_off.strict = True
        follows.strict = False
    assert chose_off.strict_choice is False
    assert follows.strict_choice is None
    assert follows.strict is False
    set_strict(True)
    assert follows.strict is True  # it follows the global setting again


def test_isolated_with_signals_leaves_the_global_setting_alone(global_strict_off: None) -> None:
    signal = Signal(arguments=["x"])
    with isolated(signal):
        set_strict(True)
    assert signal.strict is True


# -- strict -----------------------------------------------------------------------------------


def test_strict_without_signals_sets_the_global_setting_for_the_block(
    global_strict_off: None,
) -> None:
    follows = Signal(arguments=["x"])
    chose_off = Signal(arguments=["x"], strict=False)
    with strict():
        with pytest.raises(TypeError, match="unexpected argument 'y'"):
            follows.send(None, x=1, y=2)
        assert chose_off.send(None, y=2) == []  # its own choice wins
    assert follows.send(None, y=2) == []
    set_strict(True)
    with strict(False):
        assert follows.send(None, y=2) == []
    assert follows.strict is True


def test_strict_with_signals_restores_each_signals_own_choice() -> None:
    follows = Signal(arguments=["x"])
    chose_on = Signal(arguments=["x"], strict=True)
    untouched = Signal(arguments=["x"])
    with strict(False, follows, chose_on):
        assert chose_on.send(None, y=1) == []
        with strict(True, follows):
            assert follows.strict_choice is True
        assert follows.strict_choice is False
    assert follows.strict_choice is None
    assert chose_on.strict_choice is True
    assert untouched.strict_choice is None


def test_strict_restores_when_the_block_raises() -> None:
    signal = Signal(arguments=["x"])
    with pytest.raises(KeyError), strict(True, signal):
        raise KeyError
    assert signal.strict_choice is None


def test_strict_wants_true_or_false_before_the_signals() -> None:
    signal = Signal(name="s")
    with pytest.raises(TypeError, match=r"strict\(\) takes True or False first.*got <Signal 's'>"):
        strict(signal)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"strict\(\) takes signals; argument 1 is 's'"):
        strict(True, "s")  # type: ignore[arg-type]


# -- SignalsTestCase --------------------------------------------------------------------------


placed = Signal(name="order_placed")


class CheckoutTests(SignalsTestCase, unittest.TestCase):
    """Run by the tests below, with unittest's own machinery; some of its tests fail on purpose."""

    __test__ = False  # not for pytest to collect

    def test_sent(self) -> None:
        with self.assertSignalSent(placed, sender=Shop, order=42) as sent:
            placed.send(Shop, order=42, total=9.5)
        assert len(sent) == 1

    def test_sent_fails(self) -> None:
        with self.assertSignalSent(placed, order=42):
            placed.send(Shop, order=41)

    def test_not_sent(self) -> None:
        with self.assertSignalNotSent(placed, order=42):
            placed.send(Shop, order=41)

    def test_not_sent_fails(self) -> None:
        with self.assertSignalNotSent():
            placed.send(Shop, order=41)

    def test_error_inside_propagates(self) -> None:
        with self.assertSignalSent(placed):
            raise KeyError("from the block")

    def test_capture_lasts_until_the_test_ends(self) -> None:
        self.addCleanup(lambda: placed.send(Shop, order=2))  # cleanups run last in, first out:
        sent = self.captureSignals(placed)  # so this capture stops before the send above
        placed.send(Shop, order=1)
        assert sent.assert_sent(placed).kwargs == {"order": 1}
        CheckoutTests.captured = sent

    captured: Capture | None = None


def run_case(name: str) -> unittest.TestResult:
    result = unittest.TestResult()
    CheckoutTests(name).run(result)
    return result


def test_signals_test_case_assertions_pass() -> None:
    for name in ("test_sent", "test_not_sent", "test_capture_lasts_until_the_test_ends"):
        result = run_case(name)
        assert result.wasSuccessful(), (result.failures, result.errors)
    assert CheckoutTests.captured is not None
    assert [s.kwargs for s in CheckoutTests.captured] == [{"order": 1}]


def test_signals_test_case_failures_are_failures_with_the_details() -> None:
    result = run_case("test_sent_fails")
    [(_, report)] = result.failures
    assert "AssertionError: <Signal 'order_placed'> with order=42 was not sent." in report
    assert "Near miss [0]: order was 41, not 42." in report
    result = run_case("test_not_sent_fails")
    [(_, report)] = result.failures
    assert "A signal was sent once: [0]." in report


def test_signals_test_case_lets_errors_of_the_block_through() -> None:
    result = run_case("test_error_inside_propagates")
    assert result.failures == []
    [(_, report)] = result.errors
    assert "KeyError: 'from the block'" in report


# -- the module itself ------------------------------------------------------------------------


def test_importing_tocsin_testing_does_not_import_pytest() -> None:
    code = "import sys, tocsin.testing; print('pytest' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


class _CollectingRecords(list):  # type: ignore[type-arg]
    """Stands in for a capture's list of records: reading it runs the collector first, as an
    allocation there might."""

    def __iter__(self) -> Any:
        gc.collect()
        return super().__iter__()


class _Collected:
    def __init__(self, action: Callable[[], object]) -> None:
        self.cycle = self
        self.action = action

    def __del__(self) -> None:
        self.action()


def test_a_send_from_a_finalizer_the_collector_runs_while_a_capture_is_read_is_recorded() -> None:
    """The collector may run a finalizer while the capture's lock is held (reading its
    records allocates), and that finalizer may send a captured signal: the record is made,
    in this thread, without waiting for the lock this thread holds."""
    signal = Signal(name="s")
    with capture(signal) as sent:
        signal.send("first")
        sent._records = _CollectingRecords(sent._records)
        enabled = gc.isenabled()
        gc.disable()  # so that the garbage waits for the collection inside the region
        try:
            _Collected(lambda: signal.send("from a finalizer"))
            seen: list[object] = []
            reader = threading.Thread(target=lambda: seen.append(list(sent)), daemon=True)
            reader.start()
            reader.join(20)
            assert not reader.is_alive(), "a deadlock"
        finally:
            if enabled:
                gc.enable()
    assert [record.sender for record in sent] == ["first", "from a finalizer"]
