"""Running async receivers from sync and async callers.

One dispatch runs in two groups: the sync receivers first, one after another in connection
order, then the async receivers concurrently in a ``TaskGroup``. From ``asend`` the sync group
runs in one worker call (so it never blocks the event loop); from ``send`` the async group
runs on an event loop of its own. Both hops go through pluggable adapters, with the shapes of
asgiref's ``sync_to_async`` and ``async_to_sync``, whose defaults need only the stdlib.

The receivers of one dispatch share one set of context variables, as if they all ran in the
caller's flow: each sees the caller's values and what the receivers before it set, and the
caller sees what they set. Receivers that run outside the caller's flow (the sync group of
``asend``, every async task) run in one copy of the caller's context, entered with
``Context.run`` or given to ``create_task``; what they changed in it is copied back into the
caller's context at the end, as asgiref does. So an adapter need not carry context at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any

from tocsin._references import safe_repr

if TYPE_CHECKING:
    from tocsin.dispatcher import Signal

Responses = list[tuple[Callable[..., Any], Any]]

SyncToAsync = Callable[[Callable[[], Any]], Callable[[], Awaitable[Any]]]
"""Takes a sync function, returns an async function that runs it: ``asgiref.sync.sync_to_async``."""

AsyncToSync = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Callable[[], Any]]
"""Takes an async function, returns a sync function that runs it: ``asgiref.sync.async_to_sync``."""

# asgiref's markcoroutinefunction() sets this attribute on Python < 3.12, where
# inspect.markcoroutinefunction() does not exist; asyncio.iscoroutinefunction() reads it, but
# is deprecated from 3.14 on, so it is read here directly.
_ASYNCIO_MARKER = getattr(asyncio.coroutines, "_is_coroutine", None)

_MISSING = object()


def is_async_callable(receiver: object) -> bool:
    """Whether calling ``receiver`` returns an awaitable that must be awaited.

    True for ``async def`` functions and methods, objects whose class's ``__call__`` is
    ``async def``, callables marked with ``inspect.markcoroutinefunction`` or asgiref's
    marker, and ``functools.partial`` objects of any of those.
    """
    # A bound method is judged by its function: a marker can only be set there, and reading
    # a missing attribute through the method costs a microsecond on every connect.
    while True:
        if isinstance(receiver, functools.partial):
            receiver = receiver.func
        elif isinstance(receiver, MethodType):
            receiver = receiver.__func__
        else:
            break
    if _is_marked_async(receiver):
        return True
    if isinstance(receiver, FunctionType | type) or not callable(receiver):
        # Calling a class builds an instance, whatever its __call__ is.
        return False
    return _is_marked_async(type(receiver).__call__)


def _is_marked_async(func: object) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    return _ASYNCIO_MARKER is not None and getattr(func, "_is_coroutine", None) is _ASYNCIO_MARKER


# -- adapters -------------------------------------------------------------------------------


def _run_in_worker_thread(func: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    """The default sync_to_async: one call in the running loop's default executor."""
    # Returning the executor's future, where an async function would wrap it in a coroutine,
    # saves asend a few percent of a thread hop.
    return functools.partial(asyncio.get_running_loop().run_in_executor, None, func)


def _run_on_new_loop(func: Callable[[], Coroutine[Any, Any, Any]]) -> Callable[[], Any]:
    """The default async_to_sync: a new event loop, in a helper thread if this one has a loop."""

    def run() -> Any:
        if asyncio._get_running_loop() is None:
            # Run outside any except block: receivers must not see a "no running event loop"
            # error as sys.exc_info(), nor have their own exceptions chained to it.
            return _run_to_completion(func)
        # Called by sync code that a coroutine called: this thread's loop is stuck under us
        # and cannot run anything until we return, so the new loop needs a thread of its own.
        with concurrent.futures.ThreadPoolExecutor(1, "tocsin-async-to-sync") as helper:
            return helper.submit(_run_to_completion, func).result()

    return run


def _run_to_completion(func: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    # A loop_factory keeps the Runner from installing its loop as the thread's event loop,
    # and from resetting that to None afterwards under the feet of a caller that set one.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(func())


_sync_to_async: SyncToAsync = _run_in_worker_thread
_async_to_sync: AsyncToSync = _run_on_new_loop


def set_sync_to_async(adapter: SyncToAsync | None) -> None:
    """Choose how ``asend`` runs the group of sync receivers, or restore the default (None).

    ``adapter(func)`` must return an async function that calls ``func()`` and returns its
    result, as ``asgiref.sync.sync_to_async`` does. It is called once per ``asend`` that has
    sync receivers, with a function that runs all of them. The default runs that function in
    the event loop's default executor.
    """
    global _sync_to_async
    if adapter is not None and not callable(adapter):
        raise TypeError(f"set_sync_to_async() takes a callable or None; got {safe_repr(adapter)}")
    _sync_to_async = _run_in_worker_thread if adapter is None else adapter


def set_async_to_sync(adapter: AsyncToSync | None) -> None:
    """Choose how ``send`` runs the group of async receivers, or restore the default (None).

    ``adapter(func)`` must return a sync function that runs ``await func()`` to completion and
    returns its result, as ``asgiref.sync.async_to_sync`` does. The default runs it on a new
    event loop: in the calling thread, or in a helper thread when the calling thread is
    already running a loop.
    """
    global _async_to_sync
    if adapter is not None and not callable(adapter):
        raise TypeError(f"set_async_to_sync() takes a callable or None; got {safe_repr(adapter)}")
    _async_to_sync = _run_on_new_loop if adapter is None else adapter


# -- dispatch -------------------------------------------------------------------------------

Log = Callable[[object, Callable[..., Any], BaseException], None]
"""How a robust dispatch reports a receiver's failure: ``log(signal, receiver, error)``."""


def send_async_group(
    signal: Signal,
    receivers: Sequence[Callable[..., Any] | None],
    sender: object,
    named: dict[str, Any],
    robust: bool,
    log: Log,
) -> Responses:
    """The async receivers of ``send``/``send_robust``, after the sync ones ran in the
    caller's frame: on an event loop through the async-to-sync adapter. ``receivers`` were
    resolved when the send started; None stands for one that had already died."""
    live = [receiver for receiver in receivers if receiver is not None]
    if not live:
        return []
    base = contextvars.copy_context()
    context = base.copy()
    try:
        group = functools.partial(_call_async, signal, live, sender, named, robust, log, context)
        responses: Responses = _async_to_sync(group)()
    finally:
        _copy_back(base, context)
    return responses


async def send_from_async(
    signal: Signal,
    sync: Sequence[Callable[..., Any] | None],
    asynchronous: Sequence[Callable[..., Any] | None],
    sender: object,
    named: dict[str, Any],
    robust: bool,
    log: Log,
) -> Responses:
    """``asend``/``asend_robust``, with the receivers resolved when the send started (None
    for one already dead): see the module docstring."""
    sync_receivers = [receiver for receiver in sync if receiver is not None]
    async_receivers = [receiver for receiver in asynchronous if receiver is not None]
    if not sync_receivers and not async_receivers:
        return []
    base = contextvars.copy_context()
    context = base.copy()
    responses: Responses = []
    try:
        if sync_receivers:
            halt = _Halt()
            group = functools.partial(
                context.run,
                _call_sync,
                signal,
                sync_receivers,
                sender,
                named,
                robust,
                log,
                halt,
            )
            try:
                responses = await _sync_to_async(group)()
            except asyncio.CancelledError:
                halt.requested = True
                raise
        if async_receivers:
            responses += await _call_async(
                signal, async_receivers, sender, named, robust, log, context
            )
    finally:
        _copy_back(base, context)
    return responses


class _Halt:
    """Asks the sync group, running in another thread, to stop before its next receiver.

    Set when ``asend`` is cancelled: a thread cannot be interrupted, so the receiver running
    then finishes, but none after it starts. (A plain attribute: a threading.Event costs
    microseconds to make, on every asend.)
    """

    __slots__ = ("requested",)

    def __init__(self) -> None:
        self.requested = False


def _call_sync(
    signal: Signal,
    receivers: Sequence[Callable[..., Any]],
    sender: object,
    named: dict[str, Any],
    robust: bool,
    log: Log,
    halt: _Halt,
) -> Responses:
    """The sync group of ``asend``, in a worker thread, stopping early if halted."""
    responses: Responses = []
    for receiver in receivers:
        if halt.requested:
            break
        if not robust:
            responses.append((receiver, receiver(signal=signal, sender=sender, **named)))
            continue
        try:
            responses.append((receiver, receiver(signal=signal, sender=sender, **named)))
        except Exception as error:
            log(signal, receiver, error)
            responses.append((receiver, error))
    return responses


class _Escaped(Exception):
    """Carries a ``KeyboardInterrupt`` or ``SystemExit`` raised by an async receiver out of
    its task as an ordinary failure.

    asyncio lets those two escape a task's step and stop the loop, leaving the task holding
    an exception nobody retrieves ("Task exception was never retrieved"). Wrapped, the task
    fails like any other, the group cancels the rest and collects every task, and the
    original is raised again from the send.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


async def _call_async(
    signal: Signal,
    receivers: Sequence[Callable[..., Any]],
    sender: object,
    named: dict[str, Any],
    robust: bool,
    log: Log,
    context: contextvars.Context,
) -> Responses:
    started: list[tuple[Callable[..., Any], asyncio.Task[Any]]] = []
    try:
        async with asyncio.TaskGroup() as group:
            for receiver in receivers:
                # The receiver is called inside its task, so its coroutine exists only once
                # the task runs: one cancelled before it starts leaves nothing un-awaited.
                awaiting = _await(receiver, signal, sender, named, log if robust else None)
                try:
                    task = group.create_task(awaiting, context=context)
                except RuntimeError:
                    # Only with an eager task factory (3.12+): a receiver failed as it was
                    # started and the group is shutting down, so the rest never start.
                    awaiting.close()
                    break
                started.append((receiver, task))
    except BaseExceptionGroup:
        # Every failure is one of the tasks': list them in connection order, not in the
        # order they happened to fail.
        failures = [
            error
            for _, task in started
            if not task.cancelled() and (error := task.exception()) is not None
        ]
    else:
        return [(receiver, task.result()) for receiver, task in started]
    escaped = [failure.original for failure in failures if isinstance(failure, _Escaped)]
    if escaped:
        raise escaped[0]
    # Raised outside the except block, so that the error is not chained to the group.
    if len(failures) == 1:
        raise failures[0]
    raise BaseExceptionGroup(f"{len(failures)} async receivers of {signal!r} failed", failures)


async def _await(
    receiver: Callable[..., Any],
    signal: Signal,
    sender: object,
    named: dict[str, Any],
    log: Log | None,
) -> Any:
    """One async receiver, in its task; with ``log``, an ``Exception`` is its response."""
    try:
        return await receiver(signal=signal, sender=sender, **named)
    except (KeyboardInterrupt, SystemExit) as exiting:
        raise _Escaped(exiting) from None
    except Exception as error:
        if log is None:
            raise
        log(signal, receiver, error)
        return error


def _copy_back(base: contextvars.Context, context: contextvars.Context) -> None:
    """Set in the current context every variable the receivers changed in ``context``.

    A change is a value that is not the same object: comparing with ``==`` would run the
    values' own ``__eq__`` (which may fail, as an array's does, or call equal objects the
    same) after every receiver has run."""
    for variable, value in context.items():
        if base.get(variable, _MISSING) is not value:
            variable.set(value)
