"""The pytest plugin, loaded by pytest through the ``pytest11`` entry point named ``tocsin``.

- the fixture ``tocsin_capture``: a ``tocsin.testing.Capture`` of every signal for the test;
- the marker ``@pytest.mark.tocsin_muted(*signals)``: those signals (all when none) are muted
  from the test's setup to the end of its teardown;
- the option ``--tocsin-leaks`` (or the ini setting ``tocsin_leaks = true``): a test that
  leaves a receiver connected that was not connected when it started errors at teardown,
  naming the signal and the receiver.

It also has pytest rewrite ``tocsin.testing``'s assertions. This is the only module of tocsin
that imports pytest; disable it with ``-p no:tocsin``.
"""

from __future__ import annotations

import gc
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, ExitStack
from functools import partial
from types import MethodType
from typing import Any

import pytest

# Before tocsin.testing is first imported, or the rewrite cannot apply.
pytest.register_assert_rewrite("tocsin.testing")

from tocsin import Connection, Signal, _snapshot  # noqa: E402
from tocsin._references import describe_receiver, safe_repr  # noqa: E402
from tocsin.testing import Capture, capture, muted  # noqa: E402

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "tocsin_capture",
]

_MUTED = pytest.StashKey[ExitStack]()
_BEFORE = pytest.StashKey[_snapshot.Inventory]()
_FAILED = pytest.StashKey[bool]()

_LEAKS_HELP = (
    "fail a test (as an error at teardown) that leaves a receiver connected to a signal that "
    "was not connected when it started"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tocsin")
    group.addoption("--tocsin-leaks", action="store_true", default=False, help=_LEAKS_HELP)
    parser.addini("tocsin_leaks", type="bool", default=False, help=_LEAKS_HELP)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tocsin_muted(*signals): mute these tocsin signals (every signal when none is given) "
        "for the test, from its setup to its teardown",
    )
    if config.getoption("tocsin_leaks") or config.getini("tocsin_leaks"):
        config.pluginmanager.register(_LeakCheck(), "tocsin-leaks")


@pytest.fixture
def tocsin_capture() -> Iterator[Capture]:
    """A ``tocsin.testing.Capture`` recording every send of every signal, from the moment the
    fixture is set up to the end of the test."""
    with capture() as captured:
        yield captured


# -- the tocsin_muted marker --------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    markers = list(item.iter_markers("tocsin_muted"))
    refused = None
    if markers:
        stack = item.stash[_MUTED] = ExitStack()
        try:
            for marker in markers:
                stack.enter_context(_muted_by(marker))
        except TypeError as error:
            refused = error
    result = yield
    # Raised only now: pytest's teardown expects its own setup to have run.
    if refused is not None:
        raise refused
    return result


def _muted_by(marker: pytest.Mark) -> AbstractContextManager[None]:
    if marker.kwargs:
        raise TypeError(
            f"@pytest.mark.tocsin_muted takes signals only; got the keyword arguments "
            f"{', '.join(marker.kwargs)}"
        )
    try:
        return muted(*marker.args)
    except TypeError as error:
        raise TypeError(f"@pytest.mark.tocsin_muted: {error}") from None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        stack = item.stash.get(_MUTED, None)
        if stack is not None:
            stack.close()


# -- the leak check -----------------------------------------------------------------------------


class _LeakCheck:
    """Registered when leaks are checked. Remembers the connections at the start of each test
    and compares after its teardown, by identity of (signal, receiver, sender).

    Fixtures of a wider scope than the test (class, module, package, session) may connect
    receivers during the test's setup that stay connected for the tests that follow: those
    are not the test's leaks, so what their setup connects is left out.
    """

    def __init__(self) -> None:
        self._wider: list[_snapshot.Inventory] = []

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        self._wider = []
        item.stash[_BEFORE] = _snapshot.take()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        if fixturedef.scope == "function":
            return (yield)
        before = _snapshot.take()
        try:
            return (yield)
        finally:
            self._wider.append(_snapshot.remember(_snapshot.added_since(before)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and call.when in ("setup", "call"):
            item.stash[_FAILED] = True
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        result = yield
        before = item.stash.get(_BEFORE, None)
        # A failed test is reported already, and its traceback keeps its locals (and the
        # receivers among them) alive: checking it would only add noise.
        if before is None or item.stash.get(_FAILED, False):
            return result
        if _snapshot.added_since(before, *self._wider):
            # Signals and receivers in reference cycles may only be waiting for a collection
            # (the list above is dropped first: it holds them).
            gc.collect()
            leaks = _snapshot.added_since(before, *self._wider)
            if leaks:
                pytest.fail(_leak_report(item, leaks), pytrace=False)
        return result


def _leak_report(item: pytest.Item, leaks: list[tuple[Signal, Connection]]) -> str:
    count = "a receiver" if len(leaks) == 1 else f"{len(leaks)} receivers"
    lines = [f"{item.nodeid} left {count} connected (--tocsin-leaks):"]
    for signal, connection in leaks:
        sender = (
            "any sender" if connection.sender is None else f"sender {safe_repr(connection.sender)}"
        )
        uid = (
            ""
            if connection.dispatch_uid is None
            else f", dispatch_uid {safe_repr(connection.dispatch_uid)}"
        )
        lines.append(f"  {signal!r}: {_name(connection.receiver)} ({sender}{uid})")
    lines.append(
        f"Disconnect {'it' if len(leaks) == 1 else 'them'} before the test ends: connect with "
        "signal.connected_to(receiver), or run the test in tocsin.testing.isolated()."
    )
    return "\n".join(lines)


def _name(receiver: object) -> str:
    """A receiver's name for the report, as tocsin names receivers everywhere; a bound
    method also names its instance, which tells the leaking test's objects apart."""
    if isinstance(receiver, MethodType):
        return f"{describe_receiver(receiver)} of {safe_repr(receiver.__self__)}"
    if isinstance(receiver, partial) or isinstance(getattr(receiver, "__qualname__", None), str):
        return describe_receiver(receiver)
    return safe_repr(receiver)  # a callable object: its repr tells instances apart
