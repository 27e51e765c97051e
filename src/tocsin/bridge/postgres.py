"""``PostgresTransport``: a bridge over PostgreSQL's LISTEN/NOTIFY, with psycopg 3
(``pip install 'tocsin[postgres]'``).

Every name travels on one notification channel (``channel``); the bridge reads the name from
each message's envelope. What PostgreSQL promises, the bridge inherits: a notification is
delivered when the transaction that sent it commits, never if it rolls back; the
notifications of one transaction arrive in the order they were sent, and transactions'
notifications in the order the transactions committed; a listener gets what is committed
while it is connected, and nothing sent while it was not. That first property is what
``Bridge.publish_on`` offers: a send inside the user's own transaction is published with it.

A payload is text shorter than 8,000 bytes (PostgreSQL's default limit). A message is sent
as ``t`` followed by its bytes when they are UTF-8 text without NUL, else as ``b`` followed
by their base64; a message that would not fit is refused at the send.

psycopg is imported when a transport is made, never before; ``notifies(timeout=...)`` needs
psycopg 3.2 or newer.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresTransport"]

# PostgreSQL's NOTIFY payload "must be shorter than 8000 bytes" in the default build.
PAYLOAD_LIMIT = 8000

_CONNECT_TIMEOUT = 5  # seconds, libpq's connect_timeout
_NOTIFY = "SELECT pg_notify(%s, %s)"


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as error:
        raise ImportError(
            "PostgresTransport needs psycopg 3: pip install 'tocsin[postgres]'"
        ) from error
    return psycopg


class PostgresTransport:
    """PostgreSQL LISTEN/NOTIFY on ``channel``, connecting with ``dsn`` (a libpq connection
    string or URL, as ``psycopg.connect`` takes it)."""

    def __init__(self, dsn: str, *, channel: str = "tocsin") -> None:
        if not isinstance(dsn, str):
            raise TypeError(f"PostgresTransport takes a str dsn; got {dsn!r}")
        if not isinstance(channel, str) or not channel or len(channel.encode()) > 63:
            raise ValueError(
                f"PostgresTransport channel must be a non-empty str of at most 63 bytes "
                f"(a PostgreSQL identifier); got {channel!r}"
            )
        self._psycopg = _import_psycopg()
        self.dsn = dsn
        self.channel = channel

    def __repr__(self) -> str:
        return f"PostgresTransport(channel={self.channel!r})"  # the dsn may hold a password

    def _listen_statement(self) -> Any:
        sql = self._psycopg.sql
        return sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))

    def publisher(self) -> _Publisher:
        """A connection in autocommit mode that publishes (a batch in one transaction)."""
        connection = self._psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
        )
        return _Publisher(connection, self.channel)

    def subscribe(self, names: Collection[str]) -> _Subscription:
        """A connection that LISTENs on the channel (which carries every name)."""
        connection = self._psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
        )
        try:
            connection.execute(self._listen_statement())
        except BaseException:
            connection.close()
            raise
        return _Subscription(connection, self.channel)

    async def asubscribe(self, names: Collection[str]) -> _AsyncSubscription:
        """``subscribe`` with an ``AsyncConnection``, on the running loop."""
        connection = await self._psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
        )
        try:
            await connection.execute(self._listen_statement())
        except BaseException:
            await connection.close()
            raise
        return _AsyncSubscription(connection, self.channel)

    def check(self, data: bytes) -> None:
        """Raise ``ValueError`` if the message would not fit in a NOTIFY payload."""
        size = len(_payload(data).encode())
        if size >= PAYLOAD_LIMIT:
            raise ValueError(
                f"the message is {size} bytes as a NOTIFY payload, and PostgreSQL carries "
                f"payloads shorter than {PAYLOAD_LIMIT} bytes; send less (an id to look up, "
                "say)"
            )

    def check_connection(self, connection: object) -> None:
        """Raise ``TypeError`` unless ``connection`` is a psycopg (sync) ``Connection``."""
        if not isinstance(connection, self._psycopg.Connection):
            hint = ""
            if isinstance(connection, self._psycopg.AsyncConnection):
                hint = " (an AsyncConnection cannot be used from inside a send, which is sync)"
            raise TypeError(f"publish_on() takes a psycopg Connection; got {connection!r}{hint}")

    def publish_in(self, connection: object, name: str, data: bytes) -> None:
        """NOTIFY on ``connection``: inside its transaction, sent at the commit."""
        sync_connection = cast("psycopg.Connection[Any]", connection)  # see check_connection
        sync_connection.execute(_NOTIFY, (self.channel, _payload(data)))


def _payload(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return "t" + text
    return "b" + base64.b64encode(data).decode("ascii")


def _message(payload: str) -> bytes:
    """The bytes ``_payload`` was made from; anything else comes back as it is, for the
    bridge to drop as undecodable."""
    if payload.startswith("t"):
        return payload[1:].encode()
    if payload.startswith("b"):
        with contextlib.suppress(ValueError):
            return base64.b64decode(payload[1:], validate=True)
    return payload.encode()


class _Publisher:
    def __init__(self, connection: psycopg.Connection[Any], channel: str) -> None:
        self._connection = connection
        self._channel = channel

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        channel = self._channel
        if len(messages) == 1:
            self._connection.execute(_NOTIFY, (channel, _payload(messages[0][1])))
            return
        # One transaction: its notifications are delivered together, in this order.
        with self._connection.transaction(), self._connection.cursor() as cursor:
            cursor.executemany(_NOTIFY, [(channel, _payload(data)) for _, data in messages])

    def ping(self) -> None:
        self._connection.execute("SELECT 1")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()


class _Subscription:
    def __init__(self, connection: psycopg.Connection[Any], channel: str) -> None:
        self._connection = connection
        self._channel = channel

    def add(self, names: Collection[str]) -> None:
        pass  # the channel carries every name already

    def receive(self, timeout: float) -> list[bytes]:
        # stop_after=1 ends the wait at the first batch the server sends, however many
        # notifications it holds.
        notifies = self._connection.notifies(timeout=timeout, stop_after=1)
        return [_message(n.payload) for n in notifies if n.channel == self._channel]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()


class _AsyncSubscription:
    def __init__(self, connection: psycopg.AsyncConnection[Any], channel: str) -> None:
        self._connection = connection
        self._channel = channel

    async def add(self, names: Collection[str]) -> None:
        pass  # the channel carries every name already

    async def receive(self, timeout: float) -> list[bytes]:
        notifies = self._connection.notifies(timeout=timeout, stop_after=1)
        async with contextlib.aclosing(notifies):
            return [_message(n.payload) async for n in notifies if n.channel == self._channel]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._connection.close()
