"""The listening side of a bridge: one connection subscribed to the names it listens to,
read in a thread (``ListenerThread``) or in a task on an event loop (``ListenerTask``).

Both loops do the same thing: subscribe, hand every message to the bridge's delivery
function one at a time in arrival order, and when the connection fails, log, count, wait a
backoff and subscribe again. Names listened to after the start are added by the loop itself,
between two reads, because a broker connection belongs to one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable

from tocsin.bridge._health import Backoff, Link, Tally
from tocsin.bridge.transport import AsyncSubscription, Subscription, Transport

# How long one read waits for a message before the loop checks for new names or stop().
_POLL = 0.1


class ListenerThread:
    """Reads the broker in a thread of its own and delivers in that thread."""

    def __init__(
        self,
        transport: Transport,
        tally: Tally,
        names: Callable[[], frozenset[str]],
        deliver: Callable[[bytes], None],
    ) -> None:
        self._transport = transport
        self._names = names
        self._deliver = deliver
        self.link = Link("listener", tally)
        self.ready = threading.Event()  # set after the first attempt to subscribe
        self._subscribed: frozenset[str] = frozenset()
        self._caught_up = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="tocsin-bridge-listener", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread once the message it is delivering, if any, is done."""
        self._stopping.set()
        if self._thread is not threading.current_thread():  # a receiver may call stop()
            self._thread.join()

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until every name listened to now is subscribed; False if that timed out."""
        wanted = self._names()
        with self._caught_up:
            return self._caught_up.wait_for(
                lambda: (
                    wanted <= self._subscribed or (self.ready.is_set() and not self.link.connected)
                ),
                timeout,
            )

    def _run(self) -> None:
        try:
            self._listen()
        except BaseException as error:
            # Nothing should end the thread but stop(); if something does, say so: health()
            # must not report a listener that no longer listens.
            self.link.down("go on listening", error)
            self._settle(frozenset())
            raise

    def _listen(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            names = self._names()
            try:
                subscription = self._transport.subscribe(names)
            except Exception as error:
                self.link.down("subscribe", error)
                self._settle(frozenset())
                self._stopping.wait(backoff.next_delay())
                continue
            self.link.up()
            backoff.reset()
            self._settle(names)
            try:
                self._read(subscription)
            except Exception as error:
                self.link.down("receive", error)
                self._settle(frozenset())
                self._stopping.wait(backoff.next_delay())
            finally:
                subscription.close()
        self.ready.set()

    def _read(self, subscription: Subscription) -> None:
        while not self._stopping.is_set():
            names = self._names()
            if names != self._subscribed:
                subscription.add(names - self._subscribed)
                self._settle(names)
            for data in subscription.receive(_POLL):
                self._deliver(data)

    def _settle(self, names: frozenset[str]) -> None:
        with self._caught_up:
            self._subscribed = names
            self._caught_up.notify_all()
        self.ready.set()


class ListenerTask:
    """Reads the broker in a task on an event loop and delivers on that loop."""

    def __init__(
        self,
        transport: Transport,
        tally: Tally,
        names: Callable[[], frozenset[str]],
        deliver: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._transport = transport
        self._names = names
        self._deliver = deliver
        self.link = Link("listener", tally)
        self.ready = asyncio.Event()  # set after the first attempt to subscribe
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="tocsin-bridge-listener"
        )

    async def stop(self) -> None:
        """End the task once the message it is delivering, if any, is done; if the caller
        is cancelled while it waits, cancel the task (and that delivery) too."""
        self._stopping.set()
        task = self._task
        if task is None or task is asyncio.current_task():
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _run(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            names = self._names()
            try:
                subscription = await self._transport.asubscribe(names)
            except Exception as error:
                self.link.down("subscribe", error)
                self.ready.set()
                await self._pause(backoff.next_delay())
                continue
            self.link.up()
            backoff.reset()
            self.ready.set()
            try:
                await self._read(subscription, names)
            except Exception as error:
                self.link.down("receive", error)
                await self._pause(backoff.next_delay())
            finally:
                await subscription.close()
        self.ready.set()

    async def _read(self, subscription: AsyncSubscription, subscribed: frozenset[str]) -> None:
        while not self._stopping.is_set():
            names = self._names()
            if names != subscribed:
                await subscription.add(names - subscribed)
                subscribed = names
            for data in await subscription.receive(_POLL):
                await self._deliver(data)

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
