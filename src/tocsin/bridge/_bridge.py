"""``Bridge``: sends of chosen signals published on a broker, and what other processes
publish sent here.

Forwarding watches a signal's sends with ``tocsin._registry.observe``: the observer runs in
the sending thread before any receiver, at every send method, so it can encode the send
there and then, refuse what cannot be encoded before a receiver has run, and queue the bytes
for the publisher thread (``_publisher``). Listening reads the broker in a thread or a task
(``_listener``) and sends each message through the local signal with ``send_robust`` or
``asend_robust``.

Loops. A bridge that forwards and listens to one name would publish again what it received,
and two bridges doing so in one process would bounce a message between them forever. So the
send by which a bridge delivers a message is never forwarded, by any bridge. A context
variable marks the delivery; the first observation of the delivered signal inside it claims
the send's keyword dict, and every forwarding observer skips exactly that send (observers of
one send share its dict). A send that a receiver makes during the delivery has a dict of
its own and is forwarded as usual. And a bridge skips messages that carry its own id.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, cast

from tocsin import _registry
from tocsin.bridge._envelope import Envelopes, Incoming, delivering, open_envelope
from tocsin.bridge._health import Health, Stats, Tally, logger
from tocsin.bridge._listener import ListenerTask, ListenerThread
from tocsin.bridge._publisher import PublisherThread
from tocsin.bridge.codec import Codec, JsonCodec
from tocsin.bridge.transport import TransactionalTransport, Transport
from tocsin.dispatcher import Signal

__all__ = ["Bridge"]

# How long start() waits for the first attempt to connect, so that health() means
# something when it returns. A broker that is down fails fast; one that does not answer
# makes start() return after this, still trying in the background.
_START_WAIT = 5.0


class _Redelivery:
    """Marks the send by which a bridge delivers a message (see the module docstring)."""

    __slots__ = ("named", "signal")

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.named: Mapping[str, Any] | None = None


_redelivery: ContextVar[_Redelivery | None] = ContextVar("tocsin_bridge_redelivery", default=None)

# Bridge id -> the connection its forwarded sends are published on, inside publish_on().
_transactions: ContextVar[Mapping[str, object] | None] = ContextVar(
    "tocsin_bridge_transactions", default=None
)


class Bridge:
    """Carries sends of chosen signals between processes through a broker.

    ``transport`` is a ``RedisTransport``, a ``PostgresTransport``, a ``MemoryTransport`` or
    your own (see ``tocsin.bridge.transport``). ``codec`` turns a send into bytes and back
    (default: ``JsonCodec``). At most ``max_pending`` forwarded sends wait for the broker;
    sends beyond that are dropped, counted and logged rather than held up.

    Say what to carry with ``forward()`` and ``listen()``, then start it: ``with bridge:``,
    ``start()``/``stop()``, or on an event loop ``async with bridge:`` or
    ``await astart()``/``await astop()``.
    """

    def __init__(
        self, transport: Transport, *, codec: Codec | None = None, max_pending: int = 10_000
    ) -> None:
        if type(max_pending) is not int or max_pending < 1:
            raise ValueError(f"Bridge(max_pending=...) takes a positive int; got {max_pending!r}")
        self.transport = transport
        self.codec: Codec = JsonCodec() if codec is None else codec
        self.id = uuid.uuid4().hex
        """This bridge's id, unique across processes; messages carry it (``Incoming.bridge``).
        A bridge made before a fork gets a new one when it starts in the child."""
        self._max_pending = max_pending
        self._envelopes = Envelopes(self.id)
        self._lock = threading.Lock()
        self._forwards: dict[int, tuple[Signal, str]] = {}  # id(signal) -> (signal, name)
        self._observations: dict[int, _registry.Observation] = {}
        self._listens: dict[str, Signal] = {}
        self._listened_names: frozenset[str] = frozenset()
        self._tally = Tally()
        self._publisher: PublisherThread | None = None
        self._listener: ListenerThread | ListenerTask | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set while started by astart()
        self._running = False

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<Bridge {self.id[:8]} {state} over {self.transport!r}>"

    # -- what to carry ----------------------------------------------------------------------

    def forward(self, signal: Signal, *, name: str | None = None) -> None:
        """Publish every send of ``signal`` in this process under ``name``, while running.

        ``name`` defaults to ``signal.name``. Every send method is forwarded. A send whose
        sender or arguments the codec cannot encode raises ``TypeError`` before any receiver
        runs; a send the broker could not carry (too large) raises ``ValueError``.
        """
        name = _name_for(signal, name, "forward")
        with self._lock:
            if id(signal) in self._forwards:
                raise ValueError(
                    f"{signal!r} is already forwarded by this bridge, under the name "
                    f"{self._forwards[id(signal)][1]!r}"
                )
            self._forwards[id(signal)] = (signal, name)
            if self._running:
                self._observe(signal, name)

    def listen(self, signal: Signal, *, name: str | None = None) -> None:
        """Send through ``signal`` here what other processes publish under ``name``.

        ``name`` defaults to ``signal.name``. Each message is sent with ``send_robust``
        (``asend_robust`` when the bridge runs on an event loop), so a failing receiver is
        logged and the others still run. Called while running, it returns once the new
        name is subscribed to (on an event loop: shortly after it returns).
        """
        name = _name_for(signal, name, "listen")
        with self._lock:
            if name in self._listens:
                raise ValueError(
                    f"this bridge already listens to {name!r} with {self._listens[name]!r}"
                )
            self._listens[name] = signal
            self._listened_names = frozenset(self._listens)
            listener = self._listener
            if self._running and listener is None:
                listener = self._start_listener()
        if isinstance(listener, ListenerThread):
            listener.wait_subscribed(_START_WAIT)

    @contextmanager
    def publish_on(self, connection: object) -> Iterator[None]:
        """Within the block, publish forwarded sends on ``connection``, in its transaction.

        A send inside a transaction on ``connection`` then reaches other processes only if
        that transaction commits, at the commit. The publishing happens in the sending
        thread, on the user's connection, so an error from it (a broken connection, say)
        raises from the send. Applies to this thread or task only. Needs a transport that
        supports it (``PostgresTransport`` with a psycopg ``Connection``).
        """
        transport = self.transport
        check = getattr(transport, "check_connection", None)
        if check is None or not hasattr(transport, "publish_in"):
            raise TypeError(
                f"publish_on() needs a transport that publishes inside a transaction, such "
                f"as PostgresTransport; {transport!r} cannot"
            )
        check(connection)
        token = _transactions.set({**(_transactions.get() or {}), self.id: connection})
        try:
            yield
        finally:
            _transactions.reset(token)

    # -- starting and stopping --------------------------------------------------------------

    def start(self) -> Bridge:
        """Start forwarding and listening, with the listener in a thread; returns the bridge.

        Returns once the first connections were tried (a few seconds at most), whether or
        not the broker answered: a bridge whose broker is down keeps trying in the
        background, and ``health()`` says how it is going.
        """
        with self._lock:
            self._begin(None)
            listener = self._start_listener() if self._listens else None
            publisher = self._publisher
        assert publisher is not None
        publisher.ready.wait(_START_WAIT)
        if isinstance(listener, ListenerThread):
            listener.ready.wait(_START_WAIT)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop forwarding and listening; publish what is queued, for up to ``timeout`` s.

        What the broker has not taken by then is dropped and counted. Does nothing if the
        bridge is not running. A bridge started with ``astart()`` is stopped with ``astop()``.
        """
        if self._loop is not None:
            raise RuntimeError(f"{self!r} was started with astart(); stop it with astop()")
        publisher, listener = self._end()
        if isinstance(listener, ListenerThread):
            listener.stop()
        if publisher is not None:
            publisher.stop(timeout)

    async def astart(self) -> Bridge:
        """Like ``start()``, but the listener runs as a task on the running event loop, and
        async receivers are awaited there (``asend_robust``). Returns the bridge."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._begin(loop)
            listener = self._start_listener() if self._listens else None
            publisher = self._publisher
        assert publisher is not None
        if isinstance(listener, ListenerTask):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.ready.wait(), _START_WAIT)
        await asyncio.to_thread(publisher.ready.wait, _START_WAIT)
        return self

    async def astop(self, timeout: float = 5.0) -> None:
        """Like ``stop()``, for a bridge started with ``astart()`` (or ``start()``)."""
        publisher, listener = self._end()
        if isinstance(listener, ListenerTask):
            await listener.stop()
        elif listener is not None:
            await asyncio.to_thread(listener.stop)
        if publisher is not None:
            await asyncio.to_thread(publisher.stop, timeout)

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Bridge:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.astop()

    def _begin(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Called with the lock held: start publishing and forwarding."""
        if self._running:
            raise RuntimeError(f"{self!r} is already running")
        if self._envelopes.pid != os.getpid():
            # Made before a fork: sharing the parent's id, the processes would take each
            # other's messages for their own and skip them.
            self.id = uuid.uuid4().hex
            self._envelopes = Envelopes(self.id)
        self._running = True
        self._loop = loop
        self._publisher = PublisherThread(self.transport, self._tally, self._max_pending)
        self._publisher.start()
        for signal, name in self._forwards.values():
            self._observe(signal, name)

    def _end(self) -> tuple[PublisherThread | None, ListenerThread | ListenerTask | None]:
        with self._lock:
            if not self._running:
                return None, None
            self._running = False
            self._loop = None
            # No send can queue a message once this returns (but one already in an observer).
            for observation in self._observations.values():
                observation.close()
            self._observations.clear()
            publisher, listener = self._publisher, self._listener
            self._publisher = self._listener = None
        return publisher, listener

    def _start_listener(self) -> ListenerThread | ListenerTask:
        """Called with the lock held, while running."""
        listener: ListenerThread | ListenerTask
        if self._loop is None:
            listener = ListenerThread(self.transport, self._tally, self._names, self._deliver)
            listener.start()
        else:
            listener = ListenerTask(self.transport, self._tally, self._names, self._adeliver)
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                listener.start()
            else:
                self._loop.call_soon_threadsafe(listener.start)
        self._listener = listener
        return listener

    # -- what it reports --------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        """Counts of messages sent, received and dropped, broker errors and reconnections."""
        return self._tally.stats()

    def health(self) -> Health:
        """Whether the bridge is running and connected, how much waits, the last failure."""
        publisher, listener = self._publisher, self._listener
        connected = (
            self._running
            and publisher is not None
            and publisher.link.connected
            and (listener is None or listener.link.connected)
        )
        pending = 0 if publisher is None else publisher.pending()
        return Health(self._running, connected, pending, self._tally.last_error)

    # -- forwarding -------------------------------------------------------------------------

    def _observe(self, signal: Signal, name: str) -> None:
        """Called with the lock held, while running: start forwarding ``signal``."""
        publisher = self._publisher
        assert publisher is not None
        encode = self.codec.encode
        check = self.transport.check
        wrap = self._envelopes.wrap
        prefix = self._envelopes.prefix(name)
        bridge_id = self.id

        def forward_send(
            signal: Signal, sender: object, named: Mapping[str, Any], method: str
        ) -> None:
            redelivery = _redelivery.get()
            if redelivery is not None and redelivery.signal is signal:
                if redelivery.named is None:
                    redelivery.named = named
                if redelivery.named is named:
                    return  # a bridge delivering a message: never publish it again
            try:
                body = encode(name, sender, named)
            except Exception as error:
                raise self._encoding_error(signal, method, name, sender, named, error) from error
            data = wrap(prefix, body)
            try:
                check(data)
            except ValueError as error:
                raise ValueError(
                    f"{signal!r}.{method}(): the bridge cannot forward it: {error}"
                ) from None
            transactions = _transactions.get()
            connection = None if transactions is None else transactions.get(bridge_id)
            if connection is None:
                publisher.put(name, data, signal)
            else:
                self._publish_in(connection, name, data)

        self._observations[id(signal)] = _registry.observe(forward_send, signal)

    def _publish_in(self, connection: object, name: str, data: bytes) -> None:
        # publish_on() has checked that the transport has publish_in().
        transport = cast(TransactionalTransport, self.transport)
        transport.publish_in(connection, name, data)
        self._tally.count("sent")

    def _encoding_error(
        self,
        signal: Signal,
        method: str,
        name: str,
        sender: object,
        named: Mapping[str, Any],
        error: Exception,
    ) -> TypeError:
        """A TypeError naming what the codec could not encode, found by trying each part
        alone (this runs only when a send failed, so its cost does not matter)."""
        culprit, reason = "this send", error
        for key, value in named.items():
            try:
                self.codec.encode(name, None, {key: value})
            except Exception as probe:
                culprit, reason = f"argument {key!r}", probe
                break
        else:
            try:
                self.codec.encode(name, sender, {})
            except Exception as probe:
                culprit, reason = "the sender", probe
        return TypeError(f"{signal!r}.{method}(): the bridge cannot forward {culprit}: {reason}")

    # -- listening --------------------------------------------------------------------------

    def _names(self) -> frozenset[str]:
        return self._listened_names

    def _open(self, data: bytes) -> tuple[Signal, object, dict[str, Any], Incoming] | None:
        """What to send for a message, or None for one to skip (logged if undecodable)."""
        try:
            name, origin, body = open_envelope(data)
        except ValueError as error:
            self._drop(data, error)
            return None
        if origin.bridge == self.id:
            return None  # our own message, back from the broker
        signal = self._listens.get(name)
        if signal is None:
            return None  # a name other bridges on this channel listen to
        try:
            decoded_name, sender, kwargs = self.codec.decode(body)
        except Exception as error:
            self._drop(data, error)
            return None
        if decoded_name != name:
            self._drop(data, ValueError(f"its envelope says {name!r}, its body {decoded_name!r}"))
            return None
        return signal, sender, kwargs, origin

    def _drop(self, data: bytes, error: Exception) -> None:
        self._tally.count("dropped")
        logger.warning(
            "tocsin bridge dropped a message it could not decode (%s): %r",
            error,
            data[:200],
        )

    def _deliver(self, data: bytes) -> None:
        """Deliver one message in the listener thread, in a context of its own."""
        message = self._open(data)
        if message is not None:
            contextvars.copy_context().run(self._send, *message)

    def _send(
        self, signal: Signal, sender: object, kwargs: dict[str, Any], origin: Incoming
    ) -> None:
        delivering.set(origin)
        _redelivery.set(_Redelivery(signal))
        try:
            signal.send_robust(sender, **kwargs)
        except Exception as error:  # not a receiver's: send_robust keeps those
            self._refused(signal, error)
            return
        except BaseException as error:
            # What send_robust lets through (a receiver's SystemExit, or CancelledError from
            # an async one) must not end the listener: every later message would be lost.
            self._escaped(signal, error)
            return
        self._tally.count("received")

    async def _adeliver(self, data: bytes) -> None:
        """Deliver one message on the event loop, in a task with a context of its own."""
        message = self._open(data)
        if message is None:
            return
        signal, sender, kwargs, origin = message
        context = contextvars.copy_context()
        context.run(delivering.set, origin)
        context.run(_redelivery.set, _Redelivery(signal))
        sending = signal.asend_robust(sender, **kwargs)
        try:
            await asyncio.get_running_loop().create_task(sending, context=context)
        except Exception as error:
            self._refused(signal, error)
            return
        except asyncio.CancelledError as error:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the listener itself is being cancelled: stop
            self._escaped(signal, error)  # a receiver's task was: the listener goes on
            return
        self._tally.count("received")

    def _escaped(self, signal: Signal, error: BaseException) -> None:
        """A receiver raised what a robust send does not catch; the listener goes on."""
        self._tally.failure("delivery", error)
        logger.error(
            "tocsin bridge delivered a message through %r, and a receiver raised %s, which "
            "send_robust does not catch; the listener goes on",
            signal,
            type(error).__name__,
            exc_info=error,
        )

    def _refused(self, signal: Signal, error: Exception) -> None:
        """The local send refused a message (strict mode and other declared arguments)."""
        self._tally.count("dropped")
        logger.error("tocsin bridge could not send a message through %r: %s", signal, error)


def _name_for(signal: Signal, name: str | None, method: str) -> str:
    if not isinstance(signal, Signal):
        raise TypeError(f"Bridge.{method}() takes a tocsin Signal; got {signal!r}")
    if name is None:
        name = signal.name
        if name is None:
            raise ValueError(
                f"Bridge.{method}({signal!r}): the signal has no name to publish it under; "
                f"pass name='...' (the same in every process)"
            )
    if not isinstance(name, str) or not name:
        raise TypeError(f"Bridge.{method}({signal!r}): name must be a non-empty str; got {name!r}")
    return name
