"""Fixtures shared by the test modules."""

from __future__ import annotations

import gc
import importlib
import itertools
import queue
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from benchmarks.brokers import PostgresServer, RedisServer, Unavailable
from tocsin import Signal, set_strict
from tocsin.bridge import incoming

T = TypeVar("T")


@contextmanager
def _global_strict(enabled: bool) -> Iterator[None]:
    previous = set_strict(enabled)
    try:
        yield
    finally:
        set_strict(previous)


@pytest.fixture
def strict_everywhere() -> Iterator[None]:
    """Turn strict mode on globally for one test, and put the old setting back."""
    with _global_strict(True):
        yield


@pytest.fixture
def global_strict_off() -> Iterator[None]:
    """Turn the global strict setting off for one test (which may change it), and put the
    old setting back afterwards."""
    with _global_strict(False):
        yield


Scenario = Callable[[Callable[[Collection[int], Callable[[], T]], list[T]]], bool]


@pytest.fixture
def with_reused_address() -> Callable[[Scenario[Any]], None]:
    """Run a scenario that needs new objects at dead objects' addresses.

    CPython usually hands freed memory to the next objects of the same size, but does not
    promise to (and how depends on the version: an instance's attribute values may take a
    freed block before the next instance does). So a scenario kills many objects and calls
    ``reuse(addresses, make)``, which makes objects with ``make`` and returns those that
    landed at one of ``addresses``; the scenario returns whether it got any. It runs again,
    from scratch, until it does, and the test is skipped, with the reason, if it never does.
    """

    def reuse(addresses: Collection[int], make: Callable[[], T]) -> list[T]:
        gc.collect()
        newcomers = [make() for _ in range(20 * len(addresses) + 1_000)]
        return [obj for obj in newcomers if id(obj) in addresses]

    def run(scenario: Scenario[Any]) -> None:
        for _ in range(10):
            if scenario(reuse):
                return
        pytest.skip("CPython did not reuse a dead object's address in 10 tries (not promised)")

    return run


def _assert_no_bookkeeping(signal: Signal) -> None:
    ledger = signal._ledger
    ledger.check()
    assert ledger.anyone == {} and ledger.groups == {}, "connections left behind"


@pytest.fixture
def assert_no_bookkeeping() -> Callable[[Signal], None]:
    """A check that nothing is left of a signal's connections and its ledger is consistent."""
    return _assert_no_bookkeeping


class Site:
    """A directory on ``sys.path`` where a test writes throwaway modules and packages."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Appended to names that must differ from one test to the next: what is recorded
        # once per process (entry points loaded, say) outlives the modules themselves.
        self.tag = uuid.uuid4().hex[:8]

    def write(self, relative: str, source: str = "") -> Path:
        """Write ``source`` (dedented) to ``relative`` under the root; return its path."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()  # the import system caches directory listings
        return path

    def forget(self) -> None:
        """Take the site off ``sys.path`` and forget every module imported from it."""
        root = str(self.root)
        sys.path[:] = [entry for entry in sys.path if not entry.startswith(root)]
        for entry in [key for key in sys.path_importer_cache if key.startswith(root)]:
            del sys.path_importer_cache[entry]
        for name in [name for name, module in sys.modules.items() if self.owns(module)]:
            del sys.modules[name]
        importlib.invalidate_caches()

    def owns(self, module: object) -> bool:
        """Whether ``module`` was imported from this site."""
        locations = [getattr(module, "__file__", None) or ""]
        locations += list(getattr(module, "__path__", None) or [])
        return any(str(location).startswith(str(self.root)) for location in locations)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A fresh directory first on ``sys.path``; afterwards the path entry goes, and so does
    every module imported from it, so that tests stay independent."""
    root = tmp_path / "site"
    root.mkdir()
    site = Site(root)
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        site.forget()
        gc.collect()  # here, not later: the modules' receivers and signals die together


@pytest.fixture
def run_python(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_python(source, *flags, timeout=60)`` runs ``source`` (dedented) as a script in a
    new interpreter (``sys.executable``, with ``flags`` before the script) and returns the
    finished process, output captured as text. A script still running after ``timeout``
    seconds is killed and the test fails: a hang there is a deadlock."""
    scripts = itertools.count()

    def run(source: str, *flags: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        script = tmp_path / f"script_{next(scripts)}.py"
        script.write_text(textwrap.dedent(source), encoding="utf-8")
        try:
            return subprocess.run(
                [sys.executable, *flags, str(script)],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=tmp_path,
            )
        except subprocess.TimeoutExpired as expired:
            pytest.fail(
                f"{script.name} still ran after {timeout} s (deadlock?): {expired.stderr!r}"
            )

    return run


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


class _Unrecordable(list[Any]):
    """A ledger's list of deaths that takes none, as a weakref callback CPython could not
    run (at the recursion limit) records none."""

    def append(self, item: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")


@contextmanager
def _unraisable(*allowed: type[BaseException]) -> Iterator[list[Any]]:
    reported: list[Any] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = reported.append
    try:
        yield reported
    finally:
        sys.unraisablehook = previous_hook
    others = [report for report in reported if not isinstance(report.exc_value, allowed)]
    assert others == [], f"unraisable: {[repr(report.exc_value) for report in others]}"


@pytest.fixture
def unraisable() -> Callable[..., AbstractContextManager[list[Any]]]:
    """``with unraisable(*allowed) as reported:``: within the block, what CPython cannot raise
    (an exception in a weakref callback or a finalizer) is collected in ``reported`` (as
    ``sys.UnraisableHookArgs``) instead of failing the test; when the block ends, a report of
    an exception of none of the ``allowed`` types fails the test (with none allowed: any)."""
    return _unraisable


@contextmanager
def _callbacks_lost(signal: Signal) -> Iterator[list[Any]]:
    ledger = signal._ledger
    ledger.dead = _Unrecordable()
    try:
        with _unraisable(RecursionError) as reported:
            yield reported
    finally:
        ledger.dead = []


@pytest.fixture
def callbacks_lost() -> Callable[[Signal], AbstractContextManager[list[Any]]]:
    """``with callbacks_lost(signal) as reported:``: within the block, the signal's weakref
    callbacks fail at their first step, as CPython's do where it cannot run them, so deaths
    go unnoticed; ``reported`` gets what CPython reported about them (RecursionErrors: any
    other report fails the test)."""
    return _callbacks_lost


# -- the bridge's brokers -------------------------------------------------------------------------

Server = TypeVar("Server", RedisServer, PostgresServer)


def _serve(make: Callable[[], Server], name: str) -> Iterator[Server]:
    try:
        running = make()
    except Unavailable as reason:
        pytest.skip(f"no {name} server here: {reason}")
    with running:
        yield running


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test module's own on 127.0.0.1, stopped after its last test;
    the test is skipped, saying why, where none can run."""
    yield from _serve(RedisServer, "Redis")


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test module's own on 127.0.0.1 (a new cluster), stopped
    after its last test; the test is skipped, saying why, where none can run."""
    yield from _serve(PostgresServer, "PostgreSQL")


@pytest.fixture
def inbox() -> Callable[[Signal], queue.Queue[int]]:
    """``inbox(signal)`` connects a receiver to ``signal`` and returns the queue it puts the
    ``n`` of each send into, for sends that came through a bridge only."""

    def connect(signal: Signal) -> queue.Queue[int]:
        arrived: queue.Queue[int] = queue.Queue()

        def on_tick(sender: object, n: int, **kwargs: Any) -> None:
            if incoming() is not None:
                arrived.put(n)

        signal.connect(on_tick, weak=False)
        return arrived

    return connect
