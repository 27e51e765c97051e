"""Fixtures shared by the test modules."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tocsin import Signal, set_strict

T = TypeVar("T")


@pytest.fixture
def strict_everywhere() -> Iterator[None]:
    """Turn strict mode on globally for one test, and put the old setting back."""
    previous = set_strict(True)
    try:
        yield
    finally:
        set_strict(previous)


Scenario = Callable[[Callable[[int, Callable[[], T]], T | None]], bool]


@pytest.fixture
def with_reused_address() -> Callable[[Scenario[Any]], None]:
    """Run a scenario that needs a new object at a dead object's address.

    CPython usually hands a freed block to the next object of the same size, but does not
    promise to. The scenario gets ``reuse(address, make)``, which returns a new object made by
    ``make`` at ``address`` or None, and returns whether it got one; it runs again (from
    scratch) until it does, and the test is skipped, with the reason, if it never does.
    """

    def reuse(address: int, make: Callable[[], T]) -> T | None:
        gc.collect()
        newcomers = [make() for _ in range(10_000)]
        return next((obj for obj in newcomers if id(obj) == address), None)

    def run(scenario: Scenario[Any]) -> None:
        for _ in range(20):
            if scenario(reuse):
                return
        pytest.skip("CPython did not reuse a dead object's address in 20 tries (not promised)")

    return run


def _assert_no_bookkeeping(signal: Signal) -> None:
    ledger = signal._ledger
    ledger.check()
    assert ledger.anyone == {} and ledger.groups == {}, "connections left behind"


@pytest.fixture
def assert_no_bookkeeping() -> Callable[[Signal], None]:
    """A check that nothing is left of a signal's connections and its ledger is consistent."""
    return _assert_no_bookkeeping
