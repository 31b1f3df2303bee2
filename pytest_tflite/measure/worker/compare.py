"""Candidate vs baseline latency, timed in one worker process in alternating small blocks.

On shared machines an invoke now and then runs ~1.7x slower for tens to hundreds of
milliseconds, and latency drifts by tens of percent over minutes and between processes. Two
numbers measured apart compare that noise, not the models. Here both models live in one
process and take turns: a *pair* is one block of the candidate and one of the baseline, in an
order drawn at random for each pair (so whatever the first or second block of a pair suffers,
cache state or the start of a slow spell, falls on each model alike), each block a few
invokes, about ``block_ms`` long. A slow spell longer than a pair slows both blocks together and
cancels in that pair's ratio.

Per pair: ``log(candidate block mean / baseline block mean)``. A block's mean is its total time
per invoke (with several invokes per block it is already steady), on the process CPU clock with
one thread, else the wall clock (``choose_clock``): other processes taking turns on the core
inflate wall time by whole time slices, block by block, which no pairing cancels. Each invoke's
wall time is still recorded: the latency figures and samples returned are wall time.

The estimate is ``exp`` of a trimmed mean of the pair logs (TRIM of the pairs cut at each end):
a slow spell that starts or ends between the two blocks of a pair gives that pair a wild ratio
(~1.7 or ~1/1.7), and trimming drops those few without the lumpy steps a median has; in logs,
swapping candidate and baseline gives exactly the inverse ratio and interval. The 95% interval
is a percentile bootstrap of that trimmed mean over the pairs (BOOTSTRAP_RESAMPLES, seeded).

Stopping: at least ``min_pairs`` pairs and ``min_seconds`` of timing; then, when the caller
gave a ``tolerance``, the interval is judged every CHECK_EVERY_S and the run stops as soon as it
is decisive (not ``inconclusive``); else, or when it never is, at ``max_seconds``.

Imports only the standard library, numpy and ai_edge_litert, like the rest of the worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .protocol import (
    DEFAULT_SEED,
    DEFAULT_THREADS,
    DEFAULT_WARMUP,
    MAX_SECONDS,
    Runs,
    latency_stats,
    random_inputs,
)

# Defaults of the ``compare`` runtime setting. About 2 s of timing per comparison (75-230 pairs
# of 10 ms blocks in bench/latency_gate.py), up to 4 s when the interval still straddles a
# tolerance edge: with the worker's start (~0.3 s), loading and warm-up, a comparison took
# 2.8-3.8 s there, and one with its re-measure at most ~11 s.
DEFAULT_COMPARE: dict[str, Any] = {
    "min_pairs": 20,
    "min_seconds": 2.0,
    "max_seconds": 4.0,
    "block_ms": 10.0,  # the length of one model's block: much shorter than a slow spell
    "clock": "auto",  # what a block's time is: "cpu", "wall", or "auto" (see choose_clock)
}
TRIM = 0.1  # fraction of the pair logs cut at each end before averaging
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
CHECK_EVERY_S = 0.25  # how often the interval is judged once the minimums are met
MAX_BLOCK_RUNS = 1000  # a block of a microsecond model still ends

ComparisonVerdict = Literal["regressed", "improved", "unchanged", "inconclusive"]
Clock = Literal["cpu", "wall"]


def judge_interval(low: float, high: float, tolerance: float) -> ComparisonVerdict:
    """What an interval of candidate/baseline latency ratios says against ``tolerance`` (0.05
    for 5%): ``regressed`` when all of it lies above 1 + tolerance, ``improved`` when all of it
    lies below 1 - tolerance, ``unchanged`` when all of it lies within [1 - tolerance,
    1 + tolerance] (edges included), ``inconclusive`` when it straddles an edge."""
    if low > 1 + tolerance:
        return "regressed"
    if high < 1 - tolerance:
        return "improved"
    if low >= 1 - tolerance and high <= 1 + tolerance:
        return "unchanged"
    return "inconclusive"


@dataclass(frozen=True)
class CompareSettings:
    min_pairs: int
    min_seconds: float
    max_seconds: float
    block_ms: float
    clock: str

    @classmethod
    def from_settings(cls, given: dict[str, Any] | None) -> CompareSettings:
        merged = {**DEFAULT_COMPARE, **{k: v for k, v in (given or {}).items() if v is not None}}
        min_seconds = float(merged["min_seconds"])
        clock = str(merged["clock"])
        if clock not in ("auto", "cpu", "wall"):
            raise ValueError(f"compare.clock must be auto, cpu or wall, not {clock!r}")
        return cls(max(int(merged["min_pairs"]), 2), min_seconds,
                   max(float(merged["max_seconds"]), min_seconds), float(merged["block_ms"]),
                   clock)


def choose_clock(clock: str, threads: int) -> Clock:
    """``auto``: process CPU time with one thread, where the clock resolves nanoseconds (Linux,
    macOS); wall time otherwise. With one thread an invoke's CPU time is its latency minus the
    time other processes held the core: on a shared 2-core machine at load average 4, up to two
    thirds of all invokes were preempted (wall > 1.2x CPU) and pair ratios on wall time
    scattered 2-8x as widely as on CPU time. Beside two busy loops (bench/latency_gate.py,
    load average ~5) the gate on the wall clock left 15 of 20 identical pairings inconclusive
    and caught 7 of 20 +5% models; on the CPU clock 1 and 20 of 20. With several threads CPU
    time adds up the threads' work and no longer measures latency, and a coarse clock
    (Windows: ~16 ms) cannot time a block."""
    if clock in ("cpu", "wall"):
        return "cpu" if clock == "cpu" else "wall"
    fine = time.get_clock_info("process_time").resolution <= 1e-6
    return "cpu" if threads == 1 and fine else "wall"


def trimmed_mean(values: Any, trim: float = TRIM) -> Any:
    """Mean along the last axis after cutting ``trim`` of the sorted values at each end."""
    ordered = np.sort(np.asarray(values, dtype=float), axis=-1)
    cut = math.floor(ordered.shape[-1] * trim)
    kept = ordered[..., cut:ordered.shape[-1] - cut] if cut else ordered
    return kept.mean(axis=-1)


def ratio_interval(log_ratios: Sequence[float],
                   seed: int = DEFAULT_SEED) -> tuple[float, float, float]:
    """(ratio, low, high): the trimmed mean of the pairs' log ratios and its percentile bootstrap
    interval, back in ratios. Seeded, so the same pairs always give the same interval."""
    logs = np.asarray(log_ratios, dtype=float)
    if logs.size == 0:
        raise ValueError("no pairs to compare")
    rng = np.random.default_rng(seed)
    resamples = trimmed_mean(logs[rng.integers(0, logs.size, (BOOTSTRAP_RESAMPLES, logs.size))])
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resamples, [tail, 100 - tail])
    return float(np.exp(trimmed_mean(logs))), float(np.exp(low)), float(np.exp(high))


def _timed_block(invoke: Any, runs: int, durations: list[float]) -> tuple[float, float]:
    """``runs`` invokes, each one's wall time into ``durations``; the block's mean wall time and
    mean process CPU time per invoke, in milliseconds."""
    total = 0
    cpu_before = time.process_time_ns()
    for _ in range(runs):
        before = time.perf_counter_ns()
        invoke()
        spent = time.perf_counter_ns() - before
        durations.append(spent / 1e6)
        total += spent
    return total / runs / 1e6, (time.process_time_ns() - cpu_before) / runs / 1e6


def alternate(
    candidate: Any, baseline: Any, settings: CompareSettings, warmup: Runs, *,
    seed: int = DEFAULT_SEED, tolerance: float | None = None, clock: Clock = "cpu",
) -> dict[str, Any]:
    """Time two invoke callables in alternating blocks; the ratio candidate/baseline on
    ``clock``, its interval and both models' latency figures (wall time). See the module
    docstring for the protocol."""
    first: dict[str, float] = {}
    for name, invoke in (("candidate", candidate), ("baseline", baseline)):
        before = time.perf_counter_ns()
        invoke()  # XNNPACK finishes packing here; 1-3x steady state, so never in a block
        first[name] = (time.perf_counter_ns() - before) / 1e6
    # Warm-up in alternation too, one invoke each at a time, so both end it equally warm; its
    # durations size the blocks.
    warm: dict[str, list[float]] = {"candidate": [], "baseline": []}
    start = time.perf_counter()
    while True:
        _timed_block(candidate, 1, warm["candidate"])
        _timed_block(baseline, 1, warm["baseline"])
        elapsed = time.perf_counter() - start
        if (len(warm["baseline"]) >= max(warmup.min_runs, 1) and elapsed >= warmup.min_seconds) \
                or elapsed > settings.max_seconds:
            break
    typical = (float(np.median(warm["candidate"])) + float(np.median(warm["baseline"]))) / 2
    runs = int(min(max(round(settings.block_ms / max(typical, 1e-6)), 1), MAX_BLOCK_RUNS))

    rng = np.random.default_rng(seed)
    durations: dict[str, list[float]] = {"candidate": [], "baseline": []}
    log_ratios: list[float] = []
    # Each block's time per invoke on ``clock``, per model: the medians reports show beside the
    # ratio come from the very blocks the ratio was taken on.
    block_means: dict[str, list[float]] = {"candidate": [], "baseline": []}
    wall_ms = cpu_ms = 0.0
    start = time.perf_counter()
    next_check = settings.min_seconds
    while True:
        means = {}
        order = ("candidate", "baseline") if rng.random() < 0.5 else ("baseline", "candidate")
        for name in order:
            wall, cpu = _timed_block(candidate if name == "candidate" else baseline, runs,
                                     durations[name])
            means[name] = cpu if clock == "cpu" else wall
            wall_ms, cpu_ms = wall_ms + wall, cpu_ms + cpu
        # A block too short for the CPU clock's resolution reads 0: no ratio to take from it.
        if means["candidate"] > 0 and means["baseline"] > 0:
            log_ratios.append(math.log(means["candidate"] / means["baseline"]))
            for name in block_means:
                block_means[name].append(means[name])
        elapsed = time.perf_counter() - start
        if elapsed > MAX_SECONDS:  # a model too slow for min_pairs still ends
            break
        if len(log_ratios) < settings.min_pairs or elapsed < settings.min_seconds:
            continue
        if tolerance is None or elapsed >= settings.max_seconds:
            break
        if elapsed >= next_check:
            # Judged between pairs, outside any block: the bootstrap never lands in a timing.
            _, low, high = ratio_interval(log_ratios, seed)
            if judge_interval(low, high, tolerance) != "inconclusive":
                break
            next_check = elapsed + CHECK_EVERY_S
    seconds = time.perf_counter() - start
    ratio, low, high = ratio_interval(log_ratios, seed)
    return {
        "ratio": ratio,
        "low": low,
        "high": high,
        "pairs": len(log_ratios),
        "clock": clock,
        "block_runs": runs,
        # The share of a core this process got while timing: well under 1 means other
        # processes took turns on its core (which the CPU clock leaves out of the ratio).
        "cpu_share": cpu_ms / wall_ms if wall_ms > 0 else None,
        "seconds": seconds,
        "warmup_runs": len(warm["baseline"]),
        "first_invoke_ms": first,
        "log_ratios": log_ratios,
        "block_means_ms": block_means,
        "candidate": latency_stats(durations["candidate"]),
        "baseline": latency_stats(durations["baseline"]),
    }


def _same_inputs(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> bool:
    def shapes(details: list[dict[str, Any]]) -> list[tuple[list[int], str]]:
        return [([int(d) for d in x["shape"]], np.dtype(x["dtype"]).str) for x in details]
    return shapes(first) == shapes(second)


def compare(candidate_path: str, baseline_path: str, delegate: str,
            settings: dict[str, Any]) -> dict[str, Any]:
    """Open both models under ``delegate`` and time them in alternation (``alternate``).

    ``settings``: ``threads``, ``input_shapes``, ``seed``, ``warmup`` as for a measurement,
    ``compare`` ({min_pairs, min_seconds, max_seconds, block_ms, clock}; DEFAULT_COMPARE fills
    the gaps) and ``tolerance`` (a fraction; when given, the run stops as soon as the interval is
    decisive). Each model gets random inputs from its own input details with the same seed:
    when their inputs agree, both are fed the very same arrays.
    """
    from .delegates import ModelRejected, ModelUnsupported, open_runner

    threads = int(settings.get("threads") or DEFAULT_THREADS)
    seed = int(settings.get("seed") or DEFAULT_SEED)
    shapes = settings.get("input_shapes") or {}
    runners = {}
    init_ms = {}
    for name, path in (("candidate", candidate_path), ("baseline", baseline_path)):
        start = time.perf_counter_ns()
        try:
            runners[name] = open_runner(path, delegate, threads, shapes)
        except (ModelUnsupported, ModelRejected) as exc:
            raise type(exc)(f"{name} model: {exc}") from None  # which of the two, in its words
        init_ms[name] = (time.perf_counter_ns() - start) / 1e6
    for name, runner in runners.items():
        try:
            runner.set_inputs(random_inputs(runner.inputs, seed))
        except (RuntimeError, ValueError) as exc:
            raise ModelRejected(f"{name} model: the interpreter refused its inputs: "
                                f"{' '.join(str(exc).split())[:500]}") from None

    def guarded(name: str) -> Any:
        invoke = runners[name].invoke

        def run() -> None:
            try:
                invoke()
            except (RuntimeError, ValueError) as exc:
                raise ModelRejected(f"{name} model: the interpreter failed running it (corrupt or "
                                    f"invalid): {' '.join(str(exc).split())[:500]}") from None
        return run

    tolerance = settings.get("tolerance")
    timing = CompareSettings.from_settings(settings.get("compare"))
    found = alternate(
        guarded("candidate"), guarded("baseline"), timing,
        Runs.from_settings(settings.get("warmup"), DEFAULT_WARMUP),
        seed=seed, tolerance=None if tolerance is None else float(tolerance),
        clock=choose_clock(timing.clock, threads),
    )
    same = _same_inputs(runners["candidate"].inputs, runners["baseline"].inputs)
    return {"status": "ok", "reason": "", "threads": threads,
            "inputs": f"random (seed {seed})" + ("" if same else ", each model its own shapes"),
            "same_inputs": same, "init_ms": init_ms, **found}
