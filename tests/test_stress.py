"""Stress: threads connecting, disconnecting and sending at once, while receivers and senders
die, checked against what tocsin promises about concurrent use.

Every thread owns its receivers and its object senders, and is the only one to connect,
disconnect or drop them; by-value senders ("a", 1, True, b"a") and the any-sender slot are
shared. Each receiver checks, when it is called, the promises a send keeps whatever other
threads do:

- a send calls a receiver at most once (each receiver here has a single connection);
- a send never calls a receiver whose ``disconnect()`` had returned before the send began;
- a send never calls a receiver whose ``connect()`` began after the send called its first
  receiver (the receivers are fixed, alive, before the first is called).

A thread also checks its own sends: every receiver it connected and still holds, for that
sender or for any, is called exactly once; so are the receivers connected before the threads
started. Other threads' receivers connected or disconnected meanwhile may or may not be
called: that is a race the caller decides, not the signal.

The order of events across threads comes from one shared counter (``next()`` on an
``itertools.count`` is atomic): a stamp taken after ``disconnect()`` returned that is lower
than the stamp a sender takes before sending means the disconnect really finished first.

A short run is the default; ``TOCSIN_STRESS=long`` runs more threads, for longer, at more
switch intervals (``sys.setswitchinterval``, how often CPython may switch threads). Each run
draws a seed for the threads' choices, named in any failure; ``TOCSIN_STRESS_SEED=N`` replays
those choices (the threads' interleaving is up to the operating system).
"""

from __future__ import annotations

import asyncio
import contextvars
import faulthandler
import gc
import itertools
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tocsin import Signal

LONG = os.environ.get("TOCSIN_STRESS", "").strip().lower() == "long"


@dataclass(frozen=True)
class Config:
    threads: int
    seconds: float  # per switch interval: each thread stops at this bound...
    iterations: int  # ...or after this many operations, whichever comes first
    switch_intervals: tuple[float, ...]


SHORT = Config(threads=4, seconds=0.8, iterations=4_000, switch_intervals=(1e-6, 1e-4, 5e-3))
LONG_RUN = Config(
    threads=8,
    seconds=15.0,
    iterations=2_000_000,
    switch_intervals=(1e-6, 1e-5, 1e-4, 1e-3, 5e-3),
)
CONFIG = LONG_RUN if LONG else SHORT
JOIN_TIMEOUT = 60 + CONFIG.seconds  # a thread still running then is deadlocked

clock = itertools.count(1).__next__
"""Stamps events in one order across threads."""

BY_VALUE_SENDERS: tuple[object, ...] = ("a", "b", 1, True, b"a")
ROBUST_ONLY = "robust"  # failing receivers listen to this sender only: it is sent robustly
NAMES: tuple[dict[str, Any], ...] = ({}, {"x": 1}, {"x": 1, "y": 2}, {"y": 2, "x": 1}, {"µ": 3})


class Violation(AssertionError):
    pass


@dataclass
class SendRecord:
    """One send in progress: when it began, when it called its first receiver, whom it called."""

    began: int
    first_call: int | None = None
    called: set[int] = field(default_factory=set)
    calls: int = 0


current_send: contextvars.ContextVar[SendRecord | None] = contextvars.ContextVar(
    "current_send", default=None
)


class Run:
    """What all threads of one run share: the signal and the violations found."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.signal = Signal(name="stressed")
        self.violations: list[str] = []
        self.sends = 0
        self.checked_calls = 0

    def violation(self, text: str) -> None:
        self.violations.append(text)


class Probe:
    """A receiver that checks, when called, the promises of the send calling it.

    ``intervals`` lists its connections as [stamp before connect(), stamp after disconnect()
    returned or None]; only its owner appends or completes them.
    """

    def __init__(self, run: Run, serial: int, fails: bool = False) -> None:
        self.run = run
        self.serial = serial
        self.fails = fails
        self.intervals: list[list[int | None]] = []
        if serial % 7 == 0:
            self.cycle = self  # dies only when the collector runs, in whatever thread

    def check(self) -> None:
        send = current_send.get()
        run = self.run
        if send is None:
            run.violation(f"probe {self.serial} called outside any send")
            return
        if send.first_call is None:
            send.first_call = clock()
        send.calls += 1
        if self.serial in send.called:
            run.violation(f"probe {self.serial} called twice by one send")
        send.called.add(self.serial)
        first_call = send.first_call
        for began, ended in list(self.intervals):
            if began is not None and began < first_call and (ended is None or ended > send.began):
                break
        else:
            run.violation(
                f"probe {self.serial} called by a send that began at {send.began} and first "
                f"called at {first_call}, outside its connections {self.intervals}"
            )

    def __call__(self, **kwargs: Any) -> int:
        self.check()
        if self.fails:
            raise ValueError("failing on purpose")
        return self.serial

    def on_signal(self, **kwargs: Any) -> int:
        return self(**kwargs)


@dataclass
class Slot:
    """How a probe is connected: for whom, under which uid, weakly or not, as what."""

    sender: object  # None: any sender
    uid: str | None
    weak: bool
    method: bool  # connected as its bound method ``on_signal``


def matches(slot_sender: object, sender: object) -> bool:
    if slot_sender is None:
        return True
    if type(slot_sender) in (str, bytes, int, bool):
        return type(slot_sender) is type(sender) and slot_sender == sender
    return slot_sender is sender


class Worker:
    """One thread's random operations, and the probes and senders it owns."""

    MAX_PROBES = 16

    def __init__(self, run: Run, index: int, stable: list[Probe]) -> None:
        self.run = run
        self.index = index
        self.random = random.Random(f"{run.seed}-{index}")
        self.stable = stable
        self.serials = itertools.count(1000 * (index + 1) * 1000)
        self.connected: dict[int, tuple[Probe, Slot]] = {}
        self.idle: list[Probe] = []
        self.senders: list[object] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- operations ------------------------------------------------------------------------

    def connect(self) -> None:
        if len(self.connected) + len(self.idle) >= self.MAX_PROBES:
            return
        rnd = self.random
        probe = self.idle.pop() if self.idle and rnd.random() < 0.5 else self.new_probe()
        choice = rnd.random()
        if probe.fails:
            sender: object = ROBUST_ONLY
        elif choice < 0.35:
            sender = None
        elif choice < 0.7 or not self.senders:
            sender = rnd.choice(BY_VALUE_SENDERS)
        else:
            sender = rnd.choice(self.senders)
        slot = Slot(
            sender=sender,
            uid=f"{self.index}-{probe.serial}" if rnd.random() < 0.3 else None,
            weak=rnd.random() < 0.7,
            method=rnd.random() < 0.2,
        )
        interval: list[int | None] = [clock(), None]
        probe.intervals.append(interval)
        target = probe.on_signal if slot.method else probe
        returned = self.run.signal.connect(
            target, sender=slot.sender, weak=slot.weak, dispatch_uid=slot.uid
        )
        if returned is not target:
            self.run.violation("connect() did not return the receiver")
        self.connected[probe.serial] = (probe, slot)
        if rnd.random() < 0.1:  # connecting again changes nothing
            self.run.signal.connect(
                target, sender=slot.sender, weak=slot.weak, dispatch_uid=slot.uid
            )
        if slot.uid is not None and rnd.random() < 0.1:
            # Another receiver under a uid already connected is not connected at all.
            ghost = self.new_probe()
            self.run.signal.connect(ghost, sender=slot.sender, dispatch_uid=slot.uid, weak=False)
            self.idle.append(ghost)

    def new_probe(self) -> Probe:
        serial = next(self.serials)
        return Probe(self.run, serial, fails=serial % 11 == 0)

    def disconnect(self) -> None:
        if not self.connected:
            return
        serial = self.random.choice(list(self.connected))
        probe, slot = self.connected.pop(serial)
        signal = self.run.signal
        if slot.uid is not None:
            removed = signal.disconnect(sender=slot.sender, dispatch_uid=slot.uid)
        else:
            target = probe.on_signal if slot.method else probe
            removed = signal.disconnect(target, sender=slot.sender)
        probe.intervals[-1][1] = clock()
        if removed is not True:
            self.run.violation(f"disconnect() of connected probe {serial} returned {removed}")
        self.idle.append(probe)

    def drop_probe(self) -> None:
        """Let go of a probe: a weak one dies (at once, or when the collector runs)."""
        candidates = [s for s, (_, slot) in self.connected.items() if slot.weak]
        if self.idle and (not candidates or self.random.random() < 0.5):
            self.idle.pop(self.random.randrange(len(self.idle)))
        elif candidates:
            del self.connected[self.random.choice(candidates)]

    def new_sender(self) -> None:
        if len(self.senders) < 4:
            self.senders.append(Model())

    def drop_sender(self) -> None:
        """Let go of an object sender: its connections go with it."""
        if not self.senders:
            return
        sender = self.senders.pop(self.random.randrange(len(self.senders)))
        serials = [s for s, (_, slot) in self.connected.items() if slot.sender is sender]
        probes = [self.connected.pop(serial)[0] for serial in serials]
        del sender  # the last reference: it dies here
        for probe in probes:
            probe.intervals[-1][1] = clock()
        self.idle += probes

    def send(self) -> None:
        rnd = self.random
        choice = rnd.random()
        if choice < 0.3:
            sender: object = None
        elif choice < 0.7:
            sender = rnd.choice((*BY_VALUE_SENDERS, ROBUST_ONLY))
        elif choice < 0.9 and self.senders:
            sender = rnd.choice(self.senders)
        else:
            sender = Model()  # nobody's: perhaps at a dead sender's address
        named = dict(rnd.choice(NAMES))
        robust = (type(sender) is str and sender == ROBUST_ONLY) or rnd.random() < 0.3
        asynchronous = self.index == 0 and rnd.random() < 0.05
        expected = {p.serial for p in self.stable}
        expected |= {
            serial for serial, (_, slot) in self.connected.items() if matches(slot.sender, sender)
        }
        record = SendRecord(began=clock())
        token = current_send.set(record)
        try:
            if asynchronous:
                responses = self.asend(sender, named, robust)
            elif robust:
                responses = self.run.signal.send_robust(sender, **named)
            else:
                responses = self.run.signal.send(sender, **named)
        finally:
            current_send.reset(token)
        self.run.sends += 1
        self.run.checked_calls += record.calls
        missing = expected - record.called
        if missing:
            self.run.violation(
                f"a send from {sender!r} began at {record.began} did not call {sorted(missing)},"
                " connected all along by the sending thread"
            )
        if len(responses) != record.calls:
            self.run.violation(f"{len(responses)} responses for {record.calls} calls")

    def asend(self, sender: object, named: dict[str, Any], robust: bool) -> list[Any]:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        method = self.run.signal.asend_robust if robust else self.run.signal.asend
        return self.loop.run_until_complete(method(sender, **named))

    def inspect(self) -> None:
        sender = self.random.choice((None, *BY_VALUE_SENDERS))
        ours = {id(p) for p, slot in self.connected.values() if matches(slot.sender, sender)}
        listed = self.run.signal.receivers_for(sender)
        found = {id(getattr(r, "__self__", r)) for r in listed}
        if not ours <= found:
            self.run.violation("receivers_for() left out a receiver connected all along")
        if ours and not self.run.signal.has_listeners(sender):
            self.run.violation("has_listeners() is False with receivers connected all along")
        for connection in self.run.signal.connections():
            if connection.receiver is None:
                self.run.violation("connections() listed a dead receiver")

    def collect(self) -> None:
        if self.index % 2 == 0:
            gc.collect()

    # -- the thread --------------------------------------------------------------------------

    def operations(self) -> Iterator[Callable[[], None]]:
        choices: list[tuple[float, Callable[[], None]]] = [
            (0.22, self.connect),
            (0.12, self.disconnect),
            (0.05, self.drop_probe),
            (0.03, self.new_sender),
            (0.03, self.drop_sender),
            (0.50, self.send),
            (0.04, self.inspect),
            (0.01, self.collect),
        ]
        actions = [action for _, action in choices]
        weights = [weight for weight, _ in choices]
        while True:
            yield from self.random.choices(actions, weights, k=64)

    def work(self, deadline: float) -> int:
        done = 0
        try:
            for done, operation in enumerate(self.operations(), 1):
                operation()
                if done >= CONFIG.iterations or (done % 32 == 0 and time.monotonic() > deadline):
                    break
        finally:
            self.finish()
        return done

    def finish(self) -> None:
        """Disconnect everything this thread still has connected, and let go of the rest."""
        while self.connected:
            self.disconnect()
        self.idle.clear()
        self.senders.clear()
        if self.loop is not None:
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()


class Model:
    """An object sender."""


def run_threads(seed: int, switch_interval: float) -> Run:
    """One run: ``CONFIG.threads`` workers released together by a barrier, at
    ``switch_interval``; returns the run once every thread is done and everything it left
    behind is collected."""
    run = Run(seed)
    signal = run.signal
    stable = [Probe(run, 1), Probe(run, 2)]
    for probe in stable:
        probe.intervals.append([0, None])
    signal.connect(stable[0])
    signal.connect(stable[1], weak=False)
    workers = [Worker(run, index, stable) for index in range(CONFIG.threads)]
    barrier = threading.Barrier(CONFIG.threads)
    errors: list[BaseException] = []

    def target(worker: Worker) -> None:
        try:
            barrier.wait(timeout=30)
            worker.work(time.monotonic() + CONFIG.seconds)
        except BaseException as error:  # reported by the test
            errors.append(error)

    threads = [
        threading.Thread(target=target, args=(w,), name=f"stress-{w.index}") for w in workers
    ]
    previous_interval = sys.getswitchinterval()
    previous_threshold = gc.get_threshold()
    sys.setswitchinterval(switch_interval)
    gc.set_threshold(300, 5, 5)  # the collector runs often, inside tocsin's code too
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            faulthandler.dump_traceback(all_threads=True)
            pytest.fail(f"seed {seed}: threads still running after {JOIN_TIMEOUT} s: a deadlock")
    finally:
        sys.setswitchinterval(previous_interval)
        gc.set_threshold(*previous_threshold)
    if errors:
        raise AssertionError(f"seed {seed}: a thread failed") from errors[0]
    del workers, threads
    gc.collect()
    assert run.violations == [], f"seed {seed}: " + "\n".join(run.violations[:20])
    assert [c.receiver for c in signal.connections()] == stable, f"seed {seed}: leftovers"
    signal._ledger.check()
    signal.disconnect(stable[0])
    signal.disconnect(stable[1])
    gc.collect()
    assert signal.connections() == []
    ledger = signal._ledger
    ledger.check()
    assert not (ledger.anyone or ledger.groups or ledger.uids), f"seed {seed}: bookkeeping left"
    return run


@pytest.fixture
def quiet_robust_failures() -> Iterator[None]:
    """send_robust logs each failure with its traceback; thousands of records kept by the
    test's log capture would keep the failing receivers' frames, and so senders, alive."""
    logger = logging.getLogger("tocsin")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


@pytest.mark.parametrize("switch_interval", CONFIG.switch_intervals)
def test_threads_connecting_disconnecting_and_sending_keep_every_promise(
    switch_interval: float, quiet_robust_failures: None
) -> None:
    seed = int(os.environ.get("TOCSIN_STRESS_SEED") or random.randrange(2**32))
    run = run_threads(seed, switch_interval)
    print(f"seed {seed}: {run.sends} sends, {run.checked_calls} calls checked")
    assert run.sends > 100 and run.checked_calls > run.sends  # it did run, and call people
