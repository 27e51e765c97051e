"""``python -m benchmarks``: measure, keep the result, write the page.

Run from the root of a checkout, with the bench extra installed
(``pip install -e '.[bench]'``):

- ``python -m benchmarks``: a full run in this interpreter. Its result replaces this Python's
  file in ``benchmarks/results/``, and docs/performance.md and its plot are rewritten from
  every result there, one section per Python.
- ``python -m benchmarks --all-pythons``: the same in every CPython >= 3.11 the machine has
  (see ``benchmarks.pythons``), one after the other; ``--python PATH`` (repeatable) names
  the interpreters instead.
- ``--quick``: a run of a few seconds that proves the suite works; its page, plot and JSON go
  to a temporary directory (or ``--output-dir``), never over the docs.
- ``--json FILE``: measure in this interpreter and write the result to FILE only (what the
  runs in other interpreters do). ``--render``: rewrite the page from the kept results.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks import bench, pythons, report
from benchmarks.systems import PEERS

_DOCS = bench.CHECKOUT / "docs"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time tocsin against django.dispatch, blinker, psygnal and the hand-written "
        "floor, and write docs/performance.md. Run from the root of a checkout, after "
        "pip install -e '.[bench]'.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a run of seconds that proves the suite works (numbers only indicative); writes "
        "to a temporary directory unless --output-dir is given",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--all-pythons",
        action="store_true",
        help="run in every CPython >= 3.11 found (pyenv's versions, python3.X on PATH), each "
        "in a throwaway virtual environment unless it can run the suite as it is",
    )
    where.add_argument(
        "--python",
        action="append",
        metavar="PATH",
        help="run in this interpreter (repeatable); one that has tocsin from this checkout "
        "and the bench extra is used as it is, any other gets a throwaway environment",
    )
    where.add_argument(
        "--list-pythons",
        action="store_true",
        help="print the interpreters --all-pythons would use, and exit",
    )
    where.add_argument(
        "--json",
        metavar="FILE",
        help="measure in this interpreter and write the result to FILE, nothing else",
    )
    where.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite the page and plot from benchmarks/results/",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write performance.md and performance.svg into DIR instead of docs/",
    )
    return parser


def _missing(needed: Sequence[str]) -> int | None:
    missing = [name for name in bench.missing_requirements() if name in needed]
    if not missing:
        return None
    _say(
        f"python -m benchmarks: the benchmark needs {', '.join(missing)}, which "
        f"{'is' if len(missing) == 1 else 'are'} not installed in {sys.executable}.\n"
        "Install the bench extra from the root of the checkout:  pip install -e '.[bench]'"
    )
    return 2


def _write(results: list[bench.Result], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    page, plot = report.write(results, output_dir)
    print(report.summary(results))
    print(f"Wrote {page} and {plot}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    mode = bench.QUICK if args.quick else bench.FULL
    output_dir = None if args.output_dir is None else Path(args.output_dir)

    if args.list_pythons:
        for interpreter in pythons.find_pythons():
            how = "as it is" if interpreter.ready else "in a throwaway virtual environment"
            print(f"{interpreter.key}: {interpreter.path} ({how})")
        return 0
    if args.render:
        status = _missing(("matplotlib",))
        if status is not None:
            return status
        results = report.load(bench.RESULTS)
        if not results:
            _say(f"python -m benchmarks --render: no results in {bench.RESULTS}")
            return 2
        _write(results, output_dir or _DOCS)
        return 0
    if args.json is not None:
        status = _missing(PEERS)
        if status is not None:
            return status
        _say(f"{bench.python_key()} ({mode.name} run): measuring...")
        result = bench.run(mode, progress=lambda step: _say(f"  {step}"))
        Path(args.json).write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
        return 0

    status = _missing(bench.REQUIREMENTS)
    if status is not None:
        return status
    if args.all_pythons or args.python:
        try:
            interpreters = (
                pythons.find_pythons() if args.all_pythons else pythons.given_pythons(args.python)
            )
        except ValueError as error:
            _say(f"python -m benchmarks: {error}")
            return 2
        _say("Measuring in: " + ", ".join(f"{i.key} ({i.path})" for i in interpreters))
        results = pythons.measure_in(interpreters, quick=args.quick, say=_say)
    else:
        _say(f"{bench.python_key()} ({mode.name} run): measuring...")
        results = [bench.run(mode, progress=lambda step: _say(f"  {step}"))]

    if args.quick:
        # A quick run proves the suite works; its numbers must not replace the docs.
        quick_dir = output_dir or Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
        report.save(results, quick_dir)
        _write(results, quick_dir)
        return 0
    report.save(results, bench.RESULTS)
    _write(report.load(bench.RESULTS), output_dir or _DOCS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
