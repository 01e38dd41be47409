"""report_parity's comparison: every number of every task, NaN equal to NaN."""

from __future__ import annotations

import math

from benchmarks.report_parity import compare


def test_identical_reports_compare_equal_and_any_change_shows() -> None:
    task = {"main": 72.5, "metric": "spearman", "scores": {"pearson": 0.73, "ap": math.nan}}
    same = compare({"STSBenchmark": task}, {"STSBenchmark": dict(task)})
    assert same["STSBenchmark"] == {
        "baseline": 72.5,
        "new": 72.5,
        "numbers": 3,
        "max_abs_diff": 0.0,
    }
    moved = {**task, "scores": {"pearson": 0.7301, "ap": math.nan}}
    diff = compare({"STSBenchmark": task}, {"STSBenchmark": moved})["STSBenchmark"]
    assert math.isclose(diff["max_abs_diff"], 1e-4, rel_tol=1e-6)
    missing = compare({"STSBenchmark": task}, {"STSBenchmark": {"main": 72.5}})["STSBenchmark"]
    assert missing["max_abs_diff"] == math.inf
    assert compare({"A": task}, {})["A"]["new"] is None
    slower = compare({"A": {**task, "seconds": 9.0}}, {"A": {**task, "seconds": 12.0}})["A"]
    assert slower["max_abs_diff"] == 0.0  # how long a task took is not a score
