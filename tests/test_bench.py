"""The benchmark suite runs, keeps and reports every target; how fast anything was is not
judged here (benchmarks/ holds the targets)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

import tocsin
from benchmarks import bench, pythons, report
from benchmarks.__main__ import main as bench_main
from benchmarks.engine import interleave
from benchmarks.systems import NoOp, ResolvingLoop, SpelledOutLoop, keyword_receiver
from tocsin.__main__ import main


def _needs_matplotlib() -> None:
    pytest.importorskip(
        "matplotlib",
        reason="the plot needs matplotlib, from the bench extra: pip install -e '.[bench]'",
    )


@pytest.fixture(scope="module")
def quick_result() -> bench.Result:
    return bench.run(bench.QUICK, peers=())


def test_a_quick_run_without_peers_measures_tocsin_against_both_floors(
    quick_result: bench.Result,
) -> None:
    assert set(quick_result.cases["send/0"].medians) == {bench.FLOOR, bench.TOCSIN}
    for count in (1, 10, 100):
        case = quick_result.cases[f"send/{count}"]
        assert set(case.medians) == {bench.FLOOR, bench.RESOLVING, bench.TOCSIN}
        assert case.baseline == bench.FLOOR
    small, large = bench.QUICK.growth_marks
    assert set(quick_result.cases["growth"].medians) == {
        bench.growth_label(bench.TOCSIN, small),
        bench.growth_label(bench.TOCSIN, large),
    }
    for key in ("senders", "robust", "strict", "collected-check", "asend", "churn"):
        assert key in quick_result.cases
    assert "testing-unused" in quick_result.cases
    assert set(quick_result.memory) == {bench.TOCSIN}
    assert quick_result.python == f"CPython {sys.version_info[0]}.{sys.version_info[1]}"


def test_every_case_has_positive_times_and_quartiles_around_its_median(
    quick_result: bench.Result,
) -> None:
    rounds = {"churn": bench.QUICK.churn_rounds, "growth": bench.QUICK.growth_rounds}
    for key, case in quick_result.cases.items():
        assert case.rounds == rounds.get(key, bench.QUICK.rounds)
        assert all(median > 0 for median in case.medians.values())
        for subject in case.contenders:
            ratio = case.ratio(subject, case.baseline)
            assert ratio.low <= ratio.median <= ratio.high


def test_every_target_is_measured_or_says_which_peer_was_not_run(
    quick_result: bench.Result,
) -> None:
    rows = bench.targets(quick_result)
    assert len(rows) == 11
    assert all(row.limit is not None for row in rows)
    for row in rows:
        if "django" in row.claim:
            assert row.measured is None and row.met is None
            assert "was not run" in row.note
        else:
            assert row.measured is not None and isinstance(row.met, bool)
    for row in bench.informative(quick_result):
        assert row.limit is None and row.met is None


def test_a_result_survives_json_and_the_results_directory(
    quick_result: bench.Result, tmp_path: Path
) -> None:
    text = json.dumps(quick_result.to_json())
    assert bench.Result.from_json(json.loads(text)) == quick_result
    other = dataclasses.replace(quick_result, python="CPython 3.99")
    report.save([other, quick_result], tmp_path)
    assert report.load(tmp_path) == [quick_result, other]
    report.save([dataclasses.replace(other, notes=["again"])], tmp_path)
    assert [result.notes for result in report.load(tmp_path)] == [[], ["again"]]


def test_the_page_shows_each_python_and_marks_the_targets(
    quick_result: bench.Result, tmp_path: Path
) -> None:
    _needs_matplotlib()
    other = dataclasses.replace(quick_result, python="CPython 3.99")
    page_path, plot_path = report.write([quick_result, other], tmp_path)
    page = page_path.read_text(encoding="utf-8")
    assert page.count(f"## {quick_result.python}\n") == 1
    assert page.count("## CPython 3.99\n") == 1
    assert page.count("### Targets\n") == 2
    assert page.count("### Other comparisons\n") == 2
    for row in bench.targets(quick_result):
        assert row.claim in page
    assert "quick run" in page
    # Every ```python block of docs/*.md is executed by the test suite.
    assert "```python" not in page
    assert plot_path.read_text(encoding="utf-8").startswith("<?xml")


def test_both_floors_do_what_a_send_does() -> None:
    receivers = [keyword_receiver() for _ in range(3)]
    signal = tocsin.Signal()
    for receiver in receivers:
        signal.connect(receiver)
    sender = object()
    sent = signal.send(sender, instance=1, created=True)
    for floor in (SpelledOutLoop(receivers), ResolvingLoop(receivers)):
        assert floor.send(sender, instance=1, created=True) == sent
    assert NoOp().send(sender, instance=1, created=True) == []


def test_the_resolving_floor_calls_a_receiver_an_earlier_one_dropped() -> None:
    calls: list[str] = []
    held: dict[str, object] = {}

    def first(**named: object) -> None:
        calls.append("first")
        held.clear()  # the last reference to ``second``

    def second(**named: object) -> None:
        calls.append("second")

    held["second"] = second
    floor = ResolvingLoop([first, second])
    del second
    floor.send(None, instance=1, created=True)
    assert calls == ["first", "second"]


def test_a_case_compares_contenders_round_by_round() -> None:
    case = interleave(
        {"a": lambda loops: 2 * loops, "b": lambda loops: loops},
        baseline="b",
        rounds=3,
        loops={"a": 1, "b": 1},
    )
    assert case.samples == {"a": [2.0, 2.0, 2.0], "b": [1.0, 1.0, 1.0]}
    assert case.ratio("a").median == 2.0
    assert case.ratio("b", reference="a").median == 0.5
    summary = case.summary()
    assert summary.ratio("a") == case.ratio("a")
    assert summary.ratio("b", "a").median == 0.5
    assert summary.ratio("a", "a").median == 1.0


def _interpreter(
    key: str, version: tuple[int, int, int], *, ready: bool = False
) -> pythons.Interpreter:
    return pythons.Interpreter(
        path=f"/opt/{key}-{version}",
        key=key,
        version=version,
        implementation=key.split()[0],
        missing=() if ready else ("django",),
    )


def test_one_cpython_per_version_from_3_11_preferring_one_ready_to_run() -> None:
    found = [
        _interpreter("CPython 3.12", (3, 12, 1)),
        _interpreter("CPython 3.10", (3, 10, 13)),
        _interpreter("CPython 3.11", (3, 11, 2)),
        _interpreter("CPython 3.11", (3, 11, 7)),
        _interpreter("CPython 3.12", (3, 12, 0), ready=True),
        _interpreter("PyPy 3.11", (3, 11, 9)),
        _interpreter("CPython 3.13t", (3, 13, 0)),
    ]
    chosen = pythons.choose(found)
    assert [(i.key, i.version) for i in chosen] == [
        ("CPython 3.11", (3, 11, 7)),
        ("CPython 3.12", (3, 12, 0)),
        ("CPython 3.13t", (3, 13, 0)),
    ]


def test_this_interpreter_answers_the_probe() -> None:
    interpreter = pythons.probe(sys.executable)
    assert interpreter is not None
    assert interpreter.key == bench.python_key()
    assert interpreter.version == tuple(sys.version_info[:3])
    # The tests run against this checkout, installed in editable mode.
    assert "tocsin from this checkout" not in interpreter.missing
    assert set(interpreter.missing) == set(bench.missing_requirements())
    assert sys.executable in pythons.candidates()


def test_a_path_that_is_no_python_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing-here"):
        pythons.given_pythons([str(tmp_path / "nothing-here")])


def test_the_command_names_the_missing_requirements(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(bench, "REQUIREMENTS", ("no_such_peer_module",))
    assert bench_main(["--quick", "--output-dir", str(tmp_path)]) == 2
    message = capsys.readouterr().err
    assert "no_such_peer_module" in message
    assert "pip install -e '.[bench]'" in message
    assert not list(tmp_path.iterdir())


def test_render_rewrites_the_page_from_kept_results(
    quick_result: bench.Result,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _needs_matplotlib()
    kept, output = tmp_path / "results", tmp_path / "docs"
    monkeypatch.setattr(bench, "RESULTS", kept)
    assert bench_main(["--render", "--output-dir", str(output)]) == 2
    assert "no results" in capsys.readouterr().err
    report.save([quick_result], kept)
    assert bench_main(["--render", "--output-dir", str(output)]) == 0
    assert (output / report.PAGE).read_text(encoding="utf-8") == report.page([quick_result])


def test_tocsin_bench_launches_the_suite_of_the_checkout(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--help"]) == 0
    assert "usage: python -m benchmarks" in capfd.readouterr().out


def test_tocsin_bench_outside_a_checkout_says_where_the_suite_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(tocsin, "__file__", str(tmp_path / "site" / "tocsin" / "__init__.py"))
    assert main(["bench", "--quick"]) == 2
    message = capsys.readouterr().err
    assert "python -m benchmarks --quick" in message
    assert "pip install -e '.[bench]'" in message
