"""``MemoryTransport``: a broker inside one process, for testing code that uses a bridge.

Bridges sharing one ``MemoryTransport`` behave like processes sharing a broker: a message goes
through the publishing bridge's queue and thread and the listening bridge's listener, every
subscription gets every message published under its names from the moment it subscribed,
in order, and a bridge does not hear its own messages. It never loses a message and never
disconnects.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Collection, Sequence

__all__ = ["MemoryTransport"]

# Messages one receive() returns at most, so that a flood cannot keep a listener from
# noticing stop().
_MOST_AT_ONCE = 1000


class MemoryTransport:
    """An in-process broker: pass it to several ``Bridge`` objects to connect them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[_Subscription | _AsyncSubscription] = []

    def __repr__(self) -> str:
        return f"<MemoryTransport at {id(self):#x}>"

    def publisher(self) -> _Publisher:
        """A publisher that hands messages straight to the current subscriptions."""
        return _Publisher(self)

    def subscribe(self, names: Collection[str]) -> _Subscription:
        """A subscription to ``names``, read from a thread."""
        subscription = _Subscription(self, names)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    async def asubscribe(self, names: Collection[str]) -> _AsyncSubscription:
        """A subscription to ``names``, read on the running event loop."""
        subscription = _AsyncSubscription(self, names, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def check(self, data: bytes) -> None:
        """Any message fits in memory: does nothing."""

    def _publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        with self._lock:
            # Under the lock, so that two publishers' messages reach every subscription in
            # the same order.
            for subscription in self._subscriptions:
                for name, data in messages:
                    if name in subscription.names:
                        subscription.put(data)

    def _unsubscribe(self, subscription: _Subscription | _AsyncSubscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)


class _Publisher:
    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        self._transport._publish(messages)

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Subscription:
    def __init__(self, transport: MemoryTransport, names: Collection[str]) -> None:
        self._transport = transport
        self.names = frozenset(names)
        self._arrived: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def put(self, data: bytes) -> None:
        self._arrived.put(data)

    def receive(self, timeout: float) -> list[bytes]:
        try:
            received = [self._arrived.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(received) < _MOST_AT_ONCE:
            try:
                received.append(self._arrived.get_nowait())
            except queue.Empty:
                break
        return received

    def add(self, names: Collection[str]) -> None:
        self.names = self.names | frozenset(names)

    def close(self) -> None:
        self._transport._unsubscribe(self)


class _AsyncSubscription:
    def __init__(
        self,
        transport: MemoryTransport,
        names: Collection[str],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._transport = transport
        self.names = frozenset(names)
        self._loop = loop
        self._arrived: asyncio.Queue[bytes] = asyncio.Queue()

    def put(self, data: bytes) -> None:
        try:
            self._loop.call_soon_threadsafe(self._arrived.put_nowait, data)
        except RuntimeError:  # the loop is closed: nobody will read this any more
            self._transport._unsubscribe(self)

    async def receive(self, timeout: float) -> list[bytes]:
        try:
            received = [await asyncio.wait_for(self._arrived.get(), timeout)]
        except TimeoutError:
            return []
        while not self._arrived.empty() and len(received) < _MOST_AT_ONCE:
            received.append(self._arrived.get_nowait())
        return received

    async def add(self, names: Collection[str]) -> None:
        self.names = self.names | frozenset(names)

    async def close(self) -> None:
        self._transport._unsubscribe(self)
