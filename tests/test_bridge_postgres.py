"""PostgresTransport against a real PostgreSQL on 127.0.0.1, made by initdb in a temporary
directory and run as an unprivileged user: three processes, a server restarted mid-stream,
sends inside the user's transactions (committed and rolled back), the payload limit, the
async listener."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'tocsin[postgres]'")

import psycopg
from bridge_peer import three_processes

from benchmarks.brokers import PostgresServer, Unavailable
from tocsin import Signal
from tocsin.bridge import Bridge, MemoryTransport, incoming
from tocsin.bridge.postgres import PostgresTransport

WAIT = 20.0


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    try:
        running = PostgresServer()
    except Unavailable as reason:
        pytest.skip(f"no PostgreSQL server here: {reason}")
    with running:
        yield running


def _inbox(signal: Signal) -> queue.Queue[int]:
    arrived: queue.Queue[int] = queue.Queue()

    def on_tick(sender: object, n: int, **kwargs: Any) -> None:
        if incoming() is not None:
            arrived.put(n)

    signal.connect(on_tick, weak=False)
    return arrived


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)  # polling a bridge's state; bounded by the deadline


def test_1000_sends_reach_each_of_two_other_processes_once_and_in_order(
    server: PostgresServer,
) -> None:
    received = three_processes("postgres", server.dsn, 1000)
    assert received == [list(range(1000)), list(range(1000))]


def test_forward_and_listen_in_one_process_does_not_echo(server: PostgresServer) -> None:
    here, there = Signal(name="ticks"), Signal(name="ticks")
    here_inbox, there_inbox = _inbox(here), _inbox(there)
    a, b = Bridge(PostgresTransport(server.dsn)), Bridge(PostgresTransport(server.dsn))
    for bridge, signal in ((a, here), (b, there)):
        bridge.forward(signal)
        bridge.listen(signal)
    with a, b:
        here.send(None, n=1)
        assert there_inbox.get(timeout=WAIT) == 1
        there.send(None, n=2)
        assert here_inbox.get(timeout=WAIT) == 2  # not 1: A never hears its own message
    assert here_inbox.empty() and there_inbox.empty()
    assert (a.stats.sent, a.stats.received, b.stats.sent, b.stats.received) == (1, 1, 1, 1)


def test_only_a_committed_transaction_publishes_its_sends(server: PostgresServer) -> None:
    here, there = Signal(name="ticks"), Signal(name="ticks")
    arrived = _inbox(there)
    a, b = Bridge(PostgresTransport(server.dsn)), Bridge(PostgresTransport(server.dsn))
    a.forward(here)
    b.listen(there)
    with a, b, psycopg.connect(server.dsn) as connection, a.publish_on(connection):
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


def test_publish_on_needs_a_psycopg_connection(server: PostgresServer) -> None:
    bridge = Bridge(PostgresTransport(server.dsn))

    async def try_async() -> None:
        async with await psycopg.AsyncConnection.connect(server.dsn) as connection:
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


def test_a_message_over_the_notify_limit_is_refused_at_the_send(server: PostgresServer) -> None:
    ticks = Signal(name="ticks")
    local: list[int] = []
    ticks.connect(lambda sender, **kwargs: local.append(1), weak=False)
    with Bridge(PostgresTransport(server.dsn)) as bridge:
        bridge.forward(ticks)
        ticks.send(None, text="x" * 7000)
        with pytest.raises(ValueError, match="shorter than 8000 bytes") as raised:
            ticks.send(None, text="x" * 8000)
        assert str(raised.value).startswith("<Signal 'ticks'>.send(): the bridge cannot forward")
        assert local == [1]


def test_the_bridge_reconnects_after_a_restart_and_later_sends_arrive(
    server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    here, there = Signal(name="ticks"), Signal(name="ticks")
    arrived = _inbox(there)
    a, b = Bridge(PostgresTransport(server.dsn)), Bridge(PostgresTransport(server.dsn))
    a.forward(here)
    b.listen(there)
    with a, b:
        for n in range(100):
            here.send(None, n=n)
        assert [arrived.get(timeout=WAIT) for _ in range(100)] == list(range(100))
        server.stop()
        for n in range(100, 150):  # while it is down: never held up, maybe lost
            here.send(None, n=n)
        server.start()
        _wait_until(lambda: b.stats.reconnects >= 1 and b.health().connected, "B reconnects")
        for n in range(150, 250):
            here.send(None, n=n)
        later = []
        while not later or later[-1] != 249:
            later.append(arrived.get(timeout=WAIT))
    assert later == sorted(set(later))  # in order, none twice
    assert later[-100:] == list(range(150, 250))
    assert b.stats.errors >= 1
    assert "reconnected" in caplog.text


def test_the_async_listener_delivers_on_the_event_loop(server: PostgresServer) -> None:
    here = Signal(name="ticks")
    a = Bridge(PostgresTransport(server.dsn))
    a.forward(here)

    async def main() -> list[int]:
        there = Signal(name="ticks")
        got: asyncio.Queue[int] = asyncio.Queue()

        async def on_tick(sender: object, n: int, **kwargs: Any) -> None:
            origin = incoming()
            assert origin is not None and origin.bridge == a.id
            await got.put(n)

        there.connect(on_tick, weak=False)
        b = Bridge(PostgresTransport(server.dsn))
        b.listen(there)
        async with b:
            assert b.health().connected
            with a:
                for n in range(50):
                    here.send(None, n=n)
                return [await asyncio.wait_for(got.get(), WAIT) for _ in range(50)]

    assert asyncio.run(main()) == list(range(50))


def test_undecodable_notifications_on_the_channel_are_dropped(
    server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    there, here = Signal(name="ticks"), Signal(name="ticks")
    arrived = _inbox(there)
    b, a = Bridge(PostgresTransport(server.dsn)), Bridge(PostgresTransport(server.dsn))
    b.listen(there)
    a.forward(here)
    with b, a, psycopg.connect(server.dsn, autocommit=True) as raw:
        raw.execute("NOTIFY tocsin, 'hello from somebody else'")
        raw.execute("NOTIFY tocsin, 'b!!not base64'")
        here.send(None, n=7)
        assert arrived.get(timeout=WAIT) == 7
    assert b.stats.dropped == 2
    assert caplog.text.count("could not decode") == 2
