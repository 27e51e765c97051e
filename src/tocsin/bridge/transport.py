"""What a bridge needs from a broker: publishing, subscribing, and a size limit.

A transport is a thin adapter over a broker's own client. It makes connections; the bridge
decides when, runs them in its threads (or on its event loop), and reconnects after a
failure. So a transport method either does its job or raises: no retries, no backoff, no
threads of its own. ``RedisTransport``, ``PostgresTransport`` and ``MemoryTransport`` are the
ones tocsin ships; these protocols say what a new one must provide.

Names are the names signals are published under; data is the bytes of one message, envelope
included. A transport carries the bytes unchanged, and the messages of one publisher to each
subscriber in the order they were published.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

__all__ = ["AsyncSubscription", "Publisher", "Subscription", "TransactionalTransport", "Transport"]


class Publisher(Protocol):
    """One connection for publishing, used by one thread at a time."""

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Hand ``(name, data)`` messages to the broker, in order; raise if that failed."""
        ...

    def ping(self) -> None:
        """Raise if the connection is no longer usable (called when publishing is idle)."""
        ...

    def close(self) -> None:
        """Close the connection; never raises."""
        ...


class Subscription(Protocol):
    """One connection receiving what is published under some names, in one thread."""

    def receive(self, timeout: float) -> list[bytes]:
        """What arrived, waiting up to ``timeout`` seconds for something; raise if the
        connection failed. May return messages of names not subscribed to."""
        ...

    def add(self, names: Collection[str]) -> None:
        """Also receive what is published under ``names`` from now on."""
        ...

    def close(self) -> None:
        """Close the connection; never raises."""
        ...


class AsyncSubscription(Protocol):
    """``Subscription`` for an event loop."""

    async def receive(self, timeout: float) -> list[bytes]:
        """See ``Subscription.receive``."""
        ...

    async def add(self, names: Collection[str]) -> None:
        """See ``Subscription.add``."""
        ...

    async def close(self) -> None:
        """See ``Subscription.close``."""
        ...


class Transport(Protocol):
    """Makes the connections a bridge uses; holds the broker's address, no connection."""

    def publisher(self) -> Publisher:
        """A new, connected publisher; raises if the broker cannot be reached."""
        ...

    def subscribe(self, names: Collection[str]) -> Subscription:
        """A new connection, subscribed to ``names`` by the time this returns."""
        ...

    async def asubscribe(self, names: Collection[str]) -> AsyncSubscription:
        """``subscribe`` on the running event loop."""
        ...

    def check(self, data: bytes) -> None:
        """Raise ``ValueError`` saying why, if the broker cannot carry ``data``."""
        ...


class TransactionalTransport(Transport, Protocol):
    """A transport that can also publish inside a transaction on the user's own connection,
    so that the message goes out only if the transaction commits (see
    ``Bridge.publish_on``)."""

    def check_connection(self, connection: object) -> None:
        """Raise ``TypeError`` saying why, if ``publish_in`` cannot use ``connection``."""
        ...

    def publish_in(self, connection: object, name: str, data: bytes) -> None:
        """Publish on ``connection``, as part of its current transaction if it has one."""
        ...
