"""The bridge benchmark runs and reports every broker it can have; how fast is not judged
here (benchmarks/bridge.py holds the target)."""

from __future__ import annotations

from benchmarks import bridge

TINY = bridge.Mode("tiny", messages=100, rounds=1, pings=10, send_rounds=1, sends=50)


def test_a_tiny_run_measures_or_explains_each_broker_and_the_send_cost() -> None:
    report = bridge.run(TINY)
    for kind in ("Redis", "PostgreSQL"):
        assert (kind in report.brokers) != (kind in report.skipped)
    for results in report.brokers.values():
        assert set(results) == {"raw client", "bridge"}
        for measured in results.values():
            assert len(measured.throughput) == 1 and measured.rate() > 0
            assert len(measured.latencies) == 10
            assert 0 < measured.percentile(0.5) <= measured.percentile(0.99)
    assert {"not forwarded", "forwarded (memory broker)"} <= set(report.send_cost)
    page = bridge.render(report)
    assert "## Target" in page and "## What forwarding adds to a send" in page
    for kind, reason in report.skipped.items():
        assert f"| {kind} | not measured: {reason}" in page
