"""Interleaved timing: the contenders of one case take turns, round after round.

Each contender is a ``Timer``: a function that does its work ``loops`` times and returns the
elapsed nanoseconds (from ``time.perf_counter_ns``). Every round runs one batch of every
contender, starting from a different contender each time, so that frequency scaling, a noisy
neighbour or a warming cache hits all of them alike. A case keeps the per-call time of every
batch; comparisons are made round by round (see ``Case.ratio``), which cancels drift that a
ratio of two independent medians would keep.

A ``Summary`` keeps what a report needs of a case (medians, and every ratio between two of
its contenders) in a form that survives a trip through JSON, so that results measured by
several interpreters can be merged into one page.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

Timer = Callable[[int], int]

# Doubling stops here even if a batch is still shorter than asked: a timer this fast is
# measuring nothing but the clock.
_MAX_LOOPS = 1 << 24


@dataclass(frozen=True)
class Ratio:
    """The median of the per-round ratios, with their lower and upper quartiles."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Ratio:
        """The median and quartiles of ``values``."""
        if len(values) < 2:
            return cls(values[0], values[0], values[0])
        low, median, high = statistics.quantiles(values, n=4, method="inclusive")
        return cls(median, low, high)

    @classmethod
    def exactly(cls, value: float) -> Ratio:
        """A figure that has no spread (bytes counted, say)."""
        return cls(value, value, value)


@dataclass
class Case:
    """One measured case: the per-call nanoseconds of each contender, one entry per round."""

    baseline: str
    samples: dict[str, list[float]]

    def median_ns(self, contender: str) -> float:
        return statistics.median(self.samples[contender])

    def ratio(self, subject: str, reference: str | None = None) -> Ratio:
        """How many times the reference's time the subject took, compared round by round."""
        reference_samples = self.samples[reference or self.baseline]
        return Ratio.of(
            [
                mine / theirs
                for mine, theirs in zip(self.samples[subject], reference_samples, strict=True)
            ]
        )

    def summary(self) -> Summary:
        """The medians and every pairwise ratio of this case."""
        names = list(self.samples)
        return Summary(
            baseline=self.baseline,
            rounds=len(self.samples[self.baseline]),
            medians={name: self.median_ns(name) for name in names},
            ratios={
                subject: {
                    reference: self.ratio(subject, reference)
                    for reference in names
                    if reference != subject
                }
                for subject in names
            },
        )


@dataclass(frozen=True)
class Summary:
    """What a report needs of a case: each contender's median time per call, and the ratio
    between any two contenders, in the order they were timed."""

    baseline: str
    rounds: int
    medians: dict[str, float]
    ratios: dict[str, dict[str, Ratio]]  # subject -> reference -> subject ÷ reference

    @property
    def contenders(self) -> list[str]:
        return list(self.medians)

    def median_ns(self, contender: str) -> float:
        return self.medians[contender]

    def ratio(self, subject: str, reference: str | None = None) -> Ratio:
        reference = reference or self.baseline
        if subject == reference:
            return Ratio.exactly(1.0)
        return self.ratios[subject][reference]

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "rounds": self.rounds,
            "medians": self.medians,
            "ratios": {
                subject: {
                    reference: [ratio.median, ratio.low, ratio.high]
                    for reference, ratio in references.items()
                }
                for subject, references in self.ratios.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Summary:
        return cls(
            baseline=data["baseline"],
            rounds=data["rounds"],
            medians=dict(data["medians"]),
            ratios={
                subject: {reference: Ratio(*values) for reference, values in references.items()}
                for subject, references in data["ratios"].items()
            },
        )


@contextmanager
def gc_paused(pause: bool = True) -> Iterator[None]:
    """Keep the cyclic collector out of a timed batch, and let it run between batches."""
    was_enabled = gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def calibrate(timer: Timer, batch_ns: int, *, pause_gc: bool) -> int:
    """The smallest power-of-two loop count whose batch lasts at least ``batch_ns``.

    The trial batches double as the warm-up of the contender.
    """
    loops = 1
    while loops < _MAX_LOOPS:
        with gc_paused(pause_gc):
            elapsed = timer(loops)
        if elapsed >= batch_ns:
            break
        loops *= 2
    return loops


def interleave(
    timers: Mapping[str, Timer],
    *,
    baseline: str,
    rounds: int,
    batch_ns: int = 0,
    loops: Mapping[str, int] | None = None,
    pause_gc: bool = True,
) -> Case:
    """Time every contender in ``rounds`` interleaved rounds and return the case.

    Loop counts are fixed by ``loops`` when given (a per-call time is then per unit of work
    the timer does, say per receiver), or calibrated to ``batch_ns`` per batch otherwise.
    """
    if baseline not in timers:
        raise ValueError(f"the baseline {baseline!r} is not among the contenders {list(timers)}")
    names = list(timers)
    counts = (
        dict(loops)
        if loops is not None
        else {name: calibrate(timers[name], batch_ns, pause_gc=pause_gc) for name in names}
    )
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        start = round_number % len(names)
        for name in names[start:] + names[:start]:
            with gc_paused(pause_gc):
                elapsed = timers[name](counts[name])
            samples[name].append(elapsed / counts[name])
    return Case(baseline=baseline, samples=samples)
