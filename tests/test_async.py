"""Async receivers: recognising them, asend and asend_robust, send with async receivers (from
plain sync code and from inside a running loop), errors, cancellation, context variables and
the pluggable sync/async adapters.

Every scenario runs on real asyncio and synchronises with Events and Barriers, never with
sleeps; every wait is bounded. ``run`` and ``nothing_left_behind`` fail a test that leaves a
coroutine un-awaited or a task exception un-retrieved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import gc
import inspect
import logging
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from tocsin import Signal, set_async_to_sync, set_sync_to_async

T = TypeVar("T")

WAIT = 5.0  # seconds: the bound on every wait, far beyond what any of them needs

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
trail: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("trail", default=())


@pytest.fixture(autouse=True)
def default_adapters() -> Iterator[None]:
    yield
    set_sync_to_async(None)
    set_async_to_sync(None)


class _Reports(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def nothing_left_behind() -> Iterator[None]:
    """Fail if the block leaves a never-awaited coroutine or a task exception nobody retrieved.

    Both surface late, when garbage is collected: the first as a RuntimeWarning, the second
    through a loop's exception handler, which by default logs to the "asyncio" logger (the
    loops tocsin makes for itself are reached that way).
    """
    reports = _Reports()
    logger = logging.getLogger("asyncio")
    logger.addHandler(reports)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
            gc.collect()
    finally:
        logger.removeHandler(reports)
    assert [str(warning.message) for warning in caught] == []
    assert reports.messages == []


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, failing on anything left behind and anything the loop reports."""
    reported: list[str] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reported.append(context["message"]))
        return await main

    with nothing_left_behind():
        result = asyncio.run(guarded())
    assert reported == []
    return result


def test_the_checks_catch_a_never_awaited_coroutine() -> None:
    async def forgotten() -> None: ...

    with pytest.raises(AssertionError), nothing_left_behind():
        forgotten()  # type: ignore[unused-coroutine]


def test_the_checks_catch_an_unretrieved_task_exception() -> None:
    async def fails() -> None:
        raise ValueError("nobody looks")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(fails())
        await asyncio.wait([task])
        del task

    with pytest.raises(AssertionError):
        run(main())


# -- receivers ------------------------------------------------------------------------------


def make_sync(log: list[str], name: str) -> Callable[..., str]:
    def receiver(**kwargs: Any) -> str:
        log.append(name)
        return name

    return receiver


def make_async(log: list[str], name: str) -> Callable[..., Awaitable[str]]:
    async def receiver(**kwargs: Any) -> str:
        log.append(name)
        return name

    return receiver


def make_failing(error: Exception) -> Callable[..., Awaitable[None]]:
    async def receiver(**kwargs: Any) -> None:
        raise error

    return receiver


class Waiter:
    """An async receiver that starts, then waits for ``release``; records being cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def __call__(self, **kwargs: Any) -> str:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "released"


# -- 1. recognising async receivers ---------------------------------------------------------


async def async_function(**kwargs: Any) -> str:
    return "async function"


def sync_function(**kwargs: Any) -> str:
    return "sync function"


class Handler:
    async def on_signal(self, **kwargs: Any) -> str:
        return "async method"

    def on_signal_sync(self, **kwargs: Any) -> str:
        return "sync method"


class AsyncCallable:
    def __init__(self, **kwargs: Any) -> None:
        pass

    async def __call__(self, **kwargs: Any) -> str:
        return "async __call__"


class SyncCallable:
    def __call__(self, **kwargs: Any) -> str:
        return "sync __call__"


def _mark_as_asgiref_does(func: Callable[..., T]) -> Callable[..., T]:
    """asgiref.sync.markcoroutinefunction, without asgiref: on Python 3.12+ it is
    inspect.markcoroutinefunction; before that it sets the attribute asyncio looks for."""
    if sys.version_info >= (3, 12):
        return inspect.markcoroutinefunction(func)
    func._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return func


def _returns_a_coroutine(**kwargs: Any) -> Coroutine[Any, Any, str]:
    return async_function(**kwargs)


@_mark_as_asgiref_does
def asgiref_marked(**kwargs: Any) -> Coroutine[Any, Any, str]:
    return async_function(**kwargs)


class MarkedCallable:
    @_mark_as_asgiref_does
    def __call__(self, **kwargs: Any) -> Coroutine[Any, Any, str]:
        return async_function(**kwargs)


handler = Handler()
async_callable = AsyncCallable()
marked_callable = MarkedCallable()

ASYNC_RECEIVERS = {
    "async def function": (async_function, "async function"),
    "async bound method": (handler.on_signal, "async method"),
    "object with async __call__": (async_callable, "async __call__"),
    "partial of async function": (functools.partial(async_function), "async function"),
    "partial of async method": (functools.partial(handler.on_signal), "async method"),
    "partial of async callable": (functools.partial(async_callable), "async __call__"),
    "partial of partial": (functools.partial(functools.partial(async_function)), "async function"),
    "asgiref-marked function": (asgiref_marked, "async function"),
    "object whose __call__ is asgiref-marked": (marked_callable, "async function"),
    "partial of asgiref-marked function": (functools.partial(asgiref_marked), "async function"),
}
SYNC_RECEIVERS = {
    "function": sync_function,
    "bound method": handler.on_signal_sync,
    "object with sync __call__": SyncCallable(),
    "partial of sync function": functools.partial(sync_function),
    "class with async __call__ (calling it builds an instance)": AsyncCallable,
}


@pytest.mark.parametrize(("receiver", "response"), ASYNC_RECEIVERS.values(), ids=ASYNC_RECEIVERS)
def test_async_receivers_are_recognised_at_connect(receiver: Any, response: str) -> None:
    signal = Signal(name="recognised")
    signal.connect(receiver, weak=False)
    [connection] = signal.connections()
    assert connection.is_async is True
    assert run(signal.asend(None)) == [(receiver, response)]


@pytest.mark.parametrize("receiver", SYNC_RECEIVERS.values(), ids=SYNC_RECEIVERS)
def test_sync_receivers_are_not_mistaken_for_async(receiver: Any) -> None:
    signal = Signal(name="recognised")
    signal.connect(receiver, weak=False)
    [connection] = signal.connections()
    assert connection.is_async is False


def test_a_function_returning_a_coroutine_without_a_marker_is_sync() -> None:
    # Nothing at connect time can tell; a marker is how such a function says it is async.
    signal = Signal(name="unmarked")
    signal.connect(_returns_a_coroutine)
    [connection] = signal.connections()
    assert connection.is_async is False


def test_inspect_markcoroutinefunction_marks_a_receiver_async() -> None:
    if sys.version_info < (3, 12):
        pytest.skip("inspect.markcoroutinefunction is new in Python 3.12")

    @inspect.markcoroutinefunction
    def marked(**kwargs: Any) -> Coroutine[Any, Any, str]:
        return async_function(**kwargs)

    signal = Signal(name="marked")
    signal.connect(marked)
    assert [c.is_async for c in signal.connections()] == [True]
    assert run(signal.asend(None)) == [(marked, "async function")]


def test_send_awaits_an_object_with_async_call() -> None:
    # django.dispatch treats it as sync and hands back a coroutine nobody awaits.
    signal = Signal(name="awaited")
    signal.connect(async_callable)
    with nothing_left_behind():
        assert signal.send(None) == [(async_callable, "async __call__")]


# -- 2. weak references, deduplication, senders, introspection ------------------------------


def test_async_bound_method_dies_with_its_instance() -> None:
    signal = Signal(name="weak")
    instance = Handler()
    signal.connect(instance.on_signal)
    assert run(signal.asend(None)) == [(instance.on_signal, "async method")]
    del instance
    gc.collect()
    assert signal.connections() == []
    assert run(signal.asend(None)) == []


def test_async_function_is_held_weakly() -> None:
    signal = Signal(name="weak")

    async def receiver(**kwargs: Any) -> None: ...

    signal.connect(receiver)
    assert signal.has_listeners()
    signal.send(None)  # sent once, so its death is the ordinary kind, not a warning
    del receiver
    gc.collect()
    assert not signal.has_listeners()


def test_connecting_an_async_receiver_twice_is_one_connection() -> None:
    signal = Signal(name="dedup")
    log: list[str] = []
    receiver = make_async(log, "a")
    signal.connect(receiver)
    signal.connect(receiver)
    instance = Handler()
    signal.connect(instance.on_signal)
    signal.connect(instance.on_signal)
    signal.connect(make_async(log, "uid 1"), dispatch_uid="uid", weak=False)
    signal.connect(make_async(log, "uid 2"), dispatch_uid="uid", weak=False)
    assert len(signal.connections()) == 3
    run(signal.asend(None))
    assert sorted(log) == ["a", "uid 1"]


def test_async_receivers_match_senders_like_sync_ones() -> None:
    signal = Signal(name="senders")
    log: list[str] = []

    class Model: ...

    for_model = make_async(log, "model")
    for_anyone = make_async(log, "anyone")
    signal.connect(for_model, sender=Model)
    signal.connect(for_anyone)
    run(signal.asend(Model))
    run(signal.asend("someone else"))
    assert log == ["model", "anyone", "anyone"]


def test_introspection_reports_async_receivers_after_sync_ones() -> None:
    signal = Signal(name="introspected")
    log: list[str] = []
    first_async = make_async(log, "a1")
    first_sync = make_sync(log, "s1")
    second_async = make_async(log, "a2")
    for receiver in (first_async, first_sync, second_async):
        signal.connect(receiver, weak=False)
    assert signal.has_listeners()
    assert signal.receivers_for(None) == [first_sync, first_async, second_async]
    assert [(c.receiver, c.is_async) for c in signal.connections()] == [
        (first_sync, False),
        (first_async, True),
        (second_async, True),
    ]


def test_has_listeners_sees_a_lone_async_receiver_for_its_sender() -> None:
    signal = Signal(name="introspected")
    signal.connect(async_function, sender="auth")
    assert signal.has_listeners("auth")
    assert not signal.has_listeners("other")


# -- 3. asend -------------------------------------------------------------------------------


def test_asend_without_receivers_returns_an_empty_list() -> None:
    assert run(Signal(name="empty").asend(None)) == []


def test_asend_returns_sync_pairs_then_async_pairs_in_connection_order() -> None:
    signal = Signal(name="ordered")
    log: list[str] = []
    receivers = [
        make_async(log, "a1"),
        make_sync(log, "s1"),
        make_async(log, "a2"),
        make_sync(log, "s2"),
    ]
    for receiver in receivers:
        signal.connect(receiver)
    a1, s1, a2, s2 = receivers
    assert run(signal.asend(None)) == [(s1, "s1"), (s2, "s2"), (a1, "a1"), (a2, "a2")]
    assert log[:2] == ["s1", "s2"]  # every sync receiver finishes before any async one starts


def test_asend_passes_signal_sender_and_named_arguments() -> None:
    signal = Signal(name="arguments")
    seen: list[dict[str, Any]] = []

    def sync_receiver(**kwargs: Any) -> None:
        seen.append(kwargs)

    async def async_receiver(**kwargs: Any) -> None:
        seen.append(kwargs)

    signal.connect(sync_receiver)
    signal.connect(async_receiver)
    run(signal.asend("the sender", instance=1))
    expected = {"signal": signal, "sender": "the sender", "instance": 1}
    assert seen == [expected, expected]


def test_asend_runs_all_sync_receivers_in_one_worker_thread() -> None:
    signal = Signal(name="threads")
    threads: list[int] = []

    def receiver(**kwargs: Any) -> None:
        threads.append(threading.get_ident())

    receivers = [functools.partial(receiver) for _ in range(3)]
    for each in receivers:
        signal.connect(each, weak=False)

    async def main() -> int:
        await signal.asend(None)
        return threading.get_ident()

    loop_thread = run(main())
    assert len(threads) == 3
    assert len(set(threads)) == 1
    assert threads[0] != loop_thread


async def meet_the_other(barrier: asyncio.Barrier, **kwargs: Any) -> str:
    async with asyncio.timeout(WAIT):
        await barrier.wait()
    return "through"


def meeting() -> Signal:
    """Two async receivers that each wait for the other at the barrier the signal is sent
    with: only receivers that run concurrently both get through."""
    signal = Signal(name="meeting")
    signal.connect(meet_the_other)
    signal.connect(functools.partial(meet_the_other), weak=False)
    return signal


def test_asend_runs_async_receivers_concurrently() -> None:
    async def main() -> list[tuple[Any, Any]]:
        return await meeting().asend(None, barrier=asyncio.Barrier(2))

    assert [response for _, response in run(main())] == ["through", "through"]


class CountingSyncToAsync:
    """A sync_to_async adapter that counts its uses and otherwise does what the default does."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, func: Callable[[], T]) -> Callable[[], Awaitable[T]]:
        self.calls += 1

        async def run_in_thread() -> T:
            return await asyncio.to_thread(func)

        return run_in_thread


def test_asend_hops_to_a_thread_once_however_many_sync_receivers() -> None:
    hops = CountingSyncToAsync()
    set_sync_to_async(hops)
    signal = Signal(name="hops")
    log: list[str] = []
    receivers = [make_sync(log, "s1"), make_sync(log, "s2"), make_sync(log, "s3")]
    for receiver in receivers:
        signal.connect(receiver)
    run(signal.asend(None))
    assert log == ["s1", "s2", "s3"]
    assert hops.calls == 1


def test_asend_does_not_hop_without_live_sync_receivers() -> None:
    hops = CountingSyncToAsync()
    set_sync_to_async(hops)
    log: list[str] = []
    nobody = Signal(name="nobody")
    only_async = Signal(name="only async")
    only_async.connect(make_async(log, "a"), weak=False)
    dead_sync = Signal(name="dead sync")
    dead_sync.connect(Handler().on_signal_sync)  # its instance is gone at once
    gc.collect()
    for_someone_else = Signal(name="for someone else")
    for_someone_else.connect(sync_function, sender="other")

    async def main() -> None:
        for signal in (nobody, only_async, dead_sync, for_someone_else):
            await signal.asend(None)

    run(main())
    assert log == ["a"]
    assert hops.calls == 0


def test_strict_asend_checks_arguments_before_any_receiver_runs() -> None:
    signal = Signal(name="checked", arguments=["order"], strict=True)
    log: list[str] = []
    signal.connect(make_sync(log, "s"), weak=False)
    signal.connect(make_async(log, "a"), weak=False)
    with pytest.raises(TypeError, match="ordr"):
        run(signal.asend(None, ordr=1))
    with pytest.raises(TypeError, match="asend_robust"):
        run(signal.asend_robust(None))
    assert log == []


# -- 4. errors ------------------------------------------------------------------------------


def test_asend_first_sync_failure_propagates_and_nothing_after_it_runs() -> None:
    signal = Signal(name="failing")
    log: list[str] = []

    def failing(**kwargs: Any) -> None:
        raise KeyError("sync failure")

    signal.connect(make_sync(log, "s1"), weak=False)
    signal.connect(failing)
    signal.connect(make_sync(log, "s2"), weak=False)
    signal.connect(make_async(log, "a"), weak=False)
    with pytest.raises(KeyError, match="sync failure"):
        run(signal.asend(None))
    assert log == ["s1"]


def test_one_failing_async_receiver_raises_its_own_exception_and_cancels_the_others() -> None:
    signal = Signal(name="failing")
    error = ValueError("async failure")

    async def main() -> Waiter:
        waiter = Waiter()

        async def fails_once_the_other_runs(**kwargs: Any) -> None:
            async with asyncio.timeout(WAIT):
                await waiter.started.wait()
            raise error

        signal.connect(waiter, weak=False)
        signal.connect(fails_once_the_other_runs, weak=False)
        with pytest.raises(ValueError) as raised:
            await signal.asend(None)
        assert raised.value is error
        return waiter

    assert run(main()).cancelled


def test_several_failing_async_receivers_raise_an_exception_group() -> None:
    signal = Signal(name="failing")
    first, second = ValueError("first"), KeyError("second")

    async def main() -> None:
        barrier = asyncio.Barrier(2)

        def make(error: Exception) -> Callable[..., Awaitable[None]]:
            async def fails_together(**kwargs: Any) -> None:
                async with asyncio.timeout(WAIT):
                    await barrier.wait()
                raise error

            return fails_together

        signal.connect(make(first), weak=False)
        signal.connect(make(second), weak=False)
        with pytest.raises(ExceptionGroup) as raised:
            await signal.asend(None)
        assert list(raised.value.exceptions) == [first, second]
        assert "2 async receivers of <Signal 'failing'> failed" in str(raised.value)

    run(main())


def test_a_lone_failure_keeps_its_own_traceback_and_cause() -> None:
    signal = Signal(name="failing")

    async def receiver_that_fails(**kwargs: Any) -> None:
        try:
            raise KeyError("missing")
        except KeyError as missing:
            raise RuntimeError("wrapped") from missing

    signal.connect(receiver_that_fails)
    with pytest.raises(RuntimeError) as raised:
        run(signal.asend(None))
    assert isinstance(raised.value.__cause__, KeyError)
    assert any(entry.name == "receiver_that_fails" for entry in raised.traceback)
    assert raised.value.__context__ is raised.value.__cause__  # not chained to a group


def test_asend_robust_returns_and_logs_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    signal = Signal(name="robust")
    log: list[str] = []
    sync_error, async_error = KeyError("sync"), ValueError("async")

    def sync_fails(**kwargs: Any) -> None:
        raise sync_error

    async def async_fails(**kwargs: Any) -> None:
        raise async_error

    receivers: list[Callable[..., Any]] = [
        make_async(log, "a1"),
        sync_fails,
        async_fails,
        make_sync(log, "s1"),
        make_async(log, "a2"),
    ]
    for receiver in receivers:
        signal.connect(receiver)
    a1, _, _, s1, a2 = receivers
    with caplog.at_level(logging.ERROR, logger="tocsin"):
        responses = run(signal.asend_robust(None))
    assert responses == [
        (sync_fails, sync_error),
        (s1, "s1"),
        (a1, "a1"),
        (async_fails, async_error),
        (a2, "a2"),
    ]
    assert [record.exc_info[1] for record in caplog.records if record.exc_info] == [
        sync_error,
        async_error,
    ]
    assert "async_fails" in caplog.records[1].getMessage()


def test_asend_robust_lets_base_exceptions_through() -> None:
    signal = Signal(name="robust")

    async def exits(**kwargs: Any) -> None:
        raise SystemExit(3)

    signal.connect(exits)
    with pytest.raises(SystemExit):
        run(signal.asend_robust(None))


def test_a_mix_of_sync_async_and_failing_receivers() -> None:
    signal = Signal(name="mixed")
    log: list[str] = []
    error = ValueError("one of many")

    async def main() -> None:
        waiter = Waiter()
        receivers: list[Callable[..., Any]] = [
            make_sync(log, "s1"),
            waiter,
            make_async(log, "a1"),
            make_failing(error),
            make_sync(log, "s2"),
        ]
        for receiver in receivers:
            signal.connect(receiver, weak=False)
        with pytest.raises(ValueError) as raised:
            await signal.asend(None)
        assert raised.value is error
        assert waiter.cancelled
        assert log == ["s1", "s2", "a1"]

        # The same receivers again, robustly: the failure is a response and the waiter, told
        # to finish, answers.
        log.clear()
        waiter.release.set()
        responses = await signal.asend_robust(None)
        assert [response for _, response in responses] == ["s1", "s2", "released", "a1", error]

    run(main())


# -- 5. cancellation ------------------------------------------------------------------------


def test_cancelling_asend_cancels_the_running_async_receivers() -> None:
    signal = Signal(name="cancelled")
    first, second = Waiter(), Waiter()
    signal.connect(first, weak=False)
    signal.connect(second, weak=False)

    async def main() -> None:
        sending = asyncio.create_task(signal.asend(None))
        async with asyncio.timeout(WAIT):
            await first.started.wait()
            await second.started.wait()
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending

    run(main())
    assert first.cancelled and second.cancelled


def test_cancelling_asend_during_the_sync_group_stops_the_sync_receivers_after_it() -> None:
    signal = Signal(name="cancelled")
    running, release = threading.Event(), threading.Event()
    log: list[str] = []

    def blocks(**kwargs: Any) -> None:
        running.set()
        assert release.wait(WAIT)
        log.append("blocks")

    signal.connect(blocks)
    signal.connect(make_sync(log, "after"), weak=False)
    signal.connect(make_async(log, "async"), weak=False)

    async def main() -> None:
        sending = asyncio.create_task(signal.asend(None))
        assert await asyncio.to_thread(running.wait, WAIT)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        release.set()

    run(main())  # asyncio.run waits for the worker thread before it returns
    assert log == ["blocks"]


def test_cancelling_asend_while_receivers_fail_leaves_nothing_behind() -> None:
    signal = Signal(name="cancelled")
    waiter = Waiter()

    async def fails_when_cancelled(**kwargs: Any) -> None:
        try:
            await waiter.release.wait()
        except asyncio.CancelledError:
            raise ValueError("failed while cancelled") from None

    signal.connect(waiter, weak=False)
    signal.connect(fails_when_cancelled)

    async def main() -> None:
        sending = asyncio.create_task(signal.asend(None))
        async with asyncio.timeout(WAIT):
            await waiter.started.wait()
        sending.cancel()
        with pytest.raises(ValueError, match="failed while cancelled"):
            await sending

    run(main())
    assert waiter.cancelled


@pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="eager tasks are new in Python 3.12, whose own TaskGroup leaves the sending task "
    "cancelled after an eager task fails at once (with or without tocsin)",
)
def test_with_eager_tasks_a_receiver_failing_at_once_leaves_nothing_behind() -> None:
    signal = Signal(name="eager")
    log: list[str] = []
    error = ValueError("at once")
    signal.connect(make_failing(error), weak=False)
    signal.connect(make_async(log, "never started"), weak=False)

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        with pytest.raises(ValueError) as raised:
            await signal.asend(None)
        assert raised.value is error

    run(main())
    assert log == []


# -- 6. send and send_robust with async receivers -------------------------------------------


def test_send_from_sync_code_runs_sync_then_async_receivers() -> None:
    signal = Signal(name="from sync")
    log: list[str] = []
    receivers = [make_async(log, "a1"), make_sync(log, "s1"), make_async(log, "a2")]
    for receiver in receivers:
        signal.connect(receiver)
    a1, s1, a2 = receivers
    with nothing_left_behind():
        assert signal.send(None) == [(s1, "s1"), (a1, "a1"), (a2, "a2")]
    assert log[0] == "s1"


def test_send_runs_async_receivers_concurrently() -> None:
    # The barrier binds to the first loop that waits on it: the one send makes.
    with nothing_left_behind():
        responses = meeting().send(None, barrier=asyncio.Barrier(2))
    assert [response for _, response in responses] == ["through", "through"]


def test_send_from_plain_sync_code_runs_async_receivers_in_the_calling_thread() -> None:
    signal = Signal(name="from sync")
    threads: list[int] = []

    async def receiver(**kwargs: Any) -> None:
        threads.append(threading.get_ident())

    signal.connect(receiver)
    with nothing_left_behind():
        signal.send(None)
    assert threads == [threading.get_ident()]


def test_send_leaves_the_threads_event_loop_alone() -> None:
    signal = Signal(name="from sync")
    signal.connect(async_function)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        with nothing_left_behind():
            signal.send(None)
        assert asyncio.get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_send_from_sync_code_inside_a_running_loop() -> None:
    signal = Signal(name="inside a loop")
    where: list[tuple[int, asyncio.AbstractEventLoop]] = []

    async def receiver(**kwargs: Any) -> str:
        where.append((threading.get_ident(), asyncio.get_running_loop()))
        return "ran"

    signal.connect(receiver)

    def sync_code_called_by_a_coroutine() -> list[tuple[Any, Any]]:
        return signal.send(None)

    async def main() -> asyncio.AbstractEventLoop:
        assert sync_code_called_by_a_coroutine() == [(receiver, "ran")]
        return asyncio.get_running_loop()

    callers_loop = run(main())
    [(thread, loop)] = where
    # The caller's loop is blocked under the send, so the receiver ran on a loop of its own.
    assert loop is not callers_loop
    assert thread != threading.get_ident()


def test_send_first_sync_failure_stops_before_any_async_receiver() -> None:
    signal = Signal(name="failing")
    log: list[str] = []

    def failing(**kwargs: Any) -> None:
        raise KeyError("sync failure")

    signal.connect(make_async(log, "a"), weak=False)
    signal.connect(failing)
    with nothing_left_behind(), pytest.raises(KeyError):
        signal.send(None)
    assert log == []


def test_send_raises_a_lone_async_failure_and_groups_several() -> None:
    error, other = ValueError("one"), KeyError("two")
    lone = Signal(name="lone")
    lone.connect(make_failing(error), weak=False)
    lone.connect(async_function)
    several = Signal(name="several")
    several.connect(make_failing(error), weak=False)
    several.connect(make_failing(other), weak=False)
    with nothing_left_behind():
        with pytest.raises(ValueError) as raised:
            lone.send(None)
        assert raised.value is error
        with pytest.raises(ExceptionGroup) as grouped:
            several.send(None)
        assert list(grouped.value.exceptions) == [error, other]


def test_send_cancels_the_other_async_receivers_when_one_fails() -> None:
    signal = Signal(name="failing")
    waiter = Waiter()  # its Events bind to the loop send makes, the first one to wait on them

    async def fails_once_the_other_runs(**kwargs: Any) -> None:
        async with asyncio.timeout(WAIT):
            await waiter.started.wait()
        raise ValueError("failed")

    signal.connect(waiter, weak=False)
    signal.connect(fails_once_the_other_runs)
    with nothing_left_behind(), pytest.raises(ValueError):
        signal.send(None)
    assert waiter.cancelled


def test_send_robust_returns_and_logs_async_failures(caplog: pytest.LogCaptureFixture) -> None:
    signal = Signal(name="robust")
    log: list[str] = []
    error = ValueError("async")
    failing = make_failing(error)
    receivers = [failing, make_sync(log, "s"), make_async(log, "a")]
    for receiver in receivers:
        signal.connect(receiver)
    _, sync_receiver, async_receiver = receivers
    with caplog.at_level(logging.ERROR, logger="tocsin"), nothing_left_behind():
        responses = signal.send_robust(None)
    assert responses == [(sync_receiver, "s"), (failing, error), (async_receiver, "a")]
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is error


# -- 7. context variables -------------------------------------------------------------------


def follow_trail(name: str) -> Callable[..., tuple[str, str, tuple[str, ...]]]:
    """A sync receiver that reports what it sees and leaves its name on the trail."""

    def receiver(**kwargs: Any) -> tuple[str, str, tuple[str, ...]]:
        seen = trail.get()
        trail.set((*seen, name))
        return name, request_id.get(), seen

    return receiver


def follow_trail_async(name: str) -> Callable[..., Awaitable[tuple[str, str, tuple[str, ...]]]]:
    sync_version = follow_trail(name)

    async def receiver(**kwargs: Any) -> tuple[str, str, tuple[str, ...]]:
        return sync_version(**kwargs)

    return receiver


def trail_signal() -> Signal:
    signal = Signal(name="context")
    for receiver in (follow_trail("s1"), follow_trail("s2"), follow_trail_async("a1")):
        signal.connect(receiver, weak=False)
    return signal


@pytest.mark.parametrize("how", ["asend", "send from sync code", "send inside a running loop"])
def test_receivers_share_one_context_with_the_caller_and_each_other(how: str) -> None:
    signal = trail_signal()

    def seen(responses: list[tuple[Any, Any]]) -> tuple[list[Any], tuple[str, ...]]:
        """What each receiver saw, and what the caller sees after them."""
        return [response for _, response in responses], trail.get()

    def send_from_sync_code() -> tuple[list[Any], tuple[str, ...]]:
        request_id.set("r-1")
        return seen(signal.send(None))

    async def send_from_a_coroutine() -> tuple[list[Any], tuple[str, ...]]:
        request_id.set("r-1")
        return seen(await signal.asend(None) if how == "asend" else signal.send(None))

    if how == "send from sync code":
        with nothing_left_behind():
            observed = contextvars.Context().run(send_from_sync_code)
    else:
        observed = run(send_from_a_coroutine())
    assert observed == (
        [("s1", "r-1", ()), ("s2", "r-1", ("s1",)), ("a1", "r-1", ("s1", "s2"))],
        ("s1", "s2", "a1"),
    )


def test_concurrent_async_receivers_see_each_others_values() -> None:
    signal = Signal(name="context")

    async def main() -> list[Any]:
        barrier = asyncio.Barrier(2)

        async def sets(**kwargs: Any) -> None:
            request_id.set("set by a receiver")
            async with asyncio.timeout(WAIT):
                await barrier.wait()

        async def reads(**kwargs: Any) -> str:
            async with asyncio.timeout(WAIT):
                await barrier.wait()
            return request_id.get()

        signal.connect(sets, weak=False)
        signal.connect(reads, weak=False)
        return [response for _, response in await signal.asend(None)]

    assert run(main()) == [None, "set by a receiver"]


def test_only_what_the_receivers_changed_is_copied_back() -> None:
    def sets_a_variable_of_its_own(func: Callable[[], T]) -> Callable[[], Awaitable[T]]:
        # As asgiref's adapter does: it sets a variable in the caller's context meanwhile.
        async def run_in_thread() -> T:
            request_id.set("set by the adapter")
            return await asyncio.to_thread(func)

        return run_in_thread

    set_sync_to_async(sets_a_variable_of_its_own)
    signal = Signal(name="context")
    signal.connect(follow_trail("s"), weak=False)

    async def main() -> tuple[str, tuple[str, ...]]:
        request_id.set("mine")
        await signal.asend(None)
        return request_id.get(), trail.get()

    assert run(main()) == ("set by the adapter", ("s",))


# -- 8. adapters ----------------------------------------------------------------------------


class DedicatedThread:
    """A thread-sensitive sync_to_async, hand-written: all sync code runs in one thread, as
    asgiref runs it for Django so that a thread-local database connection is reused."""

    def __init__(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(1, "dedicated")

    def __call__(self, func: Callable[[], T]) -> Callable[[], Awaitable[T]]:
        async def run_there() -> T:
            return await asyncio.get_running_loop().run_in_executor(self.executor, func)

        return run_there


def test_a_sync_to_async_adapter_chooses_where_asend_runs_sync_receivers() -> None:
    dedicated = DedicatedThread()
    set_sync_to_async(dedicated)
    signal = trail_signal()
    names: list[str] = []

    def thread_name(**kwargs: Any) -> None:
        names.append(threading.current_thread().name)

    signal.connect(thread_name)

    async def main() -> tuple[str, ...]:
        request_id.set("r-3")
        for _ in range(2):
            await signal.asend(None)
        return trail.get()

    try:
        trail_after = run(main())
    finally:
        dedicated.executor.shutdown()
    assert set(names) == {"dedicated_0"}
    assert trail_after == ("s1", "s2", "a1") * 2  # the context still travels with the dispatch


def test_an_async_to_sync_adapter_chooses_how_send_runs_async_receivers() -> None:
    uses: list[str] = []

    def run_with_asyncio(func: Callable[[], Coroutine[Any, Any, T]]) -> Callable[[], T]:
        def run_it() -> T:
            uses.append("used")
            return asyncio.run(func())

        return run_it

    set_async_to_sync(run_with_asyncio)
    signal = trail_signal()
    with nothing_left_behind():
        responses = contextvars.Context().run(signal.send, None)
    assert uses == ["used"]
    assert [response[0] for _, response in responses] == ["s1", "s2", "a1"]


def test_none_restores_the_default_adapters() -> None:
    hops = CountingSyncToAsync()
    set_sync_to_async(hops)
    set_sync_to_async(None)
    set_async_to_sync(lambda func: lambda: pytest.fail("replaced adapter used"))
    set_async_to_sync(None)
    signal = Signal(name="defaults")
    log: list[str] = []
    signal.connect(make_sync(log, "s"), weak=False)
    signal.connect(make_async(log, "a"), weak=False)
    with nothing_left_behind():
        signal.send(None)
    run(signal.asend(None))
    assert log == ["s", "a", "s", "a"]
    assert hops.calls == 0


@pytest.mark.parametrize("setter", [set_sync_to_async, set_async_to_sync])
def test_an_adapter_must_be_callable(setter: Callable[[Any], None]) -> None:
    with pytest.raises(TypeError, match="takes a callable or None"):
        setter("asgiref.sync.sync_to_async")


def test_asgiref_adapters_plug_in() -> None:
    sync = pytest.importorskip(
        "asgiref.sync", reason="asgiref is optional: tocsin only promises it plugs in"
    )
    set_sync_to_async(sync.sync_to_async)
    set_async_to_sync(sync.async_to_sync)
    signal = trail_signal()
    names: list[str] = []

    def thread_name(**kwargs: Any) -> None:
        names.append(threading.current_thread().name)

    signal.connect(thread_name)
    wrapped = sync.sync_to_async(sync_function)  # asgiref marks its wrapper as async
    signal.connect(wrapped)
    assert signal.connections()[-1].is_async

    async def main() -> list[Any]:
        responses = await signal.asend(None)
        await signal.asend(None)
        return responses

    responses = run(main())
    assert [response for _, response in responses] == [
        ("s1", "none", ()),
        ("s2", "none", ("s1",)),
        None,
        ("a1", "none", ("s1", "s2")),
        "sync function",
    ]
    # Thread-sensitive: the sync receivers of both sends ran in asgiref's one shared thread.
    assert len(set(names)) == 1
    assert names[0] != threading.current_thread().name
    with nothing_left_behind():
        responses = contextvars.Context().run(signal.send, None)
    assert [response for _, response in responses][-1] == "sync function"


def test_context_changes_are_copied_back_by_identity_not_equality() -> None:
    class NoCompare:
        def __eq__(self, other: object) -> bool:
            raise AssertionError("tocsin compared context values with ==")

        __hash__ = object.__hash__

    variable: contextvars.ContextVar[object] = contextvars.ContextVar("variable")
    equal_but_new = 1.0
    counter: contextvars.ContextVar[object] = contextvars.ContextVar("counter")

    async def changes(**kwargs: Any) -> None:
        variable.set(NoCompare())
        counter.set(equal_but_new)  # == 1, but another object: still a change

    def run() -> None:
        variable.set(NoCompare())
        counter.set(1)
        signal = Signal()
        signal.connect(changes)
        signal.send(None)
        assert counter.get() is equal_but_new

    contextvars.copy_context().run(run)


@pytest.mark.parametrize("method", ["asend", "asend_robust"])
def test_an_argument_named_signal_is_refused_by_asend_with_nobody_connected(method: str) -> None:
    signal = Signal(name="s")
    for _ in range(2):
        with pytest.raises(TypeError, match="argument named 'signal'"):
            asyncio.run(getattr(signal, method)(None, signal="oops"))
