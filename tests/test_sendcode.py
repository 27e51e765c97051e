"""The send functions compiled per signal: frame depth, what a send holds, generated source,
installation, and the incremental plan."""

from __future__ import annotations

import gc
import linecache
import sys
import traceback
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any
from unittest import mock

import pytest

from tocsin import Signal, _sendcode


class Model:
    """A sender."""


def frames_seen(depth: int) -> tuple[list[FrameType], Callable[..., None]]:
    """A receiver recording ``sys._getframe(depth)`` at each call, and what it recorded."""
    seen: list[FrameType] = []

    def receiver(**kwargs: Any) -> None:
        seen.append(sys._getframe(depth))

    return seen, receiver


def others(count: int) -> list[Callable[..., None]]:
    def make() -> Callable[..., None]:
        def other(**kwargs: Any) -> None:
            return None

        return other

    return [make() for _ in range(count)]


# -- frame depth -----------------------------------------------------------------------------


SITUATIONS = [
    "first send",
    "steady",
    "first send after a change",
    "for a particular sender",
    "other names than compiled",
    "two receivers",
    "three receivers",
    "five receivers",
    "twelve receivers",
    "the number of its first send",
    "more receivers than when first sent",
    "with an async receiver",
]

# The unrolled shapes: every send has them up to twelve receivers; past that, a send gets one
# more, for the number of receivers its signal had at its first send; any other number takes
# the loop.
COUNTS = {
    "two receivers": 2,
    "three receivers": 3,
    "five receivers": 5,
    "twelve receivers": 12,
    "the number of its first send": 40,
    "more receivers than when first sent": 40,
}


def prepare(situation: str, method: str, receiver: Callable[..., None]) -> tuple[Signal, Any]:
    """A signal set up for ``situation``; returns it and the sender to send from."""
    signal = Signal()
    keep = others(50)
    sender: object = None
    if situation == "for a particular sender":
        sender = Model()
        signal.connect(receiver, sender=sender)
        signal.connect(keep[0])
    elif situation in COUNTS:
        for other in keep[: COUNTS[situation] - 1]:
            signal.connect(other)
        signal.connect(receiver)
    elif situation == "with an async receiver":

        async def waits(**kwargs: Any) -> None:
            return None

        keep.append(waits)  # type: ignore[arg-type]
        signal.connect(waits)
        signal.connect(receiver)
    else:
        signal.connect(receiver)
    if situation != "first send":
        getattr(signal, method)(sender, order=1)  # compiles the send for (order,)
    if situation == "first send after a change":
        signal.connect(keep[1])
    if situation == "more receivers than when first sent":
        signal.connect(keep[-1])
        getattr(signal, method)(sender, order=1)  # publishes; 41 receivers take the loop
    signal.keep = keep  # type: ignore[attr-defined]
    return signal, sender


@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("method", ["send", "send_robust"])
def test_exactly_one_frame_stands_between_the_caller_and_a_receiver(
    situation: str, method: str
) -> None:
    """As in django.dispatch: a receiver's sys._getframe(2) is the frame that called send."""
    seen, receiver = frames_seen(2)
    signal, sender = prepare(situation, method, receiver)
    seen.clear()
    named = {"other": 2} if situation == "other names than compiled" else {"order": 1}
    here = sys._getframe()
    getattr(signal, method)(sender, **named)
    assert seen == [here]


def test_a_receivers_warning_with_djangos_stacklevel_points_at_the_sending_line() -> None:
    signal = Signal()

    def deprecated(**kwargs: Any) -> None:
        # 1: this receiver, 2: the send, 3: the code that sent (Django's own receivers
        # count the same way).
        warnings.warn("old setting", DeprecationWarning, stacklevel=3)

    signal.connect(deprecated)
    for _ in range(2):  # the first send, then the compiled one
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            line = sys._getframe().f_lineno + 1
            signal.send(None, setting="x")
        [warning] = caught
        assert (warning.filename, warning.lineno) == (__file__, line)


# -- what a send holds -----------------------------------------------------------------------


@pytest.mark.parametrize("grown", [False, True], ids=["as first sent", "grown since"])
@pytest.mark.parametrize("total", [2, 3, 4, 5, 6, 9, 12, 13, 40])
@pytest.mark.parametrize("method", ["send", "send_robust"])
def test_a_receiver_dropping_the_last_reference_to_a_later_one_does_not_skip_it(
    total: int, method: str, grown: bool
) -> None:
    """Every receiver alive when a send starts is called by it, even one that the receivers
    before it let die: in every unrolled shape and in the loop (where the signal has grown
    since its first send, past the shapes every send has)."""
    signal = Signal()
    called: list[str] = []
    held: dict[str, Callable[..., None]] = {}

    def killer(**kwargs: Any) -> None:
        called.append("killer")
        held.clear()  # the only reference to the last receiver

    def victim(**kwargs: Any) -> None:
        called.append("victim")

    fillers = others(total - 2)
    signal.connect(killer)
    for filler in fillers:
        signal.connect(filler)
    if grown:
        getattr(signal, method)(None, order=0)  # compiled for one receiver fewer
        called.clear()
    held["victim"] = victim
    signal.connect(victim)
    del victim
    responses = getattr(signal, method)(None, order=1)
    assert called == ["killer", "victim"]
    assert len(responses) == total
    del responses  # the last reference to the victim
    gc.collect()
    called.clear()
    getattr(signal, method)(None, order=2)
    assert called == ["killer"]  # gone once the send that held it was over


def test_a_send_resolves_async_receivers_before_the_sync_ones_run() -> None:
    import asyncio

    signal = Signal()
    called: list[str] = []
    held: dict[str, Any] = {}

    def killer(**kwargs: Any) -> None:
        held.clear()

    async def victim(**kwargs: Any) -> None:
        called.append("victim")

    held["victim"] = victim
    signal.connect(killer)
    signal.connect(victim)
    del victim
    signal.send(None)
    assert called == ["victim"]
    asyncio.set_event_loop_policy(None)


# -- the generated source ----------------------------------------------------------------------


def test_generated_send_functions_are_in_linecache() -> None:
    signal = Signal()

    def fails(**kwargs: Any) -> None:
        raise LookupError("from a receiver")

    signal.connect(fails)
    with pytest.raises(LookupError):
        signal.send(None, order=1)  # the first send compiles the signal's own
    with pytest.raises(LookupError) as raised:
        signal.send(None, order=1)
    frames = traceback.extract_tb(raised.value.__traceback__)
    [send_frame] = [frame for frame in frames if frame.filename.startswith("<tocsin send(")]
    assert send_frame.filename == "<tocsin send(order)>"
    assert "fails" not in send_frame.line  # the generated code names no receiver...
    assert "order=order" in send_frame.line  # ...but shows the call, keywords spelled out
    for filename in _sendcode.generated_files():
        assert linecache.getlines(filename), filename


def test_the_class_methods_are_generated_and_in_linecache_too() -> None:
    assert Signal.send.__qualname__ == "Signal.send"
    assert Signal.send.__code__.co_filename == "<tocsin Signal.send>"
    assert "def send(self, /, sender, **named):" in "".join(
        linecache.getlines("<tocsin Signal.send>")
    )


def test_no_argument_name_can_shadow_the_send_functions_own_names() -> None:
    signal = Signal()

    def echo(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    signal.connect(echo)
    own = {name: name for name in _sendcode._OWN_NAMES if _sendcode.compilable(name)}
    for _ in range(2):
        [(_, received)] = signal.send(None, **own)
        assert received == {"signal": signal, "sender": None, **own}
        [(_, received)] = signal.send_robust(None, **own)
        assert received == {"signal": signal, "sender": None, **own}


# -- installation ----------------------------------------------------------------------------


def test_a_signal_gets_its_own_send_on_its_first_send() -> None:
    signal = Signal()
    assert "send" not in vars(signal)
    signal.send(None, order=1)
    assert vars(signal)["send"].__code__.co_filename == "<tocsin send(order)>"
    assert signal.send.__qualname__ == "Signal.send"
    assert signal.send.__doc__ == Signal.send.__doc__
    assert "send_robust" not in vars(signal)  # each method on its own first call


def test_the_class_method_still_works_unbound() -> None:
    signal = Signal()

    def echo(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    signal.connect(echo)
    signal.send(None, order=1)
    [(_, received)] = Signal.send(signal, None, order=2)
    assert received == {"signal": signal, "sender": None, "order": 2}
    [(_, received)] = Signal.send_robust(signal, "x")
    assert received == {"signal": signal, "sender": "x"}


def test_a_subclass_that_overrides_send_keeps_its_own() -> None:
    calls: list[str] = []

    class Audited(Signal):
        def send(self, sender: object, **named: Any) -> list[tuple[Any, Any]]:
            calls.append("audited")
            return super().send(sender, **named)

    signal = Audited()
    seen, receiver = frames_seen(1)
    signal.connect(receiver)
    for _ in range(3):
        signal.send(None, order=1)
    assert calls == ["audited"] * 3
    assert "send" not in vars(signal)
    assert len(seen) == 3


def test_mock_patch_object_replaces_and_restores_a_signals_send() -> None:
    signal = Signal()
    for sent_before in (False, True):
        if sent_before:
            signal.send(None, order=1)
        compiled = vars(signal).get("send")
        with mock.patch.object(signal, "send", return_value=["patched"]) as patched:
            assert signal.send(None, order=2) == ["patched"]
        patched.assert_called_once_with(None, order=2)
        assert vars(signal).get("send") is compiled
        assert signal.send(None, order=3) == []


# -- strict mode -----------------------------------------------------------------------------


def test_strict_mode_checks_each_set_of_names_once_not_each_send() -> None:
    checked: list[tuple[str, ...]] = []

    class Counting(Signal):
        def check_arguments(self, named: Any, method: str = "send") -> None:
            checked.append(tuple(named))
            super().check_arguments(named, method)

    signal = Counting(arguments=["order", "total"], strict=True)
    signal.connect(lambda **kwargs: None, weak=False)
    for _ in range(50):
        signal.send(None, order=1, total=2)
    assert 1 <= len(checked) <= 2  # when compiled, and by the first send's slow path
    assert set(checked) == {("order", "total")}
    with pytest.raises(TypeError, match="unexpected argument 'extra'"):
        signal.send(None, order=1, total=2, extra=3)  # other names: checked on every send


def test_names_that_fail_the_check_are_checked_on_every_send_once_strict() -> None:
    signal = Signal(arguments=["order"], strict=False)
    signal.connect(lambda **kwargs: None, weak=False)
    signal.send(None, wrong=1)  # compiled for names that fail the check: fine when not strict
    signal.strict = True
    for _ in range(2):
        with pytest.raises(TypeError, match="unexpected argument 'wrong'"):
            signal.send(None, wrong=1)


# -- the incremental plan ----------------------------------------------------------------------


def test_a_change_for_one_sender_keeps_the_routes_of_the_others() -> None:
    signal = Signal()
    senders = [Model() for _ in range(3)]
    receivers = others(4)
    for sender, receiver in zip(senders, receivers, strict=False):
        signal.connect(receiver, sender=sender)
        signal.send(sender)
    ledger = signal._ledger
    routes = {id(sender): ledger.routes[id(sender)] for sender in senders}
    everyone = ledger.everyone
    signal.connect(receivers[3], sender=senders[0])
    assert signal.send(senders[0])
    assert ledger.everyone is everyone  # the any-sender route was not rebuilt...
    for sender in senders[1:]:  # ...nor the other senders' routes
        assert ledger.routes[id(sender)] is routes[id(sender)]
    assert ledger.routes[id(senders[0])] is not routes[id(senders[0])]
    ledger.check()


def test_a_change_to_the_any_sender_receivers_rebuilds_every_route() -> None:
    signal = Signal()
    sender = Model()
    first, second, third = others(3)
    signal.connect(first, sender=sender)
    signal.connect(second)
    assert [r for r, _ in signal.send(sender)] == [first, second]
    signal.connect(third)
    assert [r for r, _ in signal.send(sender)] == [first, second, third]
    signal._ledger.check()


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 6, 9, 12, 40])
@pytest.mark.parametrize("method", ["send", "send_robust"])
def test_a_dead_receiver_left_in_a_route_is_skipped_at_any_size(
    total: int, method: str, callbacks_lost: Callable[[Signal], Any]
) -> None:
    signal = Signal()
    receivers = others(total)
    for receiver in receivers:
        signal.connect(receiver)
    del receiver
    getattr(signal, method)(None, order=1)
    with callbacks_lost(signal) as unraisable:
        del receivers[0]  # dies; its connection stays in the published route
    assert len(unraisable) == 1
    responses = getattr(signal, method)(None, order=2)
    assert [r for r, _ in responses] == receivers


@pytest.mark.parametrize("method", ["send", "send_robust"])
def test_an_argument_named_like_an_unrolled_shapes_local_reaches_receivers(method: str) -> None:
    signal = Signal()

    def first(receiver0: object, response1: object, **kwargs: Any) -> object:
        return (receiver0, response1)

    def second(receiver0: object, receiver1: object, **kwargs: Any) -> object:
        return (receiver0, receiver1)

    signal.connect(first)
    signal.connect(second)
    for _ in range(2):  # the class's send, then the signal's own
        responses = getattr(signal, method)(None, receiver0=42, receiver1=43, response1=44)
        assert [response for _, response in responses] == [(42, 44), (42, 43)]


# -- the unrolled shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(("total", "unrolled"), [(12, ""), (13, ", 13 unrolled"), (300, "")])
@pytest.mark.parametrize("method", ["send", "send_robust"])
def test_past_twelve_a_send_is_unrolled_for_the_receivers_of_its_first_send(
    total: int, unrolled: str, method: str
) -> None:
    """Up to a limit (far above 13, below 300): bigger shapes would cost more to compile than
    they save."""
    signal = Signal()
    receivers = others(total)
    for receiver in receivers:
        signal.connect(receiver)
    responses = getattr(signal, method)(None, order=1)
    assert vars(signal)[method].__code__.co_filename == f"<tocsin {method}(order){unrolled}>"
    assert [r for r, _ in responses] == receivers
    receivers += others(1)
    signal.connect(receivers[-1])  # now a number no shape was compiled for: the loop
    responses = getattr(signal, method)(None, order=2)
    assert [r for r, _ in responses] == receivers


@pytest.mark.parametrize("total", [1, 2, 5, 6, 12, 40])
@pytest.mark.parametrize("failing", ["first", "middle", "last"])
def test_send_robust_in_an_unrolled_shape_calls_every_receiver_and_keeps_the_order(
    total: int, failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    signal = Signal()
    index = {"first": 0, "middle": total // 2, "last": total - 1}[failing]
    error = ValueError("no stock")
    called: list[int] = []

    def make(position: int) -> Callable[..., int]:
        def receiver(**kwargs: Any) -> int:
            called.append(position)
            if position == index:
                raise error
            return position

        return receiver

    receivers = [make(position) for position in range(total)]
    for receiver in receivers:
        signal.connect(receiver)
    for order in range(2):  # the class's send_robust, then the signal's own
        called.clear()
        caplog.clear()
        responses = signal.send_robust(None, order=order)
        assert called == list(range(total))
        expected = [error if p == index else p for p in range(total)]
        assert responses == list(zip(receivers, expected, strict=True))
        [record] = caplog.records
        assert record.exc_info is not None and record.exc_info[1] is error
