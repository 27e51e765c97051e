"""Fixtures shared by the test modules."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tocsin import Signal, set_strict


@pytest.fixture
def strict_everywhere() -> Iterator[None]:
    """Turn strict mode on globally for one test, and put the old setting back."""
    previous = set_strict(True)
    try:
        yield
    finally:
        set_strict(previous)


class Heard:
    """What some signals delivered, in order, from any thread: (name, sender, arguments).

    ``wait_for`` blocks until a condition on the record holds, so a test can wait for a
    signal sent by another thread (a server's) without sleeping.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, object, dict[str, Any]]] = []
        self._changed = threading.Condition()

    def __call__(self, signal: Signal, sender: object, **named: Any) -> None:
        with self._changed:
            self.events.append((signal.name or "", sender, named))
            self._changed.notify_all()

    def names(self) -> list[str]:
        with self._changed:
            return [name for name, _, _ in self.events]

    def count(self, name: str) -> int:
        return self.names().count(name)

    def wait_for(self, condition: Callable[[Heard], bool], timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self), timeout):
                raise AssertionError(f"timed out waiting; heard so far: {self.names()}")


@pytest.fixture
def hear() -> Iterator[Callable[..., Heard]]:
    """``hear(*signals)`` connects a new ``Heard`` to the signals, until the test ends."""
    connected: list[tuple[Signal, Heard]] = []

    def listen(*signals: Signal) -> Heard:
        heard = Heard()
        for signal in signals:
            signal.connect(heard)
            connected.append((signal, heard))
        return heard

    yield listen
    for signal, heard in connected:
        signal.disconnect(heard)
