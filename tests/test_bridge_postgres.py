"""PostgresTransport against a real PostgreSQL on 127.0.0.1 (conftest.py's ``postgres_server``,
made by initdb in a temporary directory and run as an unprivileged user): what PostgreSQL alone
offers, sends inside the user's transactions (committed and rolled back), and its payload
limit. The scenarios every broker shares are in test_bridge_brokers.py."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'tocsin[postgres]'")

import psycopg

from benchmarks.brokers import PostgresServer
from tocsin import Signal
from tocsin.bridge import Bridge, MemoryTransport
from tocsin.bridge.postgres import PostgresTransport

WAIT = 20.0


def test_only_a_committed_transaction_publishes_its_sends(
    postgres_server: PostgresServer, inbox: Callable[[Signal], queue.Queue[int]]
) -> None:
    dsn = postgres_server.dsn
    here, there = Signal(name="ticks"), Signal(name="ticks")
    arrived = inbox(there)
    a, b = Bridge(PostgresTransport(dsn)), Bridge(PostgresTransport(dsn))
    a.forward(here)
    b.listen(there)
    with a, b, psycopg.connect(dsn) as connection, a.publish_on(connection):
        with connection.transaction(force_rollback=True):
            here.send(None, n=1)
            here.send(None, n=2)
        with connection.transaction():
            here.send(None, n=3)
            here.send(None, n=3)  # two identical sends: both arrive, none folded
            here.send(None, n=4)
        assert [arrived.get(timeout=WAIT) for _ in range(3)] == [3, 3, 4]
    assert arrived.empty()
    assert a.stats.sent == 5  # handed to PostgreSQL; the rolled-back two never left it


def test_publish_on_needs_a_psycopg_connection(postgres_server: PostgresServer) -> None:
    bridge = Bridge(PostgresTransport(postgres_server.dsn))

    async def try_async() -> None:
        async with await psycopg.AsyncConnection.connect(postgres_server.dsn) as connection:
            with (
                pytest.raises(TypeError, match="AsyncConnection cannot be used"),
                bridge.publish_on(connection),
            ):
                pass

    asyncio.run(try_async())
    with (
        pytest.raises(TypeError, match="takes a psycopg Connection"),
        bridge.publish_on("dbname=postgres"),
    ):
        pass
    with (
        pytest.raises(TypeError, match=r"publish_on\(\) needs a transport"),
        Bridge(MemoryTransport()).publish_on(object()),
    ):
        pass


def test_a_message_over_the_notify_limit_is_refused_at_the_send(
    postgres_server: PostgresServer,
) -> None:
    ticks = Signal(name="ticks")
    local: list[int] = []
    ticks.connect(lambda sender, **kwargs: local.append(1), weak=False)
    with Bridge(PostgresTransport(postgres_server.dsn)) as bridge:
        bridge.forward(ticks)
        ticks.send(None, text="x" * 7000)
        with pytest.raises(ValueError, match="shorter than 8000 bytes") as raised:
            ticks.send(None, text="x" * 8000)
        assert str(raised.value).startswith("<Signal 'ticks'>.send(): the bridge cannot forward")
        assert local == [1]
