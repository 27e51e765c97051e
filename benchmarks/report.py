"""Results (one per Python) in and out of JSON, and the page, plot and console summary made
of them."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench import (
    DJANGO,
    FLOOR,
    GROWTH_LIMIT,
    RESOLVING,
    SEND_TARGETS,
    TOCSIN,
    Result,
    Target,
    growth_label,
    in_words,
    informative,
    targets,
)
from benchmarks.engine import Ratio, Summary

PAGE = "performance.md"
_RATIO_TICKS = (0.75, 1, 1.25, 1.5, 2, 3, 4, 6, 8, 12)
PLOT = "performance.svg"

# -- keeping results -----------------------------------------------------------------------


def _file_name(python: str) -> str:
    """ "CPython 3.11" -> "cpython-3.11.json"."""
    return re.sub(r"[^a-z0-9.]+", "-", python.lower()).strip("-") + ".json"


def save(results: Iterable[Result], directory: Path) -> None:
    """Write each result into ``directory``, replacing the one kept for the same Python."""
    directory.mkdir(parents=True, exist_ok=True)
    for result in results:
        path = directory / _file_name(result.python)
        path.write_text(json.dumps(result.to_json(), indent=1) + "\n", encoding="utf-8")


def _version(result: Result) -> tuple[int, ...]:
    found = re.search(r"(\d+)\.(\d+)", result.python)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def load(directory: Path) -> list[Result]:
    """The results kept in ``directory``, oldest Python first."""
    if not directory.is_dir():
        return []
    results = [
        Result.from_json(json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(directory.glob("*.json"))
    ]
    return sorted(results, key=lambda result: (_version(result), result.python))


# -- formatting ----------------------------------------------------------------------------


def _duration(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(ratio: Ratio) -> str:
    return f"{_number(ratio.median)}x ({_number(ratio.low)} to {_number(ratio.high)})"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _measured(target: Target, *, spread: bool = True) -> str:
    if target.measured is None:
        return target.note or "not measured"
    if target.unit != "x":
        return f"{target.measured.median:.0f}{target.unit}"
    return _ratio(target.measured) if spread else f"{_number(target.measured.median)}x"


def _limit(target: Target) -> str:
    if target.limit is None:
        return ""
    return f"{'<=' if target.at_most else '>='} {target.limit:g}{target.unit}"


def _verdict(target: Target) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[target.met]


def targets_table(result: Result) -> str:
    rows = [
        (target.claim, _measured(target), _limit(target), _verdict(target))
        for target in targets(result)
    ]
    return _table(("target", "measured", "limit", "verdict"), rows)


def informative_table(result: Result) -> str:
    rows = [(row.claim, _measured(row)) for row in informative(result)]
    return _table(("comparison (no target)", "measured"), rows)


def overview_table(results: Sequence[Result]) -> str:
    """Every target on every Python: the median ratio and the verdict."""
    per_python = [targets(result) for result in results]
    rows = []
    for index, target in enumerate(per_python[0]):
        cells = [target.claim, _limit(target)]
        for rows_of_one in per_python:
            mine = rows_of_one[index]
            cells.append(f"{_measured(mine, spread=False)}, {_verdict(mine)}")
        rows.append(cells)
    return _table(("target", "limit", *(result.python for result in results)), rows)


def _send_cases(result: Result) -> list[tuple[int, Summary]]:
    cases = [
        (int(key.split("/")[1]), case)
        for key, case in result.cases.items()
        if key.startswith("send/")
    ]
    return sorted(cases)


def sweep_table(result: Result) -> str:
    contenders = [RESOLVING, *result.versions]
    rows = []
    for count, case in _send_cases(result):
        cells = [str(count), _duration(case.median_ns(FLOOR))]
        for name in contenders:
            if name in case.medians:
                ratio = case.ratio(name)
                cells.append(f"{_duration(case.median_ns(name))} ({_number(ratio.median)}x)")
            else:
                cells.append("")
        rows.append(cells)
    return _table(("receivers", FLOOR, *contenders), rows)


def case_table(case: Summary, per: str = "call") -> str:
    rows = [
        (name, _duration(case.median_ns(name)), _ratio(case.ratio(name)))
        for name in case.contenders
    ]
    return _table(("contender", f"median per {per}", f"÷ {case.baseline}"), rows)


def growth_table(result: Result) -> str:
    case = result.cases["growth"]
    small, large = result.mode.growth_marks
    rows = []
    for system in result.versions:
        at_small, at_large = growth_label(system, small), growth_label(system, large)
        if at_small in case.medians:
            rows.append(
                (
                    system,
                    _duration(case.median_ns(at_small)),
                    _duration(case.median_ns(at_large)),
                    _ratio(case.ratio(at_large, at_small)),
                )
            )
    return _table(
        ("system", f"per step at {small:,} senders", f"at {large:,}", f"{large:,} ÷ {small:,}"),
        rows,
    )


def _noise(result: Result) -> str:
    """Half the interquartile range of tocsin ÷ floor, relative, median over the send cases."""
    spreads = []
    for _, case in _send_cases(result):
        if TOCSIN in case.medians:
            ratio = case.ratio(TOCSIN)
            spreads.append((ratio.high - ratio.low) / 2 / ratio.median)
    return f"±{100 * statistics.median(spreads):.1f}%" if spreads else "unknown"


def _resolving_cost(result: Result, count: int = 100) -> float | None:
    case = result.cases.get(f"send/{count}")
    if case is None or RESOLVING not in case.medians:
        return None
    return (case.median_ns(RESOLVING) - case.median_ns(FLOOR)) / count


def limits_table(results: Sequence[Result]) -> str:
    """The figures the limits section argues from, on every Python."""
    rows: list[list[str]] = []

    def ratio_row(label: str, key: str, subject: str, reference: str) -> None:
        cells = [label]
        for result in results:
            case = result.cases.get(key)
            present = case is not None and {subject, reference} <= set(case.medians)
            cells.append(_ratio(case.ratio(subject, reference)) if case and present else "")
        rows.append(cells)

    for count in (1, 10):
        ratio_row(f"{DJANGO} ÷ the floor, {in_words(count)}", f"send/{count}", DJANGO, FLOOR)
    for count in (1, 10, 100):
        ratio_row(
            f"the floor resolving weak references first ÷ the floor, {in_words(count)}",
            f"send/{count}",
            RESOLVING,
            FLOOR,
        )
    costs = [_resolving_cost(result) for result in results]
    rows.append(
        [
            "resolving first, per receiver over the floor (at 100 receivers)",
            *("" if cost is None else f"{cost:.0f} ns" for cost in costs),
        ]
    )
    for count in (1, 10, 100):
        ratio_row(
            f"tocsin ÷ the floor resolving weak references first, {in_words(count)}",
            f"send/{count}",
            TOCSIN,
            RESOLVING,
        )
    return _table(("", *(result.python for result in results)), rows)


# -- the page ------------------------------------------------------------------------------


def _span(values: Sequence[float], unit: str = "x") -> str:
    """``values`` as one figure or a range over the Pythons: "2.46x", "2.29x to 2.45x"."""

    def show(value: float) -> str:
        return f"{value:.0f}" if unit == " ns" else _number(value)

    low, high = show(min(values)), show(max(values))
    return f"{low}{unit}" if low == high else f"{low}{unit} to {high}{unit}"


def _case_ratios(results: Sequence[Result], key: str, subject: str, reference: str) -> list[float]:
    ratios = []
    for result in results:
        case = result.cases.get(key)
        if case is not None and {subject, reference} <= set(case.medians):
            ratios.append(case.ratio(subject, reference).median)
    return ratios


def limits_text(results: Sequence[Result]) -> str:
    """What no dispatcher can avoid, argued from the figures of ``results``."""
    ceiling = _case_ratios(results, "send/10", DJANGO, FLOOR)
    weak_ceiling = _case_ratios(results, "send/10", DJANGO, RESOLVING)
    resolving = {
        count: _case_ratios(results, f"send/{count}", RESOLVING, FLOOR) for count in (10, 100)
    }
    per_receiver = [cost for cost in map(_resolving_cost, results) if cost is not None]
    calls = [
        "**A receiver call costs the same whoever makes it.** A Django-style receiver, "
        "`def receiver(sender, **kwargs)`, is called with `signal=`, `sender=` and the send's "
        "arguments as keywords, and CPython builds a fresh `kwargs` dict for it on every call: "
        "that call and its dict are most of the floor's time, and a dispatcher pays them "
        "exactly as the hand-written loop does. So no dispatcher sends faster than the floor, "
        "and django.dispatch's time divided by a dispatcher's can never exceed "
        "django.dispatch's time divided by the floor's. What a dispatcher can save over "
        "django.dispatch is its fixed cost per send (finding the receivers for the sender) "
        "and what it adds per receiver (unpacking `**named` again for each call), so the gap "
        "is widest with one receiver and closes in on that ceiling as receivers are added."
    ]
    if ceiling:
        calls.append(
            f"At 10 receivers the ceiling measured {_span(ceiling)} (django.dispatch ÷ the floor)."
        )
    weak = [
        "**A send resolves every weak receiver before calling the first.** Receivers are held "
        "by weak references, and a receiver may drop the last reference to a later receiver of "
        "the same send; so that the later one still runs (as in django.dispatch), a send first "
        "turns every weak reference of its route into a strong one, and only then calls "
        'anyone. The floor holds its receivers strongly and does none of this. "The floor '
        'resolving weak references first" is the floor plus that work done the plain way: '
        "each weak reference called into a list, then each entry tested for a dead receiver "
        "in the loop."
    ]
    if per_receiver and resolving[10] and resolving[100]:
        weak.append(
            f"It costs {_span(per_receiver, ' ns')} per receiver over the floor, which makes it "
            f"{_span(resolving[10])} the floor at 10 receivers and {_span(resolving[100])} at "
            "100."
        )
    weak.append(
        "tocsin does the same work in a cheaper shape: a signal's send is compiled with its "
        "receivers resolved into local variables and called inside one list display (for up "
        "to 12 receivers, and for the number the signal had at its first send), so it builds "
        "no list of resolved receivers, runs no loop and appends nothing; that is how it comes "
        "in under this loop (the table's last rows). A send takes the loop only when a "
        "receiver has died since the last change, or when the signal has a number of "
        "receivers no shape was compiled for; it then costs about what this loop costs."
    )
    if weak_ceiling:
        weak.append(
            "For comparison, django.dispatch ÷ this loop measured "
            f"{_span(weak_ceiling)} at 10 receivers."
        )
    return "\n\n".join(
        [
            "Two costs bound what any dispatcher can reach on these targets; the table after "
            "this measures both on each Python, and its last rows set tocsin against the "
            "second.",
            " ".join(calls),
            " ".join(weak),
        ]
    )


_MAPPING = """\
Every system does the same work: a sender plus two keyword arguments, `instance` and
`created`, to receivers that are distinct function objects, connected weakly where the
system can, each returning None. Every send is timed as a user's code makes it, with the
attribute looked up at each call: `signal.send(sender, instance=instance, created=True)`.

- **floor**: the loop a programmer would write by hand for this one signal, spelled out:
  a method `send(self, sender, *, instance, created)` holding the receivers in a list, which
  calls each as `receiver(signal=self, sender=sender, instance=instance, created=created)`
  and appends `(receiver, response)` to a list it returns, in a plain `for` loop. With no
  receivers, the floor is a no-op method with `send`'s signature,
  `def send(self, sender, **named): return []`.
- **floor resolving weak references first**: the floor, but holding `weakref.ref`s to the
  receivers and, at each send, resolving them all into a list before calling the live ones
  (with the cheapest idiom on each Python: a list comprehension from 3.12 on, where
  comprehensions are inlined, and `[*map(operator.call, refs)]` on 3.11).
- **tocsin**: `Signal()`; receivers `def receiver(sender, **kwargs)`, connected with
  `connect(receiver)` (weak) or `connect(receiver, sender=...)`. The signal is sent once
  before timing, as any program does, so its send is compiled for these argument names.
- **django.dispatch**: the same receivers and calls on `django.dispatch.Signal`, once with
  `use_caching=True` (its per-sender cache, the fair comparison, which the targets use) and
  once without. Django's settings are left unconfigured, so its DEBUG-only receiver check
  is skipped, as in production.
- **blinker**: `blinker.Signal()`; the same receivers, connected with `connect(receiver)`
  (any sender, weak) or `connect(receiver, sender=...)`. Like tocsin, it returns the list of
  (receiver, response) pairs, but does not pass `signal=` to receivers.
- **psygnal**: `SignalInstance((object, object, object))`, receivers
  `def receiver(sender, instance, created)`, timed as `signal.emit(sender, instance, True)`.
  psygnal has no senders to filter on (so it is absent from the cases about senders),
  collects no responses and holds plain functions strongly: it does less work than the
  others.
"""

_METHOD = """\
Each Python runs the whole suite in a process of its own, one Python after the other. Within
a run, each case times its contenders in interleaved rounds: a round times one batch of every
contender, starting from a different contender each round, so drift in clock speed or
background load reaches all of them alike. A batch repeats one call in a plain loop (timed
with `time.perf_counter_ns`) enough times to last at least {batch}; sending cases run with
the cyclic garbage collector paused during a batch and resumed between batches. A table shows
the median time per call over {rounds:,} rounds, and every ratio is the median of the
per-round ratios between two contenders of the same case, with the lower and upper quartiles
in brackets. Only ratios are judged against the targets: a bare time says more about the
machine than about the code.

"Connect a receiver for a new sender, then send" runs {largest:,} such steps on a new signal
(each step's send reaches the one receiver just connected) and times the {window} steps
that end at {smallest:,} senders and the {window} that end at {largest:,}, with the collector
paused; each system does this {growth_rounds} times, the systems taking turns. A cost that
does not depend on the number of senders gives a ratio near 1; a step that goes over what
every sender has, as refilling django.dispatch's cache does, grows with the senders: about
{factor:g}x here for a step that is nothing else. The limit of {limit:g}x leaves room for
what no dispatcher controls (dicts and the heap outgrowing the processor's caches as
{largest:,} senders and receivers pile up), and still catches a step whose part that grows
with the senders is more than {fraction:.1f}% of the step at {smallest:,} senders (with a
fixed cost `a` and `b` per sender, the ratio is `(a + {largest}b) / (a + {smallest}b)`).

Connecting and disconnecting uses {churn_rounds} rounds of one batch each, with the collector
left on (allocation is the work being measured); each batch connects the receivers to a new
signal and then disconnects them in the order they were connected. Memory is the growth of
the heap traced by `tracemalloc` while {memory:,} receivers connect, divided by {memory:,}.

The machine is shared with other work, which no interleaving fully cancels: the brackets show
how much the per-round ratios moved, and each Python's section gives the load average when
its run started and ended.
"""


def _growth_fraction(factor: float, limit: float) -> float:
    """The share of the smaller step that may grow with the senders before the larger step
    exceeds ``limit`` times it, when the senders grow ``factor``-fold: with ``a`` fixed and
    ``x`` growing, ``(a + factor * x) / (a + x) <= limit`` holds while ``x / (a + x)`` is at
    most ``(limit - 1) / (factor - 1)``."""
    return (limit - 1) / (factor - 1)


def _python_section(result: Result) -> list[str]:
    mode = result.mode
    sections = [f"## {result.python}"]
    if mode.name != "full":
        sections.append(
            f"**A {mode.name} run**: fewer rounds, shorter batches and smaller sizes than the "
            "full run, so its verdicts are only indicative."
        )
    sections += [
        "### Targets",
        targets_table(result),
        "### Other comparisons",
        "No target: these show where the targets stand, how tocsin compares with blinker, "
        "and what other features cost.",
        informative_table(result),
        "### Send cost by number of receivers",
        "Receivers listen to any sender. Each cell is the median time per `send` and, in "
        "brackets, that time divided by the floor's.",
        sweep_table(result),
        "### Connect a receiver for a new sender, then send",
        growth_table(result),
    ]
    if "senders" in result.cases:
        sections += [
            "### One sender among many",
            "A signal where 1,000 receivers each listen to their own sender, sent by one of "
            "those senders, against a signal with a single receiver in all.",
            case_table(result.cases["senders"]),
        ]
    if "churn" in result.cases:
        sections += [
            "### Connect and disconnect",
            f"Each sample connects {mode.churn_receivers:,} receivers to a new signal, then "
            "disconnects them in the same order; times are per receiver (one connect plus one "
            f"disconnect). The row for {mode.churn_receivers // 10:,} receivers shows whether "
            "the cost per receiver grows with the number connected.",
            case_table(result.cases["churn"], per="receiver"),
        ]
    sections += [
        "### Memory per weak connection",
        _table(
            ("system", "bytes per connection"),
            ((name, f"{size:.0f}") for name, size in result.memory.items()),
        ),
        "### Machine and versions",
        "\n".join(
            [f"- {name}: {value}" for name, value in result.machine.items()]
            + [
                f"- noise: ratios of the send cases moved by {_noise(result)} between rounds "
                "(half the interquartile range, median over the cases)"
            ]
            + [f"- {name}: {version}" for name, version in result.versions.items()]
        ),
    ]
    return sections


def page(results: Sequence[Result]) -> str:
    """The Markdown page: docs/performance.md in a full run."""
    if not results:
        raise ValueError("no results to write a page from")
    pythons = ", ".join(result.python for result in results)
    modes = {result.mode for result in results}
    sections = [
        "# Performance",
        "<!-- Generated by `python -m benchmarks`: edit benchmarks/report.py, not this page. -->",
        "How much a send costs in tocsin, next to the same send in django.dispatch, blinker "
        "and psygnal, and next to the floor: the loop you would write by hand to call the same "
        f"receivers. Measured on {pythons}, each in its own run; each target is a ratio "
        "between two things measured side by side in the same run.",
        "## Targets on every Python",
        "The median of the per-round ratios; each Python's section below gives the quartiles "
        "and the other figures.",
        overview_table(results),
        f"![Send cost against the number of receivers, on each Python]({PLOT})",
        "## What a send cannot avoid",
        limits_text(results),
        limits_table(results),
    ]
    for result in results:
        sections += _python_section(result)
    mode = max(modes, key=lambda mode: mode.rounds)
    small, large = mode.growth_marks
    sections += [
        "## How each system is driven",
        _MAPPING,
        "## How it is measured",
        _METHOD.format(
            batch=_duration(mode.batch_ns),
            rounds=mode.rounds,
            largest=large,
            smallest=small,
            window=mode.growth_window,
            growth_rounds=mode.growth_rounds,
            factor=large / small,
            limit=GROWTH_LIMIT,
            fraction=100 * _growth_fraction(large / small, GROWTH_LIMIT),
            churn_rounds=mode.churn_rounds,
            memory=mode.memory_connections,
        ),
        "## Reproduce",
        "From the root of a checkout (the results of each Python are kept in "
        "`benchmarks/results/`, and the page is written from them):",
        "```bash\n"
        "pip install -e '.[bench]'\n"
        "python -m benchmarks                 # this Python: a few minutes; rewrites this page\n"
        "python -m benchmarks --all-pythons   # every CPython >= 3.11 found, one after another\n"
        "python -m benchmarks --quick         # seconds; writes to a temporary directory\n"
        "```",
    ]
    return "\n\n".join(section.rstrip("\n") for section in sections) + "\n"


def summary(results: Sequence[Result]) -> str:
    """The targets of each Python, for the console."""
    lines: list[str] = []
    for result in results:
        lines += [f"{result.python}, {result.mode.name} run:", "", targets_table(result), ""]
    if any(result.mode.name != "full" for result in results):
        lines.append(
            "A quick run measures less, and smaller, than the full one: its verdicts are only "
            "indicative."
        )
    return "\n".join(lines)


def plot(results: Sequence[Result], path: Path) -> None:
    """For each Python, send cost and its ratio to the floor against the number of receivers."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

    # Stable element ids and no timestamp: rerunning on the same numbers gives the same file.
    matplotlib.rcParams["svg.hashsalt"] = "tocsin-bench"
    matplotlib.rcParams["svg.fonttype"] = "none"
    figure = Figure(figsize=(4.2 * len(results) + 1, 8), layout="constrained")
    grid = figure.subplots(2, len(results), squeeze=False, sharey="row")
    for column, result in enumerate(results):
        cases = [(count, case) for count, case in _send_cases(result) if count > 0]
        counts = [count for count, _ in cases]
        cost, ratio = grid[0][column], grid[1][column]
        for name in [FLOOR, RESOLVING, *result.versions]:
            shown = [(count, case) for count, case in cases if name in case.medians]
            label = {FLOOR: "floor (spelled-out loop)", RESOLVING: "floor resolving first"}.get(
                name, name
            )
            style: dict[str, Any] = {
                "label": label,
                "marker": "o",
                "markersize": 3,
                "linewidth": 2.5 if name in (TOCSIN, FLOOR) else 1.2,
                "linestyle": "--" if name in (FLOOR, RESOLVING) else "-",
            }
            cost.plot(
                [count for count, _ in shown],
                [case.median_ns(name) / 1000 for _, case in shown],
                **style,
            )
            ratio.plot(
                [count for count, _ in shown],
                [case.ratio(name).median for _, case in shown],
                **style,
            )
        limits = [(count, limit) for count, limit in SEND_TARGETS.items() if count in counts]
        ratio.plot(
            [count for count, _ in limits],
            [limit for _, limit in limits],
            linestyle="none",
            marker="_",
            markersize=14,
            markeredgewidth=2,
            color="black",
            label="tocsin's target",
        )
        cost.set(xscale="log", yscale="log", title=f"{result.python}: send cost")
        ratio.set(xscale="log", yscale="log", title=f"{result.python}: send cost ÷ the floor")
        ratio.set_yticks(_RATIO_TICKS)
        ratio.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ratio.yaxis.set_minor_formatter(NullFormatter())
        for axes in (cost, ratio):
            axes.set_xlabel("receivers (log scale)")
            axes.set_xticks([count for count in counts if count in (1, 10, 100, 1000)])
            axes.xaxis.set_major_formatter(ScalarFormatter())
            axes.grid(True, which="both", alpha=0.3)
    grid[0][0].set_ylabel("µs per send (log scale)")
    grid[1][0].set_ylabel("ratio to the floor (log scale)")
    grid[1][0].legend(fontsize="small", handles=grid[1][0].get_legend_handles_labels()[0][-1:])
    grid[0][0].legend(fontsize="small")
    figure.savefig(path, format="svg", metadata={"Date": None})


def write(results: Sequence[Result], directory: Path) -> tuple[Path, Path]:
    """Write the page and the plot into ``directory``; return their paths."""
    page_path = directory / PAGE
    plot_path = directory / PLOT
    page_path.write_text(page(results), encoding="utf-8")
    plot(results, plot_path)
    return page_path, plot_path
