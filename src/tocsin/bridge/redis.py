"""``RedisTransport``: a bridge over Redis pub/sub, with the ``redis`` client
(``pip install 'tocsin[redis]'``).

A name is published on the channel ``prefix + name``; a listener subscribes to the channels
of the names it listens to. Redis pub/sub keeps nothing: a message reaches the subscribers
connected when it is published, in the order each publisher published, and nobody else.

The client's own retries are switched off (``Retry(NoBackoff(), 0)``): the bridge reconnects
by itself, with backoff, and counts and logs each failure, which a retry hidden inside the
client would keep from it. ``redis`` is imported when a transport is made, never before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import redis as redis_client
    import redis.asyncio as redis_asyncio

__all__ = ["RedisTransport"]

# How long a connect, or a command's reply, may take before the bridge counts a failure.
_SOCKET_TIMEOUT = 5.0

# Messages one receive() returns at most, so that a flood cannot keep the listener reading
# without delivering, or from noticing stop().
_MOST_AT_ONCE = 1000


def _import_redis() -> Any:
    try:
        import redis
        import redis.asyncio
        import redis.backoff
        import redis.retry
    except ImportError as error:
        raise ImportError(
            "RedisTransport needs the redis client: pip install 'tocsin[redis]'"
        ) from error
    return redis


class RedisTransport:
    """Redis pub/sub at ``url``, on channels named ``prefix`` + the name of each signal."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "tocsin:") -> None:
        if not isinstance(url, str) or not isinstance(prefix, str):
            raise TypeError(
                f"RedisTransport takes a str url and a str prefix; got {url!r}, {prefix!r}"
            )
        self._redis = _import_redis()
        self.url = url
        self.prefix = prefix
        self._options = {
            "retry": self._redis.retry.Retry(self._redis.backoff.NoBackoff(), 0),
            "socket_timeout": _SOCKET_TIMEOUT,
            "socket_connect_timeout": _SOCKET_TIMEOUT,
        }

    def __repr__(self) -> str:
        return f"RedisTransport({self.url!r}, prefix={self.prefix!r})"

    def publisher(self) -> _Publisher:
        """A connected client that publishes (a batch in one round trip)."""
        client: redis_client.Redis = self._redis.Redis.from_url(self.url, **self._options)
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
        return _Publisher(client, self.prefix)

    def subscribe(self, names: Collection[str]) -> _Subscription:
        """A connection subscribed to the channels of ``names``."""
        client: redis_client.Redis = self._redis.Redis.from_url(self.url, **self._options)
        pubsub = cast(Any, client).pubsub()  # redis-py leaves pubsub() unannotated
        subscription = _Subscription(client, pubsub, self.prefix)
        try:
            subscription.add(names)
        except BaseException:
            subscription.close()
            raise
        return subscription

    async def asubscribe(self, names: Collection[str]) -> _AsyncSubscription:
        """``subscribe`` with ``redis.asyncio``, on the running loop."""
        client: redis_asyncio.Redis = self._redis.asyncio.Redis.from_url(self.url, **self._options)
        pubsub = client.pubsub()
        subscription = _AsyncSubscription(client, pubsub, self.prefix)
        try:
            await subscription.add(names)
        except BaseException:
            await subscription.close()
            raise
        return subscription

    def check(self, data: bytes) -> None:
        """Redis carries up to 512 MB in a message: does nothing."""


class _Publisher:
    def __init__(self, client: redis_client.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        prefix = self._prefix
        if len(messages) == 1:
            name, data = messages[0]
            self._client.publish(prefix + name, data)
            return
        # One round trip for the batch; without a transaction, as each message stands alone.
        pipeline = self._client.pipeline(transaction=False)
        for name, data in messages:
            pipeline.publish(prefix + name, data)
        pipeline.execute()

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


class _Subscription:
    def __init__(self, client: redis_client.Redis, pubsub: Any, prefix: str) -> None:
        self._client = client
        self._pubsub = pubsub
        self._prefix = prefix

    def add(self, names: Collection[str]) -> None:
        channels = [self._prefix + name for name in sorted(names)]
        if not channels:
            return
        self._pubsub.subscribe(*channels)
        # SUBSCRIBE is confirmed once per channel; until then messages may be missed.
        waiting = set(channels)
        deadline = time.monotonic() + _SOCKET_TIMEOUT
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"Redis did not confirm the subscription to {sorted(waiting)}")
            message = self._pubsub.get_message(timeout=remaining)
            if message is not None and message["type"] == "subscribe":
                waiting.discard(_text(message["channel"]))

    def receive(self, timeout: float) -> list[bytes]:
        received = []
        message = self._pubsub.get_message(timeout=timeout)
        while message is not None:
            if message["type"] == "message":
                received.append(bytes(message["data"]))
            if len(received) >= _MOST_AT_ONCE:
                break
            message = self._pubsub.get_message(timeout=0.0)
        return received

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pubsub.close()
            self._client.close()


class _AsyncSubscription:
    def __init__(self, client: redis_asyncio.Redis, pubsub: Any, prefix: str) -> None:
        self._client = client
        self._pubsub = pubsub
        self._prefix = prefix

    async def add(self, names: Collection[str]) -> None:
        channels = [self._prefix + name for name in sorted(names)]
        if not channels:
            return
        await self._pubsub.subscribe(*channels)
        waiting = set(channels)
        async with asyncio.timeout(_SOCKET_TIMEOUT):
            while waiting:
                message = await self._pubsub.get_message(timeout=_SOCKET_TIMEOUT)
                if message is not None and message["type"] == "subscribe":
                    waiting.discard(_text(message["channel"]))

    async def receive(self, timeout: float) -> list[bytes]:
        received = []
        message = await self._pubsub.get_message(timeout=timeout)
        while message is not None:
            if message["type"] == "message":
                received.append(bytes(message["data"]))
            if len(received) >= _MOST_AT_ONCE:
                break
            message = await self._pubsub.get_message(timeout=0.0)
        return received

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
            await self._client.aclose()


def _text(channel: bytes | str) -> str:
    return channel.decode() if isinstance(channel, bytes) else channel
