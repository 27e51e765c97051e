"""The publishing side of a bridge: a bounded queue that sends drop messages into, and the
thread that empties it onto the broker.

A local send must never wait for a broker, so the send only appends to a deque (atomic under
the GIL, no lock) and wakes the thread if it sleeps. The thread publishes in batches, so a
burst costs one round trip per batch rather than per message; when the broker fails it keeps
the batch, reconnects with backoff and publishes it again. While it cannot publish, sends
keep queueing; once ``max_pending`` messages wait, further sends are dropped (counted and
logged), and the queue keeps the oldest, so what does get through stays in order.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from tocsin.bridge._health import Backoff, Link, Tally, logger
from tocsin.bridge.transport import Publisher, Transport

# Messages per publish call: large enough that a burst costs few round trips, small enough
# that a failed batch (published again after reconnecting) repeats little.
_BATCH = 256

# How long the thread sleeps when there is nothing to publish before it checks, with a
# ping, that the connection is still there (so that health() notices a dead broker).
_IDLE_PING = 1.0


class PublisherThread:
    """Owns the queue and the thread; ``put`` is called from any thread."""

    def __init__(self, transport: Transport, tally: Tally, max_pending: int) -> None:
        self._transport = transport
        self._tally = tally
        self._max_pending = max_pending
        self._pending: deque[tuple[str, bytes]] = deque()
        self._in_flight = 0  # messages taken from the queue and not yet accepted
        self._idle = False  # the thread is about to wait, or waiting, on _wake
        self._wake = threading.Event()
        self._stopping = threading.Event()  # publish what is left, then end
        self._abandon = threading.Event()  # end now: stop() ran out of time
        self._overflowing = False
        self.link = Link("publisher", tally)
        self.ready = threading.Event()  # set after the first attempt to connect
        self._thread = threading.Thread(
            target=self._run, name="tocsin-bridge-publisher", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def pending(self) -> int:
        """Messages waiting for the broker."""
        return len(self._pending) + self._in_flight

    def put(self, name: str, data: bytes, signal: object) -> None:
        """Queue a message, or drop it if the queue is full; never blocks."""
        pending = self._pending
        if len(pending) >= self._max_pending:
            self._tally.count("dropped")
            if not self._overflowing:
                self._overflowing = True
                logger.error(
                    "tocsin bridge queue is full (%d messages wait for the broker): dropping "
                    "this send of %r and the ones after it until the broker catches up",
                    len(pending),
                    signal,
                )
            return
        pending.append((name, data))
        if self._idle:
            self._wake.set()

    def stop(self, timeout: float) -> None:
        """Publish what is queued, for up to ``timeout`` seconds, then end the thread.

        What is still unpublished then is counted as dropped and logged.
        """
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            self._wake.set()
            # A connect or publish in progress ends at the client's own socket timeout;
            # the thread is a daemon, so a stuck one cannot keep the process alive.
            self._thread.join(1.0)
        self._drop_leftovers([])  # a send that raced with stop() may have queued one

    def _run(self) -> None:
        publisher: Publisher | None = None
        backoff = Backoff()
        batch: list[tuple[str, bytes]] = []
        try:
            while not self._abandon.is_set():
                if publisher is None:
                    if self._stopping.is_set() and not batch and not self._pending:
                        return
                    publisher = self._connect(backoff)
                    continue
                if not batch:
                    batch = self._take()
                if batch:
                    try:
                        publisher.publish(batch)
                    except Exception as error:
                        self.link.down("publish", error)
                        self._discard(publisher, backoff)
                        publisher = None
                        continue
                    self._tally.count("sent", len(batch))
                    batch = []
                    self._in_flight = 0
                    continue
                if self._stopping.is_set():
                    return
                if not self._sleep():
                    try:
                        publisher.ping()
                    except Exception as error:
                        self.link.down("reach the broker", error)
                        self._discard(publisher, backoff)
                        publisher = None
        finally:
            if publisher is not None:
                publisher.close()
            self.ready.set()
            self._drop_leftovers(batch)

    def _connect(self, backoff: Backoff) -> Publisher | None:
        try:
            publisher = self._transport.publisher()
        except Exception as error:
            self.link.down("connect", error)
            self.ready.set()
            self._abandon.wait(backoff.next_delay())
            return None
        self.link.up()
        backoff.reset()
        self.ready.set()
        return publisher

    def _discard(self, publisher: Publisher, backoff: Backoff) -> None:
        publisher.close()
        self._abandon.wait(backoff.next_delay())

    def _take(self) -> list[tuple[str, bytes]]:
        pending = self._pending
        batch: list[tuple[str, bytes]] = []
        try:
            while len(batch) < _BATCH:
                batch.append(pending.popleft())
        except IndexError:
            pass
        self._in_flight = len(batch)
        if self._overflowing and len(pending) < self._max_pending:
            self._overflowing = False
            logger.warning("tocsin bridge queue has room again; see bridge.stats.dropped")
        return batch

    def _sleep(self) -> bool:
        """Wait for a send or for stop(); False if the wait ran out (time to ping)."""
        self._idle = True
        self._wake.clear()
        try:
            # Checked after announcing idleness: a send that queued before it saw _idle
            # is found here, one after it has set _wake.
            if self._pending or self._stopping.is_set():
                return True
            started = time.monotonic()
            woken = self._wake.wait(_IDLE_PING)
            return woken or time.monotonic() - started < _IDLE_PING
        finally:
            self._idle = False

    def _drop_leftovers(self, batch: list[tuple[str, bytes]]) -> None:
        left = len(batch)
        while True:
            try:
                self._pending.popleft()
            except IndexError:
                break
            left += 1
        self._in_flight = 0
        if left:
            self._tally.count("dropped", left)
            logger.error(
                "tocsin bridge stopped with %d message(s) the broker had not taken: dropped",
                left,
            )
