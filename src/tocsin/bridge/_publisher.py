"""The publishing side of a bridge: a bounded queue that sends drop messages into, and the
thread that empties it onto the broker.

A local send must never wait for a broker, so the send only puts the message on a
``queue.SimpleQueue`` (implemented in C: putting costs well under a microsecond, and wakes
the thread without the thread handoff a ``threading.Event`` costs). The thread publishes in
batches, so a burst costs one round trip per batch rather than per message; when the broker
fails it keeps the batch, reconnects with backoff and publishes it again. While it cannot
publish, sends keep queueing; once ``max_pending`` messages wait, further sends are dropped
(counted and logged), and the queue keeps the oldest, so what does get through stays in
order.
"""

from __future__ import annotations

import queue
import threading

from tocsin.bridge._health import Backoff, Link, Tally, logger
from tocsin.bridge.transport import Publisher, Transport

# Messages per publish call: large enough that a burst costs few round trips, small enough
# that a failed batch (published again after reconnecting) repeats little.
_BATCH = 256

# How long the thread waits for a message before it checks, with a ping, that the connection
# is still there (so that health() notices a dead broker).
_IDLE_PING = 1.0

# Put on the queue by stop(): everything before it is to be published, then the thread ends.
_END = ("", b"")

Message = tuple[str, bytes]


class PublisherThread:
    """Owns the queue and the thread; ``put`` is called from any thread."""

    def __init__(self, transport: Transport, tally: Tally, max_pending: int) -> None:
        self._transport = transport
        self._tally = tally
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._in_flight = 0  # messages taken from the queue and not yet accepted
        self._stopping = threading.Event()
        self._stopped = False  # set once stop() has drained the queue: put() then drops
        self._ended = False  # the thread has taken _END: nothing more to publish
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
        return self._queue.qsize() + self._in_flight

    def put(self, name: str, data: bytes, signal: object) -> None:
        """Queue a message, or drop it if the queue is full or the publisher has stopped;
        never blocks."""
        if self._stopped:
            # A send that raced with stop(): nothing will publish it, so count it.
            self._tally.count("dropped")
            return
        if self._queue.qsize() >= self._max_pending:
            self._tally.count("dropped")
            if not self._overflowing:
                self._overflowing = True
                logger.error(
                    "tocsin bridge queue is full (%d messages wait for the broker): dropping "
                    "this send of %r and the ones after it until the broker catches up",
                    self._max_pending,
                    signal,
                )
            return
        self._queue.put((name, data))

    def stop(self, timeout: float) -> None:
        """Publish what is queued, for up to ``timeout`` seconds, then end the thread.

        What is still unpublished then is counted as dropped and logged.
        """
        # The marker goes first: once _stopping is set, a queue of one holds only the marker.
        self._queue.put(_END)
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            # A connect or publish in progress ends at the client's own socket timeout;
            # the thread is a daemon, so a stuck one cannot keep the process alive.
            self._thread.join(1.0)
        self._drop_leftovers([])  # a send that raced with stop() may have queued one
        self._stopped = True
        self._drop_leftovers([])  # ...even while the line above ran

    def _run(self) -> None:
        publisher: Publisher | None = None
        backoff = Backoff()
        batch: list[Message] = []
        try:
            while not self._abandon.is_set():
                if publisher is None:
                    if not batch and self._stopping.is_set() and self._queue.qsize() <= 1:
                        return  # nothing left but (at most) the end marker
                    publisher = self._connect(backoff)
                    continue
                if not batch:
                    if self._ended:
                        return
                    taken = self._take()
                    if taken is None:
                        try:
                            publisher.ping()
                        except Exception as error:
                            self.link.down("reach the broker", error)
                            self._discard(publisher, backoff)
                            publisher = None
                        continue
                    batch = taken
                    if not batch:
                        continue
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

    def _take(self) -> list[Message] | None:
        """Up to _BATCH messages, waiting up to _IDLE_PING for the first; None if none came.

        Sets ``_ended`` on meeting the end marker, which it leaves out."""
        messages = self._queue
        try:
            message = messages.get(timeout=_IDLE_PING)
        except queue.Empty:
            return None
        batch: list[Message] = []
        while True:
            if message is _END:
                self._ended = True
                break
            batch.append(message)
            if len(batch) >= _BATCH:
                break
            try:
                message = messages.get_nowait()
            except queue.Empty:
                break
        self._in_flight = len(batch)
        if self._overflowing and messages.qsize() < self._max_pending:
            self._overflowing = False
            logger.warning("tocsin bridge queue has room again; see bridge.stats.dropped")
        return batch

    def _drop_leftovers(self, batch: list[Message]) -> None:
        left = len(batch)
        while True:
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                break
            if message is not _END:
                left += 1
        self._in_flight = 0
        if left:
            self._tally.count("dropped", left)
            logger.error(
                "tocsin bridge stopped with %d message(s) the broker had not taken: dropped",
                left,
            )
