"""The latency method, deterministically: a fake clock and fake calls drive it, no timing is asserted.

The fake clock only moves when a fake call runs, by a duration the test chooses; so every count, every
statistic and every verdict below is exact. The last tests run one real evaluate job and check that its
rows carry the method, and that the report still draws p50 with p10–p90 bars from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from math import comb

import numpy as np
import pytest

from dlcompat.metrics.latency import LatencyMethod, collect_samples, measure_latency, median_ci_ranks, summarize
from dlcompat.study.config import LatencySettings, load_preset

MS = 1_000_000  # ns


class FakeRuntime:
    """A clock in integer nanoseconds and a zero-argument call that advances it by the next duration."""

    def __init__(self, durations: Iterator[int] | Callable[[int], int]) -> None:
        self.now = 1_000 * MS
        self.calls = 0
        self._next = durations if callable(durations) else (lambda _i, it=durations: next(it))

    def clock(self) -> int:
        return self.now

    def call(self) -> None:
        self.now += self._next(self.calls)
        self.calls += 1


def constant(ms: float) -> Callable[[int], int]:
    return lambda _i: int(ms * MS)


def measure(runtime: FakeRuntime, **rules: float) -> object:
    return measure_latency(runtime.call, LatencyMethod(**rules), clock=runtime.clock, clock_name="fake")


# -- the order-statistic CI of the median ---------------------------------------------------------------


def brute_force_ranks(n: int, level: float) -> tuple[int, int, float] | None:
    best, count = None, 0
    for j in range(1, n // 2 + 2):
        count += comb(n, j - 1)
        below = count / 2**n  # P(B <= j - 1), exactly, from integers
        if below <= (1 - level) / 2:
            best = (j, n - j + 1, 1 - 2 * below)
    return best


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 10, 11, 20, 50, 99, 100, 257, 1000])
def test_median_ci_ranks_are_the_exact_binomial_ones(n: int, level: float) -> None:
    expected = brute_force_ranks(n, level)
    got = median_ci_ranks(n, level)
    if expected is None:
        assert got is None
    else:
        assert (got.low_rank, got.high_rank) == expected[:2]
        assert got.coverage == pytest.approx(expected[2], abs=1e-12)
        assert got.coverage >= level


def test_median_ci_ranks_of_textbook_cases() -> None:
    assert median_ci_ranks(5, 0.95) is None  # 2 * (1/2)^5 = 6.25% > 5%: no 95% interval exists
    assert (median_ci_ranks(6, 0.95).low_rank, median_ci_ranks(6, 0.95).high_rank) == (1, 6)
    assert (median_ci_ranks(10, 0.95).low_rank, median_ci_ranks(10, 0.95).high_rank) == (2, 9)
    assert (median_ci_ranks(100, 0.95).low_rank, median_ci_ranks(100, 0.95).high_rank) == (40, 61)
    big = median_ci_ranks(1_000_000, 0.95)  # fast and symmetric about the middle
    assert big.low_rank + big.high_rank == 1_000_001 and abs(big.low_rank - (500_000 - 980)) < 5


def test_summarize_gives_the_median_ci_on_known_samples() -> None:
    samples = np.arange(100, 0, -1) * MS  # 100 ms .. 1 ms, shuffled order does not matter
    stats = summarize(samples, LatencyMethod(min_repeats=1, min_time_s=0, warmup=0, warmup_time_s=0))
    assert (stats.median_ci_low, stats.median_ci_high) == (40.0, 61.0)
    assert stats.p50 == 50.5 and stats.min == 1.0 and stats.max == 100.0 and stats.repeats == 100
    assert stats.ci_rel_width == pytest.approx(21 / 50.5)
    assert stats.ci_coverage == pytest.approx(0.9648, abs=1e-4)
    assert stats.std == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    ten = summarize(np.arange(1, 11) * MS, LatencyMethod(min_repeats=1, min_time_s=0))
    assert (ten.median_ci_low, ten.median_ci_high) == (2.0, 9.0)
    five = summarize(np.arange(1, 6) * MS, LatencyMethod(min_repeats=1, min_time_s=0))
    assert five.median_ci_low is None and five.ci_rel_width is None and not five.converged
    assert any("too few repeats" in rule for rule in five.unmet)


# -- the first call, the warm-up -----------------------------------------------------------------------


def test_the_first_call_is_reported_apart_and_never_in_the_samples() -> None:
    runtime = FakeRuntime(lambda i: 500 * MS if i == 0 else MS)  # a compile on the first call
    stats = measure(runtime, warmup=3, warmup_time_s=0, min_repeats=20, min_time_s=0)
    assert stats.first_call_ms == 500.0
    assert stats.max == 1.0 and stats.p50 == 1.0 and stats.std == 0.0
    assert stats.converged and stats.unmet == ()
    # nothing else is called: the first call, the warm-up and the samples are every call there was
    assert runtime.calls == 1 + stats.warmup_calls + stats.repeats


def test_warmup_by_count() -> None:
    stats = measure(FakeRuntime(constant(1)), warmup=10, warmup_time_s=0.0, min_repeats=10, min_time_s=0)
    assert stats.warmup_calls == 10 and stats.warmup_s == pytest.approx(0.010)


def test_warmup_by_time_when_the_count_comes_first() -> None:
    stats = measure(FakeRuntime(constant(1)), warmup=2, warmup_time_s=0.05, min_repeats=10, min_time_s=0)
    assert stats.warmup_calls == 50 and stats.warmup_s == pytest.approx(0.050)


def test_warmup_stops_at_max_time_and_says_so() -> None:
    stats = measure(FakeRuntime(constant(100)), warmup=1000, warmup_time_s=0.0, min_repeats=5, min_time_s=0,
                    max_time_s=1.0)
    assert stats.warmup_calls == 10 and stats.repeats == 1  # the steady state still takes one sample
    assert not stats.converged
    assert "warm-up ran 10 of 1000 calls" in stats.unmet


# -- the steady state: convergence and non-convergence ------------------------------------------------


def test_steady_state_runs_to_both_minimums() -> None:
    # 1 ms calls: 20 calls come first, then the 0.1 s minimum decides
    stats = measure(FakeRuntime(constant(1)), warmup=0, warmup_time_s=0, min_repeats=20, min_time_s=0.1)
    assert stats.repeats == 100 and stats.elapsed_s == pytest.approx(0.1)
    assert stats.converged and stats.ci_rel_width == 0.0
    # 10 ms calls: the time comes first, then the count decides
    stats = measure(FakeRuntime(constant(10)), warmup=0, warmup_time_s=0, min_repeats=50, min_time_s=0.1)
    assert stats.repeats == 50 and stats.converged


def test_steady_state_repeats_until_the_median_ci_is_narrow_enough() -> None:
    rng = np.random.default_rng(0)
    durations = iter(int(d) for d in rng.lognormal(np.log(MS), 0.5, size=100_000))
    stats = measure(FakeRuntime(durations), warmup=0, warmup_time_s=0, min_repeats=10, min_time_s=0,
                    max_ci_rel_width=0.05)
    assert stats.converged and stats.unmet == ()
    assert stats.repeats > 10  # 10 lognormal samples give a median CI far wider than 5%
    assert stats.ci_rel_width <= 0.05
    assert stats.median_ci_low <= stats.p50 <= stats.median_ci_high
    wide = summarize(np.sort(rng.lognormal(0, 0.5, 10)), LatencyMethod(min_repeats=1, min_time_s=0))
    assert wide.ci_rel_width > 0.05


def test_a_noisy_call_that_never_converges_stops_at_max_time() -> None:
    rng = np.random.default_rng(1)
    runtime = FakeRuntime(iter(int(d) for d in rng.uniform(1, 3, size=1_000_000) * MS))
    start = runtime.now
    stats = measure(runtime, warmup=5, warmup_time_s=0.01, min_repeats=20, min_time_s=0.1, max_time_s=1.0,
                    max_ci_rel_width=0.001)
    assert not stats.converged
    assert any(rule.startswith("median CI is") for rule in stats.unmet)
    # the first call, then at most max_time_s, overrun by at most one call
    assert runtime.now - start <= 3 * MS + 1_000 * MS + 3 * MS
    assert stats.repeats > 20 and stats.ci_rel_width > 0.001


def test_a_slow_call_that_cannot_reach_min_repeats_is_marked() -> None:
    stats = measure(FakeRuntime(constant(100)), warmup=0, warmup_time_s=0, min_repeats=50, min_time_s=0,
                    max_time_s=1.0)
    assert stats.repeats == 10 and not stats.converged
    assert "10 of 50 repeats" in stats.unmet


# -- per-image figures, timings taken elsewhere -------------------------------------------------------


def test_per_image_figures() -> None:
    stats = measure(FakeRuntime(constant(2)), batch_size=4, warmup=0, warmup_time_s=0, min_repeats=10, min_time_s=0)
    assert stats.batch_size == 4 and stats.p50 == 2.0
    assert stats.p50_per_image == 0.5 and stats.mean_per_image == 0.5
    assert stats.throughput == pytest.approx(2000.0)


def test_summarize_judges_timings_taken_elsewhere_by_the_same_rules() -> None:
    method = LatencyMethod(warmup=5, warmup_time_s=0.01, min_repeats=50, min_time_s=0.1)
    page = [1.0 * MS] * 30  # e.g. performance.now() differences from a browser, in ns
    short = summarize(page, method, first_call_ns=40 * MS, warmup_calls=5, warmup_ns=12 * MS, clock="page")
    assert not short.converged and short.first_call_ms == 40.0 and short.clock == "page"
    assert short.unmet == ("30 of 50 repeats", "steady state ran 0.03 of 0.1 s")
    enough = summarize([1.0 * MS] * 200, method, warmup_calls=5, warmup_ns=12 * MS)
    assert enough.converged and enough.elapsed_s == pytest.approx(0.2)  # elapsed defaults to the sum
    with pytest.raises(ValueError, match="no samples"):
        summarize([], method)


def test_collect_samples_keeps_the_raw_times_in_call_order() -> None:
    method = LatencyMethod(warmup=2, warmup_time_s=0, min_repeats=10, min_time_s=0)
    runtime = FakeRuntime(lambda i: (i + 1) * MS)  # every call 1 ms slower than the one before
    raw = collect_samples(runtime.call, method, clock=runtime.clock, clock_name="fake")
    assert raw.first_call_ns == MS and raw.warmup_calls == 2 and raw.warmup_ns == 5 * MS
    assert list(raw.samples_ns) == [(i + 4) * MS for i in range(len(raw.samples_ns))]
    assert raw.elapsed_ns == int(raw.samples_ns.sum())  # a fake clock spends nothing between calls
    stats = summarize(method=method, **raw.as_kwargs())
    assert stats.repeats == len(raw.samples_ns) and stats.clock == "fake" and stats.first_call_ms == 1.0


def test_measure_latency_on_the_real_clock() -> None:
    stats = measure_latency(lambda: None, LatencyMethod(warmup=2, warmup_time_s=0, min_repeats=30, min_time_s=0))
    assert stats.repeats >= 30 and stats.clock == "time.perf_counter_ns" and stats.min >= 0
    assert stats.method_fields()["repeats"] == stats.repeats


# -- the method as config --------------------------------------------------------------------------------


def test_config_and_method_agree_on_every_rule_and_default() -> None:
    assert LatencySettings().model_dump() == LatencyMethod().to_dict()
    quick = LatencyMethod.from_dict(load_preset("quick").latency.model_dump())
    assert quick.min_repeats == 50 and quick.max_time_s >= quick.min_time_s + quick.warmup_time_s
    assert LatencyMethod.from_dict({"warmup": 3, "not_a_rule": 1}).warmup == 3


def test_a_method_that_cannot_converge_is_refused() -> None:
    with pytest.raises(ValueError, match="max_time_s"):
        LatencyMethod(min_time_s=5.0, max_time_s=1.0)
    with pytest.raises(ValueError, match="ci_level"):
        LatencyMethod(ci_level=1.0)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_time_s"):
        LatencySettings(min_time_s=5.0, max_time_s=1.0)


# -- the evaluate job records the method with every figure --------------------------------------------

TINY = """
name = "latency-method"
models = ["lenet1"]
check_reproducibility = false
[data]
limit_train = 200
limit_test = 40
[train]
epochs = 1
[latency]
batch_size = 2
warmup = 3
warmup_time_s = 0.01
min_repeats = 20
min_time_s = 0.02
max_time_s = 5.0
"""

METHOD_FIELDS = {
    "api", "batch_size", "warmup", "warmup_time_s", "warmup_calls", "warmup_s", "min_repeats", "repeats",
    "min_time_s", "max_time_s", "elapsed_s", "ci_level", "ci_coverage", "max_ci_rel_width", "ci_rel_width",
    "converged", "unmet", "threads", "intra_op_threads", "inter_op_threads", "delegate", "clock", "runtime", "version",
}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> list[dict]:
    from dlcompat.store.db import ResultStore, database_url
    from dlcompat.study.config import parse_config
    from dlcompat.study.runner import run_study

    out = tmp_path_factory.mktemp("latency-study")
    summary = run_study(parse_config(TINY), out, executor="inline")
    assert summary.failed == 0, summary
    return ResultStore(database_url(out)).rows(summary.run_id)


def test_every_latency_row_carries_the_method(evaluated) -> None:
    latency = [r for r in evaluated if r["metric"].startswith("latency_") or r["metric"] == "first_inference"]
    targets = {r["target"] for r in latency}
    assert targets == {"pytorch", "onnxruntime"}
    for row in latency:
        method = row["method"]
        assert set(method) >= METHOD_FIELDS, METHOD_FIELDS - set(method)
        assert method["batch_size"] == 2 and method["warmup"] == 3 and method["min_repeats"] == 20
        assert method["repeats"] >= 20 and method["warmup_calls"] >= 3
        assert method["clock"] == "time.perf_counter_ns" and method["delegate"] == "none"
        assert method["intra_op_threads"] == 1  # threads = 1, as the runtime itself reports it
        assert isinstance(method["converged"], bool) and method["converged"] == (method["unmet"] == [])
    by = {(r["target"], r["metric"]): r for r in evaluated}
    assert by[("onnxruntime", "latency_p50")]["method"]["api"] == "InferenceSession.run"
    assert "inference_mode" in by[("pytorch", "latency_p50")]["method"]["api"]
    for target in targets:
        p50, low, high = (by[(target, m)]["value"] for m in
                          ("latency_p50", "latency_median_ci_low", "latency_median_ci_high"))
        assert low <= p50 <= high
        assert by[(target, "latency_p50_per_image")]["value"] == pytest.approx(p50 / 2)
        assert "predictor_setup_ms" in by[(target, "first_inference")]["method"]
        for metric in ("peak_rss_load", "peak_rss_inference", "peak_rss"):
            assert by[(target, metric)]["value"] > 0 and by[(target, metric)]["unit"] == "bytes"
        assert by[(target, "peak_rss")]["value"] >= by[(target, "peak_rss_inference")]["value"]
        assert by[(target, "load_time")]["value"] > 0


def test_the_report_still_draws_p50_with_p10_to_p90_bars(evaluated) -> None:
    from dlcompat.report.charts import latency_chart
    from dlcompat.report.rows import normalize_rows
    from dlcompat.report.tables import latency_table

    rows = normalize_rows(evaluated)
    figure = latency_chart(rows)
    assert figure is not None
    bars = figure["data"]
    assert len(bars) == 2 and all("error_y" in bar for bar in bars)
    table = latency_table(rows)
    assert len(table) == 2 and {"p50", "p10", "p90", "api", "batch"} <= {c.label for c in table.columns}
    assert all(math.isfinite(bar["y"][0]) for bar in bars)
