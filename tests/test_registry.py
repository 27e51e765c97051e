"""The registry of live signals: observers that see sends, and settings across signals."""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any

import pytest

from tocsin import Signal, _registry


def on_any(**kwargs: Any) -> str:
    return "heard"


class Log:
    """An observer that records what it sees."""

    def __init__(self) -> None:
        self.seen: list[tuple[Signal, object, dict[str, Any], str]] = []

    def __call__(
        self, signal: Signal, sender: object, named: Mapping[str, Any], method: str
    ) -> None:
        self.seen.append((signal, sender, dict(named), method))


def test_an_observer_sees_every_send_method_with_its_arguments() -> None:
    signal = Signal(name="s")
    log = Log()
    with _registry.observe(log, signal):
        signal.send("a", x=1)
        signal.send_robust("b", y=2)
    assert log.seen == [(signal, "a", {"x": 1}, "send"), (signal, "b", {"y": 2}, "send_robust")]


async def _asends(signal: Signal) -> None:
    await signal.asend("a", x=1)
    await signal.asend_robust("b")


def test_an_observer_sees_async_sends() -> None:
    import asyncio

    signal = Signal()
    log = Log()
    with _registry.observe(log, signal):
        asyncio.run(_asends(signal))
    assert [(s, m) for _, s, _, m in log.seen] == [("a", "asend"), ("b", "asend_robust")]


def test_an_observer_sees_sends_nobody_listens_to_and_stops_when_closed() -> None:
    signal = Signal()
    log = Log()
    observation = _registry.observe(log, signal)
    signal.send(None)
    observation.close()
    observation.close()  # a second close does nothing
    signal.send(None)
    assert len(log.seen) == 1


def test_an_observer_of_every_signal_sees_signals_created_later() -> None:
    log = Log()
    with _registry.observe(log):
        later = Signal()
        later.send("x")
    assert (later, "x", {}, "send") in log.seen


def test_an_observer_runs_before_receivers_and_its_error_stops_the_send() -> None:
    signal = Signal()
    heard: list[str] = []

    def receiver(**kwargs: Any) -> None:
        heard.append("receiver")

    def refuse(*args: Any) -> None:
        heard.append("observer")
        raise ValueError("no")

    signal.connect(receiver)
    with _registry.observe(refuse, signal), pytest.raises(ValueError):
        signal.send(None)
    assert heard == ["observer"]
    assert signal.send(None) == [(receiver, None)]


def test_an_observer_sees_checked_arguments_only(strict_everywhere: None) -> None:
    signal = Signal(arguments=["x"])
    log = Log()
    with _registry.observe(log, signal), pytest.raises(TypeError, match="unexpected"):
        signal.send(None, y=1)
    assert log.seen == []


def test_an_observer_of_a_dead_signal_is_forgotten() -> None:
    signal = Signal()
    observation = _registry.observe(Log(), signal)  # holds the signal until dropped
    key = id(signal)
    del signal, observation
    gc.collect()
    _registry.live_signals()  # prunes
    assert key not in _registry._particular


def test_live_signals_lists_signals_in_creation_order() -> None:
    first, second = Signal(), Signal()
    signals = _registry.live_signals()
    assert signals.index(first) < signals.index(second)


def test_a_dead_signals_strong_receivers_go_with_it() -> None:
    """The registry holds signals and their ledgers weakly: nothing keeps a dead signal's
    strongly connected receivers alive."""
    import weakref

    class Receiver:
        def __call__(self, **kwargs: Any) -> None: ...

    signal = Signal()
    receiver = Receiver()
    signal.connect(receiver, weak=False)
    signal.send(None)
    alive = weakref.ref(receiver)
    del signal, receiver
    gc.collect()
    assert alive() is None
