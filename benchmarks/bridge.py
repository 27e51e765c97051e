"""The bridge's benchmark: a bridge next to the broker's own client doing the same job.

Run from a checkout: ``python -m benchmarks.bridge [--quick] [--write PAGE]`` (with the
``redis`` and ``postgres`` extras installed, and redis-server and PostgreSQL's binaries on
the machine; a broker that cannot be had is reported as not measured).

For each broker, in one process, as a user gluing the broker in by hand would:

- throughput: N messages published back to back, timed from the first publish to the last
  arrival at a subscriber. The raw client publishes each message with one call
  (``PUBLISH``, ``SELECT pg_notify(...)``) and its subscriber reads them one by one; the
  bridge is one bridge forwarding a signal and another listening to it, so its time
  includes encoding, the envelope, its queue and threads, decoding, and the local send
  that calls the receiver. Target: the bridge's throughput >= 0.7x the raw client's. A
  round's burst fits the bridge's default queue (10,000): sends outrun any broker, and a
  longer burst than the queue holds is dropped past that point, by design.
- latency: one message at a time, from the publish (the send) to the receiver, p50 and p99.

And the local cost a forwarded signal adds to ``send``: a send with one receiver, timed with
and without a bridge forwarding it, interleaved in rounds so both see the same machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.brokers import PostgresServer, RedisServer, Unavailable
from tocsin import Signal
from tocsin.bridge import Bridge, MemoryTransport

TARGET = 0.7  # bridge throughput / raw client throughput, at least
PAGE = Path(__file__).resolve().parent.parent / "docs" / "bridge-performance.md"
_WAIT = 60.0


@dataclass(frozen=True)
class Mode:
    """How much to measure: the full run writes the page, the quick one proves it works."""

    name: str
    messages: int  # per throughput round
    rounds: int  # throughput rounds per contender (the median is reported)
    pings: int  # messages for the latency percentiles
    send_rounds: int  # rounds of the local-cost measurement
    sends: int  # sends per round


FULL = Mode("full", messages=5_000, rounds=7, pings=1_000, send_rounds=30, sends=2_000)
QUICK = Mode("quick", messages=500, rounds=1, pings=50, send_rounds=3, sends=200)


@dataclass
class Measured:
    """One contender's numbers through one broker."""

    throughput: list[float] = field(default_factory=list)  # messages per second, per round
    latencies: list[float] = field(default_factory=list)  # seconds

    def rate(self) -> float:
        return statistics.median(self.throughput)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Report:
    mode: Mode
    brokers: dict[str, dict[str, Measured]] = field(default_factory=dict)  # broker -> who
    skipped: dict[str, str] = field(default_factory=dict)  # broker -> why
    send_cost: dict[str, float] = field(default_factory=dict)  # case -> seconds per send


# -- the raw clients ------------------------------------------------------------------------


class RawRedis:
    """redis-py used by hand: PUBLISH per message, a pubsub read loop in a thread."""

    def __init__(self, url: str) -> None:
        import redis

        self._publisher = redis.Redis.from_url(url)
        self._subscriber = redis.Redis.from_url(url)
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe("raw")
        while self._pubsub.get_message(timeout=1.0) is None and not self._pubsub.subscribed:
            pass

    def publish(self, data: bytes) -> None:
        self._publisher.publish("raw", data)

    def read(self, deliver: Callable[[bytes], None], stop: threading.Event) -> None:
        while not stop.is_set():
            message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                deliver(message["data"])

    def close(self) -> None:
        self._pubsub.close()
        self._subscriber.close()
        self._publisher.close()


class RawPostgres:
    """psycopg used by hand: pg_notify per message, a notifies() loop in a thread."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self._publisher = psycopg.connect(dsn, autocommit=True)
        self._subscriber = psycopg.connect(dsn, autocommit=True)
        self._subscriber.execute("LISTEN raw")

    def publish(self, data: bytes) -> None:
        self._publisher.execute("SELECT pg_notify('raw', %s)", (data.decode(),))

    def read(self, deliver: Callable[[bytes], None], stop: threading.Event) -> None:
        while not stop.is_set():
            for notify in self._subscriber.notifies(timeout=0.1, stop_after=1):
                deliver(notify.payload.encode())

    def close(self) -> None:
        self._subscriber.close()
        self._publisher.close()


# A message of the size the bridge sends for ticks.send(None, n=...): the envelope and body.
_RAW_PAYLOAD = (
    b'{"tocsin":1,"bridge":"0123456789abcdef0123456789abcdef","host":"benchmark","pid":1,'
    b'"name":"ticks","seq":0,"time":1767225600.0}\n'
    b'{"signal":"ticks","sender":null,"kwargs":{"n":%d,"sent":%r}}'
)


def _measure_raw(raw: Any, mode: Mode, measured: Measured) -> None:
    arrivals: queue.SimpleQueue[tuple[float, float]] = queue.SimpleQueue()
    counted = [0]
    done = threading.Event()
    target = [0]

    def deliver(data: bytes) -> None:
        # Read the message as a hand-written subscriber would, then "handle" it.
        _, _, body = data.partition(b"\n")
        sent = json.loads(body)["kwargs"]["sent"]
        arrivals.put((sent, time.perf_counter()))
        counted[0] += 1
        if counted[0] >= target[0]:
            done.set()

    stop = threading.Event()
    reader = threading.Thread(target=raw.read, args=(deliver, stop), daemon=True)
    reader.start()
    try:
        for _ in range(mode.rounds):
            counted[0], target[0] = 0, mode.messages
            done.clear()
            started = time.perf_counter()
            for n in range(mode.messages):
                raw.publish(_RAW_PAYLOAD % (n, time.perf_counter()))
            if not done.wait(_WAIT):
                raise RuntimeError("the raw subscriber lost messages")
            measured.throughput.append(mode.messages / (time.perf_counter() - started))
            _drain(arrivals)
        for n in range(mode.pings):
            counted[0], target[0] = 0, 1
            done.clear()
            raw.publish(_RAW_PAYLOAD % (n, time.perf_counter()))
            sent, arrived = arrivals.get(timeout=_WAIT)
            measured.latencies.append(arrived - sent)
    finally:
        stop.set()
        reader.join(_WAIT)


def _drain(arrivals: queue.SimpleQueue[Any]) -> None:
    while not arrivals.empty():
        arrivals.get_nowait()


# -- the bridge -----------------------------------------------------------------------------


def _measure_bridge(make_transport: Callable[[], Any], mode: Mode, measured: Measured) -> None:
    here, there = Signal(name="ticks"), Signal(name="ticks")
    arrivals: queue.SimpleQueue[tuple[float, float]] = queue.SimpleQueue()
    counted = [0]
    target = [0]
    done = threading.Event()

    def on_tick(sender: object, n: int, sent: float, **kwargs: Any) -> None:
        arrivals.put((sent, time.perf_counter()))
        counted[0] += 1
        if counted[0] >= target[0]:
            done.set()

    there.connect(on_tick)
    publishing, listening = Bridge(make_transport()), Bridge(make_transport())
    publishing.forward(here)
    listening.listen(there)
    with publishing, listening:
        for _ in range(mode.rounds):
            counted[0], target[0] = 0, mode.messages
            done.clear()
            started = time.perf_counter()
            for n in range(mode.messages):
                here.send(None, n=n, sent=time.perf_counter())
            if not done.wait(_WAIT):
                raise RuntimeError(f"the bridge lost messages: {listening.stats}")
            measured.throughput.append(mode.messages / (time.perf_counter() - started))
            _drain(arrivals)
        for n in range(mode.pings):
            counted[0], target[0] = 0, 1
            done.clear()
            here.send(None, n=n, sent=time.perf_counter())
            sent, arrived = arrivals.get(timeout=_WAIT)
            measured.latencies.append(arrived - sent)
    if publishing.stats.dropped or listening.stats.dropped:
        raise RuntimeError("the bridge dropped messages during the benchmark")


# -- the local cost of forwarding -----------------------------------------------------------


def _measure_send_cost(mode: Mode, redis_url: str | None) -> dict[str, float]:
    """Seconds per ``send`` with one receiver: plain, and forwarded by a running bridge."""
    cases: dict[str, Callable[[], Any]] = {"not forwarded": lambda: None}
    cases["forwarded (memory broker)"] = MemoryTransport
    if redis_url is not None:
        from tocsin.bridge.redis import RedisTransport

        cases["forwarded (Redis)"] = lambda: RedisTransport(redis_url)
    samples: dict[str, list[float]] = {case: [] for case in cases}
    calls = [0]

    def receiver(sender: object, **kwargs: Any) -> None:
        calls[0] += 1

    for _ in range(mode.send_rounds):
        for case, make in cases.items():
            signal = Signal(name="cost")
            signal.connect(receiver)
            transport = make()
            with ExitStack() as stack:
                if transport is not None:
                    bridge = Bridge(transport)
                    bridge.forward(signal)
                    stack.enter_context(bridge)
                send = signal.send
                started = time.perf_counter()
                for n in range(mode.sends):
                    send(None, order=n, total=9.5)
                samples[case].append((time.perf_counter() - started) / mode.sends)
    return {case: statistics.median(values) for case, values in samples.items()}


# -- running and reporting ------------------------------------------------------------------


@contextmanager
def _broker(kind: str) -> Iterator[RedisServer | PostgresServer]:
    module = "redis" if kind == "Redis" else "psycopg"
    if importlib.util.find_spec(module) is None:
        raise Unavailable(f"the {module} client is not installed")
    server: RedisServer | PostgresServer = RedisServer() if kind == "Redis" else PostgresServer()
    with server:
        yield server


def run(mode: Mode, brokers: tuple[str, ...] = ("Redis", "PostgreSQL")) -> Report:
    """Measure everything ``mode`` asks for through ``brokers``; returns the numbers."""
    report = Report(mode)
    redis_url = None
    with ExitStack() as servers:
        for kind in brokers:
            try:
                server = servers.enter_context(_broker(kind))
            except Unavailable as reason:
                report.skipped[kind] = str(reason)
                continue
            raw: Any
            if isinstance(server, RedisServer):
                from tocsin.bridge.redis import RedisTransport

                redis_url = server.url
                raw = RawRedis(server.url)
                url = server.url

                def make(url: str = url) -> Any:
                    return RedisTransport(url)
            else:
                from tocsin.bridge.postgres import PostgresTransport

                raw = RawPostgres(server.dsn)
                dsn = server.dsn

                def make(url: str = dsn) -> Any:
                    return PostgresTransport(url)

            results = report.brokers[kind] = {"raw client": Measured(), "bridge": Measured()}
            try:
                _measure_raw(raw, mode, results["raw client"])
            finally:
                raw.close()
            _measure_bridge(make, mode, results["bridge"])
        report.send_cost = _measure_send_cost(mode, redis_url)
    return report


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def render(report: Report) -> str:
    """The report as a Markdown page."""
    mode = report.mode
    lines = [
        "# Bridge performance",
        "",
        "<!-- Generated by `python -m benchmarks.bridge --write docs/bridge-performance.md`:"
        " edit benchmarks/bridge.py, not this page. -->",
        "",
        "How fast messages cross between processes through each broker with a `Bridge`, next "
        "to the broker's own Python client doing the same publish/subscribe loop by hand, and "
        "what forwarding a signal adds to its `send`. The method is in the docstring of "
        "`benchmarks/bridge.py`; see [bridge.md](bridge.md) for the bridge itself.",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on CPython {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores; {mode.messages:,} messages per "
        f"throughput round (median of {mode.rounds}), {mode.pings:,} one-at-a-time messages "
        "for latency. Publisher, subscriber and broker share the machine. A round's burst "
        "fits in the bridge's queue (10,000 by default): sends are faster than any broker, "
        "and past a full queue a bridge drops sends rather than hold them up.",
        "",
        "## Through each broker",
        "",
        "| broker | who | throughput | vs raw client | latency p50 | latency p99 |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = []
    for kind, results in report.brokers.items():
        raw_rate = results["raw client"].rate()
        for who, measured in results.items():
            ratio = measured.rate() / raw_rate
            lines.append(
                f"| {kind} | {who} | {measured.rate():,.0f} msg/s | {ratio:.2f}x | "
                f"{_us(measured.percentile(0.5))} | {_us(measured.percentile(0.99))} |"
            )
        ratio = results["bridge"].rate() / raw_rate
        verdict = "met" if ratio >= TARGET else "**missed**"
        verdicts.append(f"| {kind} | {ratio:.2f}x | >= {TARGET}x | {verdict} |")
    for kind, reason in report.skipped.items():
        lines.append(f"| {kind} | not measured: {reason} | | | | |")
    lines += [
        "",
        "## Target",
        "",
        "| broker | bridge throughput ÷ raw client's | target | verdict |",
        "|---|---|---|---|",
        *verdicts,
        "",
        "The bridge publishes what has queued up in batches (one pipeline, or one "
        "transaction, per batch), where the raw loop makes one round trip per message; that "
        "is why it can be faster. Its latency includes a hop through its publisher thread "
        "and the local send on the receiving side.",
        "",
        "## What forwarding adds to a send",
        "",
        "A `send` with one receiver and two keyword arguments, median time per send:",
        "",
        "| send | time | added |",
        "|---|---|---|",
    ]
    plain = report.send_cost["not forwarded"]
    for case, cost in report.send_cost.items():
        added = "" if case == "not forwarded" else f"+{_us(cost - plain)}"
        lines.append(f"| {case} | {_us(cost)} | {added} |")
    lines += [
        "",
        "A forwarded send encodes its arguments to JSON, stamps the envelope and appends the "
        "message to the bridge's queue, in the sending thread; the broker is never waited "
        "for. With Redis the publisher thread also competes for the GIL while it publishes.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bridge``: print the report, or write it with ``--write``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bridge", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run: proves it works")
    parser.add_argument("--write", type=Path, help=f"write the page here (e.g. {PAGE})")
    args = parser.parse_args(argv)
    report = run(QUICK if args.quick else FULL)
    page = render(report)
    if args.write:
        args.write.write_text(page, encoding="utf-8")
        print(f"wrote {args.write}")
    else:
        print(page)
    missed = [
        kind
        for kind, results in report.brokers.items()
        if results["bridge"].rate() < TARGET * results["raw client"].rate()
    ]
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
