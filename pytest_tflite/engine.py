"""The one engine: (model, variant budget, settings, data, reference) -> a judged Entry.

The ``tflite_budget`` fixture, ``tflite-budget check`` and budget-file items all call ``run``;
none of them measures or judges on its own. No pytest and no TensorFlow at import time: a Keras
or SavedModel reference loads TensorFlow only when it is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .budget import Budget, Variant
from .errors import TFLiteError
from .model import TFLiteModel
from .quality import Evaluation as Evaluation  # re-exported: what a test gives to judge quality
from .quality import evaluate
from .quality import layer_errors as layer_errors  # re-exported: the failure's table
from .regressions import NO_BASELINE, keep_baseline_costs, tolerances
from .results import (
    DelegateResult,
    Entry,
    Measurement,
    Verdict,
)
from .runner_config import PREFIX as RUNNER
from .runner_config import Runners
from .settings import Layer, RuntimeSettings, resolve_runtime
from .verdicts import Context, delegates_named, judge

if TYPE_CHECKING:
    from .baseline import Baseline, BaselineEntry
    from .nodes import GraphDiff


@dataclass(frozen=True)
class Settings:
    """Run-wide settings from the command line and ini file; budget files add their own."""

    baseline: Baseline | None = None  # --tflite-baseline: the base branch's results
    strict: bool = False  # --tflite-strict: an inconclusive latency comparison fails
    runtime_off: str | None = None  # why runtime budgets are skipped, e.g. --tflite-no-runtime
    delegate_filter: tuple[str, ...] | None = None  # --tflite-delegates limits what is measured
    require_delegates: bool = False
    without_data: Verdict = "error"  # accuracy budgets with no data: error in tests, skip in the CLI
    ini: Layer = field(default_factory=dict)  # runtime settings (seconds), lowest precedence
    command_line: Layer = field(default_factory=dict)  # highest precedence
    lock_file: Path | None = None
    # The project's declared runners (runner:NAME); None when its pyproject.toml is unknown:
    # then found above the budget file at check time.
    runners: Runners | None = None
    # --tflite-node-data: the per-op quantization error is measured whether or not a check
    # failed, and kept in the entry (``layers``) for the overlays and the baseline.
    node_data: bool = False

    def runtime(self) -> RuntimeSettings:
        """The run-wide runtime settings, before any budget file adds its own: a conversion's
        sanity run and a baseline's fingerprint (budget files may set their own threads, but
        the manifest is one per directory)."""
        return resolve_runtime(command_line=self.command_line, ini=self.ini)

    def context(self, no_baseline: str = NO_BASELINE) -> Context:
        return Context(self.runtime_off, self.require_delegates, self.without_data, self.strict,
                       no_baseline)


def runtime_settings(budget: Budget, variant: Variant, settings: Settings) -> RuntimeSettings:
    """command line > the variant's [runtime] > [defaults.runtime] > ini > built-in defaults."""
    return resolve_runtime(command_line=settings.command_line, variant=variant.runtime,
                           defaults=budget.spec.defaults.runtime, ini=settings.ini)


def run(model: TFLiteModel, budget: Budget, variant_name: str, settings: Settings, *,
        test: str = "", evaluation: Evaluation | None = None, sample: Any = None) -> Entry:
    """Measure ``model`` as the variant's budgets ask, and judge every key."""
    variant = budget.variant(variant_name)
    measurement = measure(model, budget, variant, settings, evaluation=evaluation, sample=sample)
    saved, no_baseline, warnings = _baseline_of(budget, variant_name, settings)
    if saved is not None:
        _compare_latency(model, saved, budget, variant, measurement, settings)
        _recount_baseline(saved, budget, variant, measurement, settings, sample)
        keep_baseline_costs(measurement, saved.entry.measurement)
    checks = judge(measurement, variant, budget.spec.regression, settings.context(no_baseline),
                   baseline=saved.entry.measurement if saved is not None else None)
    # budget_path: the ratchet (--tflite-update-budgets) rewrites the file each entry was
    # judged against; model_path: a saved baseline keeps the model itself.
    return Entry(test, budget.model, variant_name, model.recipe, measurement, checks, warnings,
                 model_path=str(model.path), budget_path=str(budget.path),
                 graph_diff=graph_diff(model, saved, measurement) if saved is not None else None)


def graph_diff(model: TFLiteModel, saved: BaselineEntry, measurement: Measurement,
               ) -> GraphDiff:
    """What changed in the graph against the baseline's model: read from both flatbuffers,
    with placement and per-op error from both measurements. It explains; it judges nothing."""
    from .graph_diff import against_baseline

    return against_baseline(saved.tflite, saved.entry.measurement, model.view, measurement)


def _baseline_of(budget: Budget, name: str,
                 settings: Settings) -> tuple[BaselineEntry | None, str, list[str]]:
    """The saved entry of this variant (or why there is none) and warnings about it."""
    if settings.baseline is None:
        return None, NO_BASELINE, []
    from .environment import differences, environment_fingerprint

    saved = settings.baseline.lookup(budget.model, name)
    if saved is None:
        return None, (f"not compared: the baseline {settings.baseline.directory} has no "
                      f"{budget.model} [{name}] (a new model variant?)"), []
    changed = differences(settings.baseline.environment,
                          environment_fingerprint(settings.runtime().threads))
    warnings = [f"the baseline was measured elsewhere: {'; '.join(changed)}"] if changed else []
    return saved, NO_BASELINE, warnings


def _compare_latency(model: TFLiteModel, saved: BaselineEntry, budget: Budget, variant: Variant,
                     measurement: Measurement, settings: Settings) -> None:
    """Time the candidate against the baseline's model, pair by pair in one worker, for every
    delegate measured here: what ``regression.latency`` is judged on."""
    regression = tolerances(budget.spec.regression, variant.regression)
    if regression is None or regression.latency is None or saved.tflite is None:
        return
    from .measure.memory_cap import limit
    from .measure.paired_latency import compare_latency

    runtime = runtime_settings(budget, variant, settings)
    for name, found in measurement.delegates.items():
        if found.status != "ok" or name.startswith(RUNNER):  # a runner times elsewhere
            continue
        try:
            with limit(runtime.max_memory):
                found.comparison = compare_latency(model.path, saved.tflite, name, runtime,
                                                   regression.latency.fraction,
                                                   lock_file=settings.lock_file)
        except TFLiteError as exc:
            found.comparison_error = str(exc)


def measure(model: TFLiteModel, budget: Budget, variant: Variant, settings: Settings, *,
            evaluation: Evaluation | None = None, sample: Any = None) -> Measurement:
    from .measure.memory_cap import limit, over_cap
    from .measure.static import measure_static

    runtime = runtime_settings(budget, variant, settings)
    measurement = measure_static(model)
    with limit(runtime.max_memory) as cap:
        refused = over_cap(str(model.path), measurement.planned_arena_bytes, cap)
        if refused is None:
            measurement = _measure_running(model, variant, settings, runtime, measurement,
                                           evaluation, sample, budget.path)
            if settings.node_data and measurement.layers is None and not measurement.layers_note:
                measurement.layers_note = ("no evaluation data: pass eval_data= and reference= "
                                           "to check() for the quantization error per op")
            _count_instructions(model, budget, variant, settings, runtime, measurement, sample)
            return measurement
    # The cap is this machine's: a runner (a phone, a device farm) still measures the model.
    measurement.refused = refused
    wanted = _delegates_wanted(variant, settings, runtime)
    measurement.delegates = {name: DelegateResult("error", refused)
                             for name in wanted if not name.startswith(RUNNER)}
    measurement.delegates.update(_run_runners(model, [n for n in wanted if n.startswith(RUNNER)],
                                              settings, runtime, budget.path))
    return measurement


def _delegates_wanted(variant: Variant, settings: Settings, runtime: RuntimeSettings) -> list[str]:
    wanted = list(dict.fromkeys([*runtime.delegates, *delegates_named(variant)]))
    if settings.delegate_filter is not None:
        wanted = [d for d in wanted if d in settings.delegate_filter]
    return wanted if not settings.runtime_off else []


def _measure_running(model: TFLiteModel, variant: Variant, settings: Settings,
                     runtime: RuntimeSettings, measurement: Measurement,
                     evaluation: Evaluation | None, sample: Any,
                     budget_path: Path) -> Measurement:
    """What ``measure`` adds to the static figures by running the model, under the memory cap."""
    if variant.sparsity is not None and variant.sparsity.pattern is not None:
        from .measure.sparsity import check_pattern

        n, m = (int(part) for part in variant.sparsity.pattern.split(":"))
        measurement.sparsity_pattern = check_pattern(model.view, n, m)
    if evaluation is not None and evaluation.data is not None:
        evaluate(model, variant, measurement, evaluation, timeout=runtime.timeout,
                 lock_file=settings.lock_file, node_data=settings.node_data)
    wanted = _delegates_wanted(variant, settings, runtime)
    runners = [name for name in wanted if name.startswith(RUNNER)]
    wanted = [name for name in wanted if name not in runners]
    if wanted:
        from .measure.runtime import measure_delegates

        measurement.delegates = measure_delegates(model.path, wanted, runtime,
                                                  lock_file=settings.lock_file, sample=sample)
    measurement.delegates.update(_run_runners(model, runners, settings, runtime, budget_path))
    return measurement


def cost_delegates(budget: Budget, variant: Variant, settings: Settings,
                   runtime: RuntimeSettings) -> list[str]:
    """The delegates counted under valgrind: each one a ``cost.<d>.*`` key names, and, when
    ``[regression]`` has ``instructions`` or ``estimated_cycles``, every measured delegate that
    can be counted (xnnpack when none is)."""
    from .measure.cost import COUNTABLE

    if settings.runtime_off:
        return []
    named = list(getattr(variant, "cost", None) or {})
    regression = tolerances(budget.spec.regression, variant.regression)
    if any(getattr(regression, key, None) is not None
           for key in ("instructions", "estimated_cycles")):
        measured = [d for d in _delegates_wanted(variant, settings, runtime) if d in COUNTABLE]
        named += measured or ["xnnpack"]
    wanted = list(dict.fromkeys(named))
    if settings.delegate_filter is not None:
        wanted = [d for d in wanted if d in settings.delegate_filter]
    return wanted


def _count_instructions(model: TFLiteModel, budget: Budget, variant: Variant, settings: Settings,
                        runtime: RuntimeSettings, measurement: Measurement, sample: Any) -> None:
    """``delegates[d].cost`` for each of ``cost_delegates``, or ``cost_error`` saying why not
    (valgrind missing: ``CostUnavailable.is_missing``; a crash or a missing symbol otherwise).
    Each count holds the timing lock, as a latency measurement does."""
    wanted = cost_delegates(budget, variant, settings, runtime)
    if not wanted:
        return
    from .measure.cost import measure_costs

    counted = measure_costs(model.path, wanted, runtime, lock_file=settings.lock_file,
                            sample=sample)
    for name, cost in counted.items():
        found = measurement.delegates.get(name)
        if found is None:  # counted only: no latency or memory was asked of it
            found = measurement.delegates[name] = DelegateResult("ok", threads=1)
        if isinstance(cost, str):
            found.cost_error = cost
        else:
            found.cost = cost


def _recount_baseline(saved: BaselineEntry, budget: Budget, variant: Variant,
                      measurement: Measurement, settings: Settings, sample: Any) -> None:
    """Count the baseline's .tflite again in this job, for each delegate counted here whose
    stored baseline count is missing or was counted differently (another valgrind, LiteRT,
    glibc, ISA, cache or input): ``baseline_cost``, which ``[regression]`` then compares."""
    regression = tolerances(budget.spec.regression, variant.regression)
    if saved.tflite is None or not any(getattr(regression, key, None) is not None
                                       for key in ("instructions", "estimated_cycles")):
        return
    stale = []
    for name, found in measurement.delegates.items():
        stored = saved.entry.measurement.delegates.get(name)
        base = stored.cost if stored is not None else None
        if found.cost is not None and (base is None or base.fingerprint != found.cost.fingerprint):
            stale.append(name)
    if not stale:
        return
    from .measure.cost import measure_costs

    runtime = runtime_settings(budget, variant, settings)
    for name, cost in measure_costs(saved.tflite, stale, runtime, lock_file=settings.lock_file,
                                    sample=sample).items():
        if not isinstance(cost, str):  # a failed re-count leaves the check's skip saying why
            measurement.delegates[name].baseline_cost = cost


def _run_runners(model: TFLiteModel, runners: list[str], settings: Settings,
                 runtime: RuntimeSettings, budget_path: Path) -> dict[str, DelegateResult]:
    """The declared runners the variant names (``runner:NAME``), each measured by its command."""
    if not runners:
        return {}
    from . import runner_config
    from .measure.runners import measure_runners

    declared = settings.runners if settings.runners is not None else runner_config.load(
        runner_config.find_pyproject(budget_path.resolve().parent))
    return measure_runners(model.path, runners, declared, runtime, lock_file=settings.lock_file)


def explains_quality(entry: Entry) -> bool:
    """Whether a failed accuracy or fidelity budget makes the per-layer error worth showing."""
    return any(c.verdict == "fail" and c.metric.startswith(("accuracy", "fidelity"))
               for c in entry.checks)


def unmeasured_entry(model: Any, budget: Budget, variant_name: str, settings: Settings,
                     test: str, reason: str) -> Entry:
    """The entry of a model that could not be measured at all (unreadable, corrupt): every key
    of the variant is an error with ``reason``, so the reports still hold one row per test.

    Its size and gzip size are the file's own when it can be read; every other figure is a
    placeholder that no check is judged on.
    """
    from .measure.static import gzip_size

    content = b""
    path = model.path if isinstance(model, TFLiteModel) else model
    if isinstance(model, (bytes, bytearray)):
        content = bytes(model)
    elif isinstance(path, (str, Path)):
        try:
            content = Path(path).read_bytes()
        except OSError:
            content = b""
    measurement = Measurement(
        size_bytes=len(content), gzip_bytes=gzip_size(content) if content else 0, ops={},
        subgraphs=[], planned_arena_bytes=0, inputs=[], outputs=[], sparsity=0.0,
        sparsity_layers=[], refused=reason)
    variant = budget.variant(variant_name)
    checks = [replace(c, measured=None, verdict="error", reason=reason, baseline=None, delta=None)
              for c in judge(measurement, variant, budget.spec.regression, settings.context())]
    return Entry(test, budget.model, variant_name, str(getattr(model, "recipe", "") or "tflite"),
                 measurement, checks, [],
                 model_path=str(path) if isinstance(path, (str, Path)) else "",
                 budget_path=str(budget.path))


def as_model(value: Any, variant: str | None = None, *, unsafe_source: bool = False,
             ) -> TFLiteModel:
    """What ``check`` accepts besides a TFLiteModel: a ``.tflite`` path or bytes.
    ``unsafe_source``: the budget's, for a ``.keras``/``.h5`` that runs code when loaded."""
    if isinstance(value, TFLiteModel):
        return value
    from .conversion.recipes import convert

    return convert(value, variant=variant, unsafe_source=unsafe_source)
