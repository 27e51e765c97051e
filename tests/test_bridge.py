"""The bridge itself, over MemoryTransport: forwarding and listening, what receivers get, loops
that must not happen, a broker that stalls, messages that cannot be read, the async listener,
health and stats, and the errors for bad input.

Two bridges on one MemoryTransport stand for two processes; each "process" has its own
Signal object under the same name, as two real processes would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tocsin import Signal
from tocsin.bridge import Bridge, Health, Incoming, MemoryTransport, Stats, incoming

WAIT = 10.0  # seconds: the most any test waits for a message that should arrive


class Inbox:
    """A receiver that records (sender, kwargs, incoming()) of each call, to wait on."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[object, dict[str, Any], Incoming | None]] = queue.Queue()

    def __call__(self, sender: object, signal: Signal, **kwargs: Any) -> None:
        self.calls.put((sender, kwargs, incoming()))

    def next(self) -> tuple[object, dict[str, Any], Incoming | None]:
        return self.calls.get(timeout=WAIT)

    def next_kwargs(self) -> dict[str, Any]:
        return self.next()[1]

    def empty(self) -> bool:
        return self.calls.empty()


class Side:
    """One 'process': its own signal named ``ticks``, a receiver, and a bridge."""

    def __init__(self, transport: MemoryTransport, name: str = "ticks") -> None:
        self.signal = Signal(name=name)
        self.inbox = Inbox()
        self.signal.connect(self.inbox, weak=False)
        self.bridge = Bridge(transport)


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def pair(transport: MemoryTransport) -> Iterator[tuple[Side, Side]]:
    """A forwards ``ticks``, B listens to it; both running."""
    a, b = Side(transport), Side(transport)
    a.bridge.forward(a.signal)
    b.bridge.listen(b.signal)
    with a.bridge, b.bridge:
        yield a, b


# -- forwarding and listening -------------------------------------------------------------


def test_a_forwarded_send_reaches_the_listening_side_with_exactly_its_arguments(
    pair: tuple[Side, Side],
) -> None:
    a, b = pair
    a.signal.send(sender=None, order=42, items=[{"sku": "A-1", "qty": 2}], note="gift")
    sender, kwargs, _ = b.inbox.next()
    assert sender is None
    assert kwargs == {"order": 42, "items": [{"sku": "A-1", "qty": 2}], "note": "gift"}
    assert list(kwargs) == ["order", "items", "note"]


def test_every_send_method_is_forwarded(pair: tuple[Side, Side]) -> None:
    a, b = pair
    a.signal.send(None, n=1)
    a.signal.send_robust(None, n=2)
    asyncio.run(a.signal.asend(None, n=3))
    asyncio.run(a.signal.asend_robust(None, n=4))
    assert [b.inbox.next_kwargs()["n"] for _ in range(4)] == [1, 2, 3, 4]


def test_local_receivers_still_run_once_and_first(pair: tuple[Side, Side]) -> None:
    a, b = pair
    responses = a.signal.send(None, n=1)
    assert [receiver for receiver, _ in responses] == [a.inbox]
    assert a.inbox.next() == (None, {"n": 1}, None)
    b.inbox.next()
    assert a.inbox.empty()


def test_sends_arrive_in_order(pair: tuple[Side, Side]) -> None:
    a, b = pair
    for n in range(2000):
        a.signal.send(None, n=n)
    assert [b.inbox.next_kwargs()["n"] for _ in range(2000)] == list(range(2000))


def test_a_name_other_than_the_signals_can_be_given(transport: MemoryTransport) -> None:
    a, b = Side(transport, name="local_name"), Side(transport, name="other_name")
    a.bridge.forward(a.signal, name="orders.placed")
    b.bridge.listen(b.signal, name="orders.placed")
    with a.bridge, b.bridge:
        a.signal.send(None, n=1)
        assert b.inbox.next_kwargs() == {"n": 1}


def test_a_listener_added_while_running_is_subscribed_when_listen_returns(
    transport: MemoryTransport,
) -> None:
    a, b = Side(transport), Side(transport)
    a.bridge.forward(a.signal)
    extra = Signal(name="extra")
    extra_inbox = Inbox()
    extra.connect(extra_inbox, weak=False)
    with a.bridge, b.bridge:
        b.bridge.listen(b.signal)  # starts the listener
        a.signal.send(None, n=1)
        assert b.inbox.next_kwargs() == {"n": 1}
        a_extra = Signal(name="extra")
        a.bridge.forward(a_extra)  # forwarding added while running
        b.bridge.listen(extra)  # a second name on a running listener
        a_extra.send(None, n=2)
        assert extra_inbox.next_kwargs() == {"n": 2}


def test_a_stopped_bridge_forwards_nothing_and_can_start_again(pair: tuple[Side, Side]) -> None:
    a, b = pair
    a.bridge.stop()
    a.signal.send(None, n=1)  # not forwarded
    a.bridge.start()
    a.signal.send(None, n=2)
    assert b.inbox.next_kwargs() == {"n": 2}
    assert a.bridge.stats.sent == 1


def test_stop_publishes_what_is_queued(transport: MemoryTransport) -> None:
    a, b = Side(transport), Side(transport)
    a.bridge.forward(a.signal)
    b.bridge.listen(b.signal)
    with b.bridge:
        with a.bridge:
            for n in range(500):
                a.signal.send(None, n=n)
        assert a.bridge.stats.sent == 500
        assert [b.inbox.next_kwargs()["n"] for _ in range(500)] == list(range(500))


# -- incoming() ---------------------------------------------------------------------------


def test_incoming_gives_the_origin_and_publish_time_inside_a_bridged_receiver(
    pair: tuple[Side, Side],
) -> None:
    a, b = pair
    before = time.time()
    a.signal.send(None, n=1)
    after = time.time()
    _, _, origin = b.inbox.next()
    assert origin is not None
    assert (origin.host, origin.pid, origin.bridge) == (
        socket.gethostname(),
        os.getpid(),
        a.bridge.id,
    )
    assert before <= origin.published <= after


def test_incoming_is_none_for_local_sends_and_outside_receivers(pair: tuple[Side, Side]) -> None:
    a, b = pair
    a.signal.send(None, n=1)
    assert a.inbox.next()[2] is None
    assert b.inbox.next()[2] is not None  # the bridged one
    b.signal.send(None, n=2)  # a local send on the listening side
    assert b.inbox.next()[2] is None
    assert incoming() is None


# -- loops --------------------------------------------------------------------------------


def test_a_bridge_that_forwards_and_listens_to_a_name_neither_echoes_nor_republishes(
    transport: MemoryTransport,
) -> None:
    a, b = Side(transport), Side(transport)
    for side in (a, b):
        side.bridge.forward(side.signal)
        side.bridge.listen(side.signal)
    with a.bridge, b.bridge:
        a.signal.send(None, n=1)
        assert a.inbox.next()[1:] == ({"n": 1}, None)  # local
        assert b.inbox.next_kwargs() == {"n": 1}  # bridged
        b.signal.send(None, n=2)
        assert b.inbox.next()[1:] == ({"n": 2}, None)
        # Had A heard its own message, or B published again what it received, A would get
        # that before n=2: the transport delivers in publishing order.
        assert a.inbox.next_kwargs() == {"n": 2}
        assert a.inbox.empty() and b.inbox.empty()
        assert (a.bridge.stats.sent, a.bridge.stats.received) == (1, 1)
        assert (b.bridge.stats.sent, b.bridge.stats.received) == (1, 1)


def test_two_bridges_in_one_process_do_not_bounce_a_message(transport: MemoryTransport) -> None:
    ticks = Signal(name="ticks")
    inbox = Inbox()
    ticks.connect(inbox, weak=False)
    first, second, outside = Bridge(transport), Bridge(transport), Side(transport)
    for bridge in (first, second):
        bridge.forward(ticks)
        bridge.listen(ticks)
    outside.bridge.forward(outside.signal)
    outside.bridge.listen(outside.signal)
    with first, second, outside.bridge:
        outside.signal.send(None, n=1)
        # Each bridge of the process delivers it once; neither publishes it again.
        assert [inbox.next()[1] for _ in range(2)] == [{"n": 1}, {"n": 1}]
        ticks.send(None, n=2)  # local: both bridges publish it, and each hears the other
        assert inbox.next()[1:] == ({"n": 2}, None)
        assert [inbox.next()[1] for _ in range(2)] == [{"n": 2}, {"n": 2}]
        assert outside.inbox.next()[1:] == ({"n": 1}, None)
        assert [outside.inbox.next_kwargs() for _ in range(2)] == [{"n": 2}, {"n": 2}]
        # Had a delivery been published again, it would arrive before n=3 (same order).
        outside.signal.send(None, n=3)
        assert [inbox.next_kwargs() for _ in range(2)] == [{"n": 3}, {"n": 3}]
        assert outside.inbox.next()[1:] == ({"n": 3}, None)
        assert inbox.empty() and outside.inbox.empty()


def test_sends_made_by_a_receiver_of_a_bridged_message_are_forwarded(
    transport: MemoryTransport,
) -> None:
    a, b = Side(transport), Side(transport)
    a_replies, b_replies = Signal(name="replies"), Signal(name="replies")
    replies = Inbox()
    a_replies.connect(replies, weak=False)

    def reply(sender: object, n: int, **kwargs: Any) -> None:
        if n == 1 and incoming() is not None:
            b_replies.send(None, n=n * 10)  # another signal
            b.signal.send(None, n=n + 1)  # the same signal, a new send

    b.signal.connect(reply, weak=False)
    a.bridge.forward(a.signal)
    a.bridge.listen(a.signal)
    a.bridge.listen(a_replies)
    b.bridge.listen(b.signal)
    b.bridge.forward(b.signal)
    b.bridge.forward(b_replies)
    with a.bridge, b.bridge:
        a.signal.send(None, n=1)
        assert replies.next_kwargs() == {"n": 10}
        assert a.inbox.next_kwargs() == {"n": 1}  # local
        assert a.inbox.next_kwargs() == {"n": 2}  # B's receiver's own send
    assert b.bridge.stats.sent == 2  # the reply and the new send, not the delivered one


# -- receivers that fail, messages that cannot be read ------------------------------------


def test_a_failing_receiver_does_not_stop_the_others_or_the_listener(
    pair: tuple[Side, Side], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair

    def fails(sender: object, n: int, **kwargs: Any) -> None:
        raise RuntimeError(f"receiver failed on {n}")

    b.signal.disconnect(b.inbox)
    b.signal.connect(fails, weak=False)
    b.signal.connect(b.inbox, weak=False)
    a.signal.send(None, n=1)
    a.signal.send(None, n=2)
    assert [b.inbox.next_kwargs()["n"] for _ in range(2)] == [1, 2]
    assert "receiver failed on 1" in caplog.text
    assert b.bridge.stats.received == 2


def test_undecodable_messages_are_dropped_with_a_log_line(
    pair: tuple[Side, Side], transport: MemoryTransport, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    caplog.set_level(logging.WARNING, logger="tocsin.bridge")
    raw = transport.publisher()
    raw.publish([("ticks", b"not a tocsin message")])
    envelope = (
        b'{"tocsin":1,"bridge":"elsewhere","host":"h","pid":1,"name":"ticks","seq":0,"time":1.0}\n'
    )
    raw.publish([("ticks", envelope + b"{not json")])
    raw.publish([("ticks", envelope + b'{"signal":"ticks","sender":{"x":1},"kwargs":{}}')])
    a.signal.send(None, n=1)
    assert b.inbox.next_kwargs() == {"n": 1}
    assert b.bridge.stats.dropped == 3
    assert b.bridge.stats.received == 1
    dropped = [r for r in caplog.records if "could not decode" in r.getMessage()]
    assert len(dropped) == 3


def test_a_message_the_local_signal_refuses_is_dropped_and_logged(
    transport: MemoryTransport, caplog: pytest.LogCaptureFixture
) -> None:
    a = Side(transport)
    strict = Signal(name="ticks", arguments=["n"], strict=True)
    inbox = Inbox()
    strict.connect(inbox, weak=False)
    b = Bridge(transport)
    a.bridge.forward(a.signal)
    b.listen(strict)
    with a.bridge, b:
        a.signal.send(None, m=1)  # not an argument the listening side declares
        a.signal.send(None, n=2)
        assert inbox.next_kwargs() == {"n": 2}
    assert b.stats.dropped == 1
    assert "unexpected argument 'm'" in caplog.text


# -- a broker that does not keep up -------------------------------------------------------


class StalledTransport(MemoryTransport):
    """A broker that accepts a connection, then takes no message until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.publishing = threading.Event()
        self.release = threading.Event()

    def publisher(self) -> Any:
        transport = self
        inner = super().publisher()

        class Stalled:
            def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
                transport.publishing.set()
                transport.release.wait(WAIT)
                inner.publish(messages)

            def ping(self) -> None:
                pass

            def close(self) -> None:
                pass

        return Stalled()


def _in_thread(action: Any) -> bool:
    """Run ``action`` in a thread; whether it finished within WAIT seconds."""
    worker = threading.Thread(target=action, daemon=True)
    worker.start()
    worker.join(WAIT)
    return not worker.is_alive()


def test_a_stalled_broker_neither_holds_up_sends_nor_loses_what_fits_in_the_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = StalledTransport()
    a, b = Side(transport), Side(transport)
    a.bridge = Bridge(transport, max_pending=10)
    a.bridge.forward(a.signal)
    b.bridge.listen(b.signal)
    with a.bridge, b.bridge:
        a.signal.send(None, n=0)
        assert transport.publishing.wait(WAIT)  # the publisher holds n=0, stuck

        def send_more() -> None:
            for n in range(1, 25):
                a.signal.send(None, n=n)

        assert _in_thread(send_more)
        assert [a.inbox.next_kwargs()["n"] for _ in range(25)] == list(range(25))
        assert a.bridge.stats.dropped == 14  # 10 waiting, n=11 to n=24 dropped
        assert a.bridge.health().pending == 11
        assert caplog.text.count("queue is full") == 1
        transport.release.set()
        assert [b.inbox.next_kwargs()["n"] for _ in range(11)] == list(range(11))
    assert a.bridge.stats == Stats(sent=11, received=0, dropped=14, errors=0, reconnects=0)


def test_stop_gives_up_on_a_stalled_broker_after_its_timeout_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = StalledTransport()
    a = Side(transport)
    a.bridge.forward(a.signal)
    a.bridge.start()
    a.signal.send(None, n=0)
    assert transport.publishing.wait(WAIT)
    for n in range(1, 5):
        a.signal.send(None, n=n)
    assert _in_thread(lambda: a.bridge.stop(timeout=0.05))
    transport.release.set()  # lets the stuck publish end, after stop() gave up on it
    assert a.bridge.stats.dropped == 4
    assert "had not taken" in caplog.text


# -- the async listener -------------------------------------------------------------------


def test_the_async_listener_awaits_async_receivers_on_the_callers_loop(
    transport: MemoryTransport,
) -> None:
    a = Side(transport)
    a.bridge.forward(a.signal)
    ticks = Signal(name="ticks")
    arrived: list[tuple[int, Incoming | None, asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        got_two = asyncio.Event()

        async def on_tick(sender: object, n: int, **kwargs: Any) -> None:
            if n == 1:
                raise RuntimeError("the first one fails")
            arrived.append((n, incoming(), asyncio.get_running_loop()))
            got_two.set()

        ticks.connect(on_tick, weak=False)
        bridge = Bridge(transport)
        bridge.listen(ticks)
        async with bridge:
            with a.bridge:
                a.signal.send(None, n=1)
                a.signal.send(None, n=2)
                await asyncio.wait_for(got_two.wait(), WAIT)
        assert bridge.stats.received == 2
        assert arrived[0][2] is asyncio.get_running_loop()

    asyncio.run(main())
    [(n, origin, _)] = arrived
    assert n == 2
    assert origin is not None and origin.bridge == a.bridge.id


def test_astart_and_astop_without_async_with(transport: MemoryTransport) -> None:
    a, b = Side(transport), Side(transport)
    a.bridge.forward(a.signal)
    b.bridge.listen(b.signal)

    async def main() -> None:
        await b.bridge.astart()
        with pytest.raises(RuntimeError, match="astop"):
            b.bridge.stop()
        with a.bridge:
            a.signal.send(None, n=1)
            assert await asyncio.to_thread(b.inbox.next_kwargs) == {"n": 1}
        await b.bridge.astop()
        assert not b.bridge.health().running

    asyncio.run(main())


# -- health and stats ---------------------------------------------------------------------


def test_health_and_stats_report_what_happened(pair: tuple[Side, Side]) -> None:
    a, b = pair
    health = a.bridge.health()
    assert health == Health(running=True, connected=True, pending=0, last_error=None)
    assert health
    for n in range(3):
        a.signal.send(None, n=n)
    for _ in range(3):
        b.inbox.next()
    assert a.bridge.stats == Stats(sent=3, received=0, dropped=0, errors=0, reconnects=0)
    assert b.bridge.stats == Stats(sent=0, received=3, dropped=0, errors=0, reconnects=0)
    a.bridge.stop()
    assert not a.bridge.health()
    assert a.bridge.health().running is False


# -- bad input ----------------------------------------------------------------------------


def test_bad_arguments_are_refused_with_clear_errors(transport: MemoryTransport) -> None:
    bridge = Bridge(transport)
    named, unnamed = Signal(name="named"), Signal()
    with pytest.raises(ValueError, match="has no name to publish it under"):
        bridge.forward(unnamed)
    with pytest.raises(ValueError, match="has no name to publish it under"):
        bridge.listen(unnamed)
    with pytest.raises(TypeError, match="takes a tocsin Signal"):
        bridge.forward("named")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty str"):
        bridge.listen(named, name="")
    bridge.forward(named)
    with pytest.raises(ValueError, match="already forwarded"):
        bridge.forward(named, name="other")
    bridge.listen(named)
    with pytest.raises(ValueError, match="already listens to 'named'"):
        bridge.listen(Signal(name="named"))
    with pytest.raises(ValueError, match="max_pending"):
        Bridge(transport, max_pending=0)
    with (
        pytest.raises(TypeError, match=r"publish_on\(\) needs a transport"),
        bridge.publish_on(object()),
    ):
        pass
    with bridge, pytest.raises(RuntimeError, match="already running"):
        bridge.start()
    bridge.stop()  # stopping a stopped bridge does nothing


def test_a_bridge_made_before_a_fork_takes_a_new_id_when_started_in_the_child(
    transport: MemoryTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = Side(transport), Side(transport)
    a.bridge.forward(a.signal)
    b.bridge.listen(b.signal)
    made_in_parent = a.bridge.id
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)  # what a forked child would see
    with a.bridge, b.bridge:
        a.signal.send(None, n=1)
        _, _, origin = b.inbox.next()
    assert a.bridge.id != made_in_parent
    assert origin is not None and (origin.bridge, origin.pid) == (a.bridge.id, child_pid)


@pytest.mark.parametrize("escaping", ["cancelled async receiver", "SystemExit"])
def test_a_receiver_raising_what_send_robust_lets_through_does_not_end_the_listener(
    transport: MemoryTransport, escaping: str, caplog: pytest.LogCaptureFixture
) -> None:
    here, there = Signal(name="ping"), Signal(name="ping")
    heard: queue.Queue[int] = queue.Queue()

    async def cancelled(sender: object, n: int, **kwargs: Any) -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    def exits(sender: object, n: int, **kwargs: Any) -> None:
        if n == 1:
            raise SystemExit(3)

    def record(sender: object, n: int, **kwargs: Any) -> None:
        heard.put(n)

    there.connect(record, weak=False)
    there.connect(cancelled if escaping == "cancelled async receiver" else exits, weak=False)
    with Bridge(transport) as sending, Bridge(transport) as listening:
        sending.forward(here)
        listening.listen(there)
        here.send(None, n=1)
        assert heard.get(timeout=10) == 1
        here.send(None, n=2)
        assert heard.get(timeout=10) == 2  # the listener lived through it
        assert listening.health().connected
        assert listening.stats.errors >= 1
    assert "send_robust does not catch" in caplog.text


def test_a_send_racing_stop_is_counted_as_dropped(transport: MemoryTransport) -> None:
    signal = Signal(name="late")
    bridge = Bridge(transport)
    bridge.forward(signal)
    bridge.start()
    publisher = bridge._publisher  # what forward's observer holds on to
    assert publisher is not None
    bridge.stop()
    before = bridge.stats.dropped
    publisher.put("late", b"{}", signal)  # what a send already past forward's check does
    assert bridge.stats.dropped == before + 1
