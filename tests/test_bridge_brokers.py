"""The bridge over each real broker, Redis and PostgreSQL: every scenario here runs against
both, on servers on 127.0.0.1 that conftest.py starts and stops: three processes, a broker
restarted mid-stream, a broker that is down, the async listener, foreign messages on the
channel. What one broker alone does (PostgreSQL's transactions, its payload limit) is tested
in test_bridge_postgres.py."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from bridge_peer import three_processes

from benchmarks.brokers import PostgresServer, RedisServer, free_port
from tocsin import Signal
from tocsin.bridge import Bridge, incoming
from tocsin.bridge.postgres import PostgresTransport
from tocsin.bridge.redis import RedisTransport
from tocsin.bridge.transport import Transport

WAIT = 20.0

Inbox = Callable[[Signal], queue.Queue[int]]


@dataclass(frozen=True)
class Broker:
    """One kind of broker, as the scenarios use it."""

    kind: str
    """Its name for bridge_peer.py, and for the server fixture: ``<kind>_server``."""
    client: str
    """The module of its client library, an optional extra."""
    missing: str
    """Why its scenarios are skipped where that library is not installed."""
    transport: Callable[[str], Transport]
    """A transport to the server at an address."""
    nowhere: Callable[[], str]
    """An address on 127.0.0.1 where no server listens."""
    publish_foreign: Callable[[str], int]
    """Publish, on the channel a bridge listening to ``ticks`` reads, messages that no
    bridge made (garbage to a bridge); return how many."""


def _publish_foreign_redis(url: str) -> int:
    import redis

    with redis.Redis.from_url(url) as raw:
        raw.publish("tocsin:ticks", b"\x00\x01 garbage")
    return 1


def _publish_foreign_postgres(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute("NOTIFY tocsin, 'hello from somebody else'")  # neither t... nor b...
        raw.execute("NOTIFY tocsin, 'b!!not base64'")
    return 2


BROKERS = {
    "redis": Broker(
        kind="redis",
        client="redis",
        missing="the redis client is not installed: pip install 'tocsin[redis]'",
        transport=RedisTransport,
        nowhere=lambda: f"redis://127.0.0.1:{free_port()}/0",
        publish_foreign=_publish_foreign_redis,
    ),
    "postgres": Broker(
        kind="postgres",
        client="psycopg",
        missing="psycopg is not installed: pip install 'tocsin[postgres]'",
        transport=PostgresTransport,
        nowhere=lambda: f"host=127.0.0.1 port={free_port()}",
        publish_foreign=_publish_foreign_postgres,
    ),
}


@pytest.fixture(scope="module", params=list(BROKERS))
def broker(request: pytest.FixtureRequest) -> Broker:
    """Each broker in turn; skipped, saying why, where its client library is missing."""
    chosen = BROKERS[request.param]
    pytest.importorskip(chosen.client, reason=chosen.missing)
    return chosen


@pytest.fixture(scope="module")
def server(broker: Broker, request: pytest.FixtureRequest) -> RedisServer | PostgresServer:
    """This module's running server of the broker (see conftest.py)."""
    running: RedisServer | PostgresServer = request.getfixturevalue(f"{broker.kind}_server")
    return running


@pytest.fixture
def address(server: RedisServer | PostgresServer) -> str:
    """What a transport connects to the server with: its URL, or its DSN."""
    return server.url if isinstance(server, RedisServer) else server.dsn


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)  # polling a bridge's state; bounded by the deadline


def test_1000_sends_reach_each_of_two_other_processes_once_and_in_order(
    broker: Broker, address: str
) -> None:
    received = three_processes(broker.kind, address, 1000)
    assert received == [list(range(1000)), list(range(1000))]


def test_forward_and_listen_in_one_process_does_not_echo(
    broker: Broker, address: str, inbox: Inbox
) -> None:
    here, there = Signal(name="ticks"), Signal(name="ticks")
    here_inbox, there_inbox = inbox(here), inbox(there)
    a, b = Bridge(broker.transport(address)), Bridge(broker.transport(address))
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


def test_the_bridge_reconnects_after_a_restart_and_later_sends_arrive(
    broker: Broker,
    server: RedisServer | PostgresServer,
    address: str,
    inbox: Inbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    here, there = Signal(name="ticks"), Signal(name="ticks")
    arrived = inbox(there)
    a, b = Bridge(broker.transport(address)), Bridge(broker.transport(address))
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


def test_a_broker_that_is_down_never_breaks_or_holds_up_a_send(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = Signal(name="ticks")
    local: list[int] = []
    ticks.connect(lambda sender, n, **kwargs: local.append(n), weak=False)
    bridge = Bridge(broker.transport(broker.nowhere()))
    bridge.forward(ticks)
    bridge.listen(Signal(name="other"))
    bridge.start()
    try:
        assert not bridge.health().connected

        def send_many() -> None:
            for n in range(1000):
                ticks.send(None, n=n)

        worker = threading.Thread(target=send_many)
        worker.start()
        worker.join(WAIT)
        assert not worker.is_alive()
        assert local == list(range(1000))
        _wait_until(lambda: bridge.stats.errors >= 2, "both connections have failed")
        health = bridge.health()
        assert health.running and not health.connected
        assert health.last_error is not None and "Connection refused" in health.last_error
    finally:
        bridge.stop(timeout=0.1)
    assert bridge.stats.dropped == 1000
    assert bridge.stats.sent == 0
    assert "could not connect" in caplog.text


@pytest.mark.parametrize("listening", ["before it starts", "once it runs"])
def test_the_async_listener_delivers_on_the_event_loop(
    broker: Broker, address: str, listening: str
) -> None:
    here = Signal(name="ticks")
    a = Bridge(broker.transport(address))
    a.forward(here)

    async def main() -> list[int]:
        there = Signal(name="ticks")
        got: asyncio.Queue[int] = asyncio.Queue()

        async def on_tick(sender: object, n: int, **kwargs: Any) -> None:
            origin = incoming()
            assert origin is not None and origin.bridge == a.id
            await got.put(n)

        there.connect(on_tick, weak=False)
        b = Bridge(broker.transport(address))
        if listening == "before it starts":
            b.listen(there)
        async with b:
            if listening == "once it runs":
                b.listen(there)  # on the loop, it subscribes shortly after this returns
                await asyncio.to_thread(_wait_until, b.health, "B is connected")
            assert b.health().connected
            with a:
                for n in range(50):
                    here.send(None, n=n)
                return [await asyncio.wait_for(got.get(), WAIT) for _ in range(50)]

    assert asyncio.run(main()) == list(range(50))


def test_undecodable_messages_on_the_channel_are_dropped(
    broker: Broker, address: str, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    there, here = Signal(name="ticks"), Signal(name="ticks")
    arrived = inbox(there)
    b, a = Bridge(broker.transport(address)), Bridge(broker.transport(address))
    b.listen(there)
    a.forward(here)
    with b, a:
        foreign = broker.publish_foreign(address)
        here.send(None, n=7)
        assert arrived.get(timeout=WAIT) == 7
    assert b.stats.dropped == foreign
    assert caplog.text.count("could not decode") == foreign
