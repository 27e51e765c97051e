"""RedisTransport against a real redis-server on 127.0.0.1, started and stopped here: three
processes, a broker restarted mid-stream, a broker that is down, the async listener."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip(
    "redis", reason="the redis client is not installed: pip install 'tocsin[redis]'"
)

from bridge_peer import three_processes

from benchmarks.brokers import RedisServer, Unavailable, free_port
from tocsin import Signal
from tocsin.bridge import Bridge, incoming
from tocsin.bridge.redis import RedisTransport

WAIT = 20.0


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    try:
        running = RedisServer()
    except Unavailable as reason:
        pytest.skip(f"no Redis server here: {reason}")
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
    server: RedisServer,
) -> None:
    received = three_processes("redis", server.url, 1000)
    assert received == [list(range(1000)), list(range(1000))]


def test_forward_and_listen_in_one_process_does_not_echo(server: RedisServer) -> None:
    here, there = Signal(name="ticks"), Signal(name="ticks")
    here_inbox, there_inbox = _inbox(here), _inbox(there)
    a, b = Bridge(RedisTransport(server.url)), Bridge(RedisTransport(server.url))
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
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    here, there = Signal(name="ticks"), Signal(name="ticks")
    arrived = _inbox(there)
    a, b = Bridge(RedisTransport(server.url)), Bridge(RedisTransport(server.url))
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
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    ticks = Signal(name="ticks")
    local = _inbox_local(ticks)
    bridge = Bridge(RedisTransport(nowhere))
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


def _inbox_local(signal: Signal) -> list[int]:
    calls: list[int] = []

    def on_tick(sender: object, n: int, **kwargs: Any) -> None:
        calls.append(n)

    signal.connect(on_tick, weak=False)
    return calls


def test_the_async_listener_delivers_on_the_event_loop(server: RedisServer) -> None:
    here = Signal(name="ticks")
    a = Bridge(RedisTransport(server.url))
    a.forward(here)

    async def main() -> list[int]:
        there = Signal(name="ticks")
        got: asyncio.Queue[int] = asyncio.Queue()

        async def on_tick(sender: object, n: int, **kwargs: Any) -> None:
            origin = incoming()
            assert origin is not None and origin.bridge == a.id
            await got.put(n)

        there.connect(on_tick, weak=False)
        async with Bridge(RedisTransport(server.url)) as b:
            b.listen(there)
            await asyncio.to_thread(_wait_until, b.health, "B is connected")
            with a:
                for n in range(50):
                    here.send(None, n=n)
                return [await asyncio.wait_for(got.get(), WAIT) for _ in range(50)]

    assert asyncio.run(main()) == list(range(50))


def test_undecodable_messages_on_the_channel_are_dropped(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    ticks = Signal(name="ticks")
    arrived = _inbox(ticks)
    bridge = Bridge(RedisTransport(server.url))
    bridge.listen(ticks)
    here = Signal(name="ticks")
    sender = Bridge(RedisTransport(server.url))
    sender.forward(here)
    with bridge, sender, redis.Redis.from_url(server.url) as raw:
        raw.publish("tocsin:ticks", b"\x00\x01 garbage")
        here.send(None, n=7)
        assert arrived.get(timeout=WAIT) == 7
    assert bridge.stats.dropped == 1
    assert "could not decode" in caplog.text
