"""The cases, their targets, and one interpreter's run.

Every case times its contenders interleaved (see ``engine``) and every target is a ratio
between two contenders of one case, so a slow machine moves all the numbers together and no
target depends on how fast the machine is. The one absolute figure, memory per connection,
is counted in bytes, which no machine changes.

A run measures in the interpreter it runs in and returns a ``Result``, which is what the
JSON files under ``benchmarks/results/`` hold; ``report`` turns results (one per Python) into
the page. Receivers are connected weakly, so each case holds them (in ``keep`` or an
``_alive`` list) until its timing is over.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import platform
import subprocess
import sys
import sysconfig
import tracemalloc
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from benchmarks.engine import Case, Ratio, Summary, Timer, gc_paused, interleave
from benchmarks.systems import (
    INSTANCE,
    PEERS,
    Blinker,
    Django,
    NoOp,
    Receiver,
    ResolvingLoop,
    Sender,
    SpelledOutLoop,
    System,
    Tocsin,
    keyword_receiver,
    peer_systems,
    send_timer,
)

# What ``pip install -e '.[bench]'`` brings, by the module each is imported as.
REQUIREMENTS = (*PEERS, "matplotlib")

CHECKOUT = Path(__file__).resolve().parent.parent
# The results a full run keeps, one JSON file per Python, which the page is written from.
RESULTS = CHECKOUT / "benchmarks" / "results"
FORMAT = 1  # of the JSON files; a file of another format is measured again, not read

FLOOR = "floor"
RESOLVING = "floor resolving weak references first"
TOCSIN = Tocsin.label
DJANGO = Django(use_caching=True).label
BLINKER = Blinker.label
# The receiver counts of the send targets, with their limits (tocsin ÷ the floor).
SEND_TARGETS = {0: 1.0, 1: 1.6, 10: 1.2, 100: 1.15}
# The step at the larger mark of the growth case may take this many times the step at the
# smaller one and still count as flat; see the page for why this threshold.
GROWTH_LIMIT = 1.25


@dataclass(frozen=True)
class Mode:
    """How long to measure: the full run writes the docs, the quick one proves the suite works."""

    name: str
    rounds: int  # interleaved rounds of every timed send case
    batch_ns: int  # the shortest batch of one contender in a round
    sweep: tuple[int, ...]  # receiver counts of the send-cost sweep and its plot
    churn_receivers: int  # receivers connected, then disconnected, per churn sample
    churn_rounds: int
    memory_connections: int
    growth_marks: tuple[int, int]  # senders at which the growth case times a window of steps
    growth_window: int  # steps in each timed window
    growth_rounds: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mode:
        fields = dict(data)
        fields["sweep"] = tuple(fields["sweep"])
        fields["growth_marks"] = tuple(fields["growth_marks"])
        return cls(**fields)


FULL = Mode(
    name="full",
    # Many short batches: on a shared machine a batch is either clean or hit by another
    # process, and the median of 1,000 rounds then ignores the hits.
    rounds=1001,
    batch_ns=250_000,
    sweep=(1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000),
    churn_receivers=10_000,
    churn_rounds=9,
    memory_connections=10_000,
    growth_marks=(1_000, 8_000),
    growth_window=200,
    growth_rounds=15,
)
QUICK = Mode(
    name="quick",
    rounds=15,
    batch_ns=50_000,
    sweep=(1, 10, 100),
    churn_receivers=1_000,
    churn_rounds=2,
    memory_connections=500,
    growth_marks=(100, 800),
    growth_window=50,
    growth_rounds=2,
)
MODES = {mode.name: mode for mode in (FULL, QUICK)}


@dataclass
class Result:
    """Everything one interpreter measured: what a JSON file of ``benchmarks/results`` holds."""

    mode: Mode
    python: str  # "CPython 3.11", the key results are merged by
    machine: dict[str, str]
    versions: dict[str, str]  # system label -> version
    cases: dict[str, Summary] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)  # system label -> bytes per connection
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "mode": asdict(self.mode),
            "python": self.python,
            "machine": self.machine,
            "versions": self.versions,
            "cases": {key: case.to_json() for key, case in self.cases.items()},
            "memory": self.memory,
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Result:
        if data.get("format") != FORMAT:
            raise ValueError(
                f"a result of format {data.get('format')!r}; this suite reads {FORMAT}"
            )
        return cls(
            mode=Mode.from_json(data["mode"]),
            python=data["python"],
            machine=dict(data["machine"]),
            versions=dict(data["versions"]),
            cases={key: Summary.from_json(case) for key, case in data["cases"].items()},
            memory=dict(data["memory"]),
            notes=list(data["notes"]),
        )


def python_key() -> str:
    """This interpreter as results are keyed and shown: "CPython 3.12", "CPython 3.13t"."""
    free_threaded = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    version = f"{sys.version_info.major}.{sys.version_info.minor}{free_threaded}"
    return f"{platform.python_implementation()} {version}"


def in_words(count: int) -> str:
    """``count`` receivers, in words: "no receivers", "1 receiver", "10 receivers"."""
    if count == 0:
        return "no receivers"
    return f"{count:,} receiver{'' if count == 1 else 's'}"


def missing_requirements() -> list[str]:
    """The peers and plotting library the full suite needs that are not installed."""
    return [name for name in REQUIREMENTS if importlib.util.find_spec(name) is None]


# -- the cases -----------------------------------------------------------------------------


def _time_sends(timers: dict[str, Timer], baseline: str, mode: Mode) -> Case:
    return interleave(timers, baseline=baseline, rounds=mode.rounds, batch_ns=mode.batch_ns)


def _send_case(count: int, systems: Sequence[System], mode: Mode) -> Case:
    """Every system sending to ``count`` receivers that listen to any sender, next to the
    floor and (with receivers) the floor resolving weak references first."""
    sender = Sender()
    keep: list[object] = []
    if count == 0:
        timers = {FLOOR: send_timer(NoOp(), sender)}
    else:
        receivers = [keyword_receiver() for _ in range(count)]
        keep.append(receivers)
        timers = {
            FLOOR: send_timer(SpelledOutLoop(receivers), sender),
            RESOLVING: send_timer(ResolvingLoop(receivers), sender),
        }
    for system in systems:
        signal, alive = system.connected(count)
        keep.append(alive)
        timers[system.label] = system.send_timer(signal, sender)
    return _time_sends(timers, FLOOR, mode)


def _many_senders_case(systems: Sequence[System], mode: Mode, senders: int = 1000) -> Case:
    """One sender among ``senders``, each with its own receiver, against one receiver in all."""
    timers: dict[str, Timer] = {}
    keep: list[object] = []
    for system in systems:
        crowd = [Sender() for _ in range(senders)]
        signal = system.signal()
        for sender in crowd:
            receiver = system.receiver()
            system.connect(signal, receiver, sender)
            keep.append(receiver)
        system.verify(signal, crowd[0], 1)
        timers[f"{system.label}, {senders:,} senders"] = system.send_timer(signal, crowd[0])
        keep.append(crowd)
        lone = Sender()
        signal, receivers = system.connected(1, sender=lone)
        keep.append(receivers)
        timers[f"{system.label}, 1 receiver"] = system.send_timer(signal, lone)
    return _time_sends(timers, f"{TOCSIN}, 1 receiver", mode)


def _robust_case(mode: Mode) -> Case:
    sender = Sender()
    signal, _alive = Tocsin().connected(10)
    signal.send_robust(sender, instance=INSTANCE, created=True)  # as connected() sent it
    timers = {
        "send_robust": send_timer(signal, sender, "send_robust"),
        "send": send_timer(signal, sender),
    }
    return _time_sends(timers, "send", mode)


def _strict_case(mode: Mode) -> Case:
    """A signal declaring its arguments, strict and not, sent with the declared names."""
    sender = Sender()
    on, _on_alive = Tocsin(arguments=["instance", "created"], strict=True).connected(1)
    off, _off_alive = Tocsin(arguments=["instance", "created"], strict=False).connected(1)
    timers = {"strict mode on": send_timer(on, sender), "strict mode off": send_timer(off, sender)}
    return _time_sends(timers, "strict mode off", mode)


def _collected_check_case(mode: Mode) -> Case:
    """Weak function receivers, which the collected-before-first-send check watches, against
    strong ones, which it never watches: the gap bounds what the check costs a send."""
    sender = Sender()
    tocsin = Tocsin()
    weak_signal, alive = tocsin.connected(10)
    strong_signal = tocsin.signal()
    for receiver in alive:
        strong_signal.connect(receiver, weak=False)
    tocsin.verify(strong_signal, sender, 10)
    timers = {
        "weak function receivers (watched)": send_timer(weak_signal, sender),
        "strong receivers (never watched)": send_timer(strong_signal, sender),
    }
    return _time_sends(timers, "strong receivers (never watched)", mode)


UNUSED_TESTING = "captured and muted before"
FRESH = "never captured or muted"


def _testing_unused_case(mode: Mode) -> Case:
    """A signal that ``tocsin.testing`` captured and muted (every block since closed), against
    one it never touched: observers must cost nothing once none is registered."""
    from tocsin import testing

    sender = Sender()
    used, _used_alive = Tocsin().connected(1)
    with testing.capture(used) as captured:
        used.send(sender, instance=INSTANCE, created=True)
    with testing.capture():  # every signal
        used.send(sender, instance=INSTANCE, created=True)
    with testing.muted(used), used.muted():
        muted_responses = used.send(sender, instance=INSTANCE, created=True)
    if len(captured) != 1 or muted_responses:
        raise RuntimeError("tocsin.testing did not capture or mute the benchmark's signal")
    fresh, _fresh_alive = Tocsin().connected(1)
    timers = {UNUSED_TESTING: send_timer(used, sender), FRESH: send_timer(fresh, sender)}
    return _time_sends(timers, FRESH, mode)


async def _time_awaited_sends(
    send: Callable[..., Coroutine[Any, Any, object]], sender: object, loops: int
) -> int:
    instance = INSTANCE
    start = perf_counter_ns()
    for _ in repeat(None, loops):
        await send(sender, instance=instance, created=True)
    return perf_counter_ns() - start


def _asend_case(mode: Mode, runner: asyncio.Runner) -> Case:
    """``await asend`` with sync receivers against ``send`` run through one thread hop."""
    sender = Sender()
    signal, _alive = Tocsin().connected(10)

    async def send_in_thread(sender: object, **named: object) -> object:
        return await asyncio.to_thread(signal.send, sender, **named)

    def awaiting(send: Callable[..., Coroutine[Any, Any, object]]) -> Timer:
        return lambda loops: runner.run(_time_awaited_sends(send, sender, loops))

    timers = {
        "asend": awaiting(signal.asend),
        "send in asyncio.to_thread": awaiting(send_in_thread),
    }
    return _time_sends(timers, "send in asyncio.to_thread", mode)


def _churn_timer(system: System, receivers: Sequence[Receiver]) -> Timer:
    """Connect ``count`` receivers to a fresh signal, then disconnect them in the same order."""

    def timer(count: int) -> int:
        signal = system.signal()
        batch = receivers[:count]
        connect, disconnect = signal.connect, signal.disconnect
        start = perf_counter_ns()
        for receiver in batch:
            connect(receiver)
        for receiver in batch:
            disconnect(receiver)
        return perf_counter_ns() - start

    return timer


def _churn_case(systems: Sequence[System], mode: Mode) -> Case:
    """Per receiver: connect N, disconnect N. tocsin also at N / 10, to show the cost is flat."""
    count = mode.churn_receivers
    timers: dict[str, Timer] = {}
    loops: dict[str, int] = {}
    for system in systems:
        receivers = [system.receiver() for _ in range(count)]
        timers[system.label] = _churn_timer(system, receivers)
        loops[system.label] = count
        if system.label == TOCSIN:
            small = f"{TOCSIN}, {count // 10:,} receivers"
            timers[small] = timers[system.label]
            loops[small] = count // 10
    # Allocation is this case's work, so the collector stays on: it is part of the cost.
    return interleave(
        timers,
        baseline=TOCSIN,
        rounds=mode.churn_rounds,
        loops=loops,
        pause_gc=False,
    )


def growth_label(system: str, senders: int) -> str:
    return f"{system}, at {senders:,} senders"


def _grow(system: System, marks: Sequence[int], window: int) -> list[float]:
    """Connect a receiver for a new sender, then send from that sender, up to the last mark;
    return the time per step of the ``window`` steps that end at each mark."""
    steps = marks[-1]
    senders = [Sender() for _ in range(steps)]
    receivers = [system.receiver() for _ in range(steps)]
    signal = system.signal()
    instance = INSTANCE
    per_step: list[float] = []
    done = 0
    with gc_paused():
        for mark in marks:
            for sender, receiver in zip(
                senders[done : mark - window], receivers[done : mark - window], strict=True
            ):
                signal.connect(receiver, sender=sender)
                signal.send(sender, instance=instance, created=True)
            timed = list(
                zip(senders[mark - window : mark], receivers[mark - window : mark], strict=True)
            )
            start = perf_counter_ns()
            for sender, receiver in timed:
                signal.connect(receiver, sender=sender)
                signal.send(sender, instance=instance, created=True)
            per_step.append((perf_counter_ns() - start) / window)
            done = mark
    system.verify(signal, senders[-1], 1)
    del signal
    gc.collect()
    return per_step


def _growth_case(systems: Sequence[System], mode: Mode) -> Case:
    """ "Connect a receiver for a new sender, then send", repeated: the step's cost at each mark,
    each system's runs taking turns round by round."""
    marks = mode.growth_marks
    samples: dict[str, list[float]] = {
        growth_label(system.label, mark): [] for system in systems for mark in marks
    }
    for round_number in range(mode.growth_rounds):
        start = round_number % len(systems)
        for system in [*systems[start:], *systems[:start]]:
            for mark, per_step in zip(marks, _grow(system, marks, mode.growth_window), strict=True):
                samples[growth_label(system.label, mark)].append(per_step)
    return Case(baseline=growth_label(TOCSIN, marks[0]), samples=samples)


def bytes_per_connection(system: System, connections: int) -> float:
    """The memory ``connections`` weak connections add to a signal, per connection."""
    # A first connection imports and caches whatever the system needs on first use.
    warm_up, receiver = system.signal(), system.receiver()
    warm_up.connect(receiver)
    warm_up.disconnect(receiver)
    signal = system.signal()
    receivers = [system.receiver() for _ in range(connections)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for receiver in receivers:
            signal.connect(receiver)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # Receivers that die connected and never sent to would make tocsin warn, rightly.
    for receiver in receivers:
        signal.disconnect(receiver)
    return (after - before) / connections


# -- the targets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One row of the page: a claim, what a result measured for it, and its limit if it is a
    target (None for a row shown only to inform)."""

    claim: str
    measured: Ratio | None
    limit: float | None = None
    at_most: bool = True  # the measured value must be <= limit (else >= limit)
    unit: str = "x"
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None or self.limit is None:
            return None
        value = self.measured.median
        return value <= self.limit if self.at_most else value >= self.limit


def _ratio(
    result: Result,
    claim: str,
    case_key: str,
    subject: str,
    reference: str,
    limit: float | None = None,
    *,
    at_most: bool = True,
) -> Target:
    """``subject ÷ reference`` in one case, against ``limit``; unmeasured if either is absent."""
    case = result.cases.get(case_key)
    if case is None:
        return Target(claim, None, limit, at_most, note="not measured in this run")
    absent = [name for name in (subject, reference) if name not in case.medians]
    if absent:
        return Target(claim, None, limit, at_most, note=f"{absent[0]} was not run")
    return Target(claim, case.ratio(subject, reference), limit, at_most)


def targets(result: Result) -> list[Target]:
    """The targets, in their order, with what ``result`` measured for each."""
    rows = [
        _ratio(
            result,
            f"`send`, {in_words(count)} ÷ "
            + ("a no-op method with `send`'s signature" if count == 0 else "the floor"),
            f"send/{count}",
            TOCSIN,
            FLOOR,
            limit,
        )
        for count, limit in SEND_TARGETS.items()
    ]
    rows += [
        _ratio(
            result,
            f"{DJANGO} ÷ tocsin, {in_words(count)}",
            f"send/{count}",
            DJANGO,
            TOCSIN,
            limit,
            at_most=False,
        )
        for count, limit in ((1, 3.0), (10, 2.3))
    ]
    small, large = result.mode.growth_marks
    rows += [
        _ratio(
            result,
            "`send` to 1 of 1,000 sender-filtered receivers ÷ `send` with 1 receiver in all",
            "senders",
            f"{TOCSIN}, 1,000 senders",
            f"{TOCSIN}, 1 receiver",
            1.4,
        ),
        _ratio(
            result,
            "strict mode on ÷ strict mode off, 1 receiver",
            "strict",
            "strict mode on",
            "strict mode off",
            1.10,
        ),
        _ratio(
            result, "`send_robust` ÷ `send`, 10 receivers", "robust", "send_robust", "send", 1.05
        ),
    ]
    memory = result.memory.get(TOCSIN)
    rows.append(
        Target(
            "memory per weak connection",
            None if memory is None else Ratio.exactly(memory),
            200,
            unit=" B",
        )
    )
    rows.append(
        _ratio(
            result,
            f"connect a receiver for a new sender, then send: the step at {large:,} senders ÷ "
            f"the step at {small:,}",
            "growth",
            growth_label(TOCSIN, large),
            growth_label(TOCSIN, small),
            GROWTH_LIMIT,
        )
    )
    return rows


def informative(result: Result) -> list[Target]:
    """Rows that are no target but tell where the targets stand, or how tocsin compares."""
    small, large = result.mode.growth_marks
    churn = f"connect then disconnect {result.mode.churn_receivers:,} receivers"
    rows = [
        _ratio(result, f"{DJANGO} ÷ the floor, {in_words(count)}", f"send/{count}", DJANGO, FLOOR)
        for count in (1, 10)
    ]
    rows.append(
        _ratio(result, "blinker ÷ tocsin, 10 receivers", "send/10", BLINKER, TOCSIN),
    )
    for count in (1, 10, 100):
        rows += [
            _ratio(
                result,
                f"the floor resolving weak references first ÷ the floor, {in_words(count)}",
                f"send/{count}",
                RESOLVING,
                FLOOR,
            ),
            _ratio(
                result,
                f"tocsin ÷ the floor resolving weak references first, {in_words(count)}",
                f"send/{count}",
                TOCSIN,
                RESOLVING,
            ),
        ]
    rows += [
        _ratio(
            result,
            f"{DJANGO} ÷ the floor resolving weak references first, {in_words(count)}",
            f"send/{count}",
            DJANGO,
            RESOLVING,
        )
        for count in (1, 10)
    ]
    rows += [
        _ratio(
            result,
            f"connect for a new sender, then send: {peer}, the step at {large:,} senders ÷ "
            f"the step at {small:,}",
            "growth",
            growth_label(peer, large),
            growth_label(peer, small),
        )
        for peer in (DJANGO, BLINKER)
    ]
    rows += [
        _ratio(
            result,
            "`send` of a signal captured and muted before (all closed) ÷ a signal never "
            "captured or muted, 1 receiver",
            "testing-unused",
            UNUSED_TESTING,
            FRESH,
        ),
        _ratio(
            result,
            "weak function receivers (watched by the collected-before-first-send check) ÷ "
            "strong receivers, 10 receivers",
            "collected-check",
            "weak function receivers (watched)",
            "strong receivers (never watched)",
        ),
        _ratio(result, f"{churn}: {DJANGO} ÷ tocsin", "churn", DJANGO, TOCSIN),
        _ratio(result, f"{churn}: blinker ÷ tocsin", "churn", BLINKER, TOCSIN),
        _ratio(
            result,
            "`await asend(...)` with sync receivers ÷ `send` in `asyncio.to_thread`",
            "asend",
            "asend",
            "send in asyncio.to_thread",
        ),
    ]
    return rows


# -- the run -------------------------------------------------------------------------------


def _source() -> str:
    """The commit measured, as ``git describe`` puts it, or "unknown" outside a checkout."""
    try:
        described = subprocess.run(
            ["git", "-C", str(CHECKOUT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described or "unknown"


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    processor = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    return {
        "processor": f"{processor}, {os.cpu_count()} logical CPUs",
        "system": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()} "
        f"({', '.join(platform.python_build())})",
        "tocsin source": _source(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def run(
    mode: Mode, peers: Sequence[str] = PEERS, progress: Callable[[str], None] = lambda _: None
) -> Result:
    """Measure every case for tocsin, the floor and ``peers`` in this interpreter."""
    systems = [Tocsin(), *peer_systems(peers)]
    result = Result(
        mode=mode,
        python=python_key(),
        machine=machine(),
        versions={system.label: system.version for system in systems},
    )
    load_at_start = _load()
    for count in sorted({*SEND_TARGETS, *mode.sweep}):
        progress(f"send, {in_words(count)}")
        result.cases[f"send/{count}"] = _send_case(count, systems, mode).summary()
    progress("send to one sender among many")
    filtering = [system for system in systems if system.filters_senders]
    result.cases["senders"] = _many_senders_case(filtering, mode).summary()
    progress("send_robust, strict mode, the collected-before-first-send check")
    result.cases["robust"] = _robust_case(mode).summary()
    result.cases["strict"] = _strict_case(mode).summary()
    result.cases["collected-check"] = _collected_check_case(mode).summary()
    progress("asend")
    with asyncio.Runner() as runner:
        result.cases["asend"] = _asend_case(mode, runner).summary()
    # use_caching changes how django sends, not how it connects: one django is enough here.
    churners = [system for system in systems if system.name != "django-nocache"]
    growers = [system for system in churners if system.filters_senders]
    small, large = mode.growth_marks
    progress(f"connect for a new sender then send, {small:,} and {large:,} senders")
    result.cases["growth"] = _growth_case(growers, mode).summary()
    progress(f"connect and disconnect, {mode.churn_receivers:,} receivers")
    result.cases["churn"] = _churn_case(churners, mode).summary()
    progress("memory per connection")
    for system in churners:
        result.memory[system.label] = bytes_per_connection(system, mode.memory_connections)
    # Last: this case imports tocsin.testing, which no other case should run beside.
    progress("send after tocsin.testing was used")
    result.cases["testing-unused"] = _testing_unused_case(mode).summary()
    result.machine["load average (1 min), start and end"] = f"{load_at_start}, {_load()}"
    return result
