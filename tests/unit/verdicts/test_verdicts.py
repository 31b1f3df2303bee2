"""Verdicts that mean something: budget files that would check nothing are refused, checks
with nothing measured skip (never pass), and the rules of forbid_fallback, patterns and custom
metrics hold. Each test here failed on the code before these rules existed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite import cli, engine
from pytest_tflite.budget import load
from pytest_tflite.errors import BudgetFileError
from pytest_tflite.model import TFLiteModel
from pytest_tflite.results import DelegateResult, Entry, Latency, Measurement, overall
from pytest_tflite.verdicts import Context, judge
from tests.helpers.models import chain_model

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "budget.toml"
    path.write_text(textwrap.dedent(text))
    return load(path)


def _refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(BudgetFileError) as error:
        _load(tmp_path, text)
    return str(error.value)


# --- budget files that would check nothing, or could not be judged -------------------------------


@pytest.mark.parametrize(("text", "says"), [
    ("[variants.x]\n", "[variants.x] has no budgets"),
    ('[variants.x]\nruntime = { threads = 1 }\n', "[variants.x] has no budgets"),
    ("[variants.x]\nsize = {}\n", "variants.x.size: empty budget table"),
    ("[variants.x.latency.xnnpack]\n", "variants.x.latency.xnnpack: empty budget table"),
    ("[variants.x.memory]\n", "variants.x.memory: empty budget table"),
    ("[variants.x.memory.builtin]\n", "variants.x.memory.builtin: empty budget table"),
    ("[variants.x.delegation.xnnpack]\n", "variants.x.delegation.xnnpack: empty budget table"),
    ("[variants.x]\nfidelity = {}\n", "variants.x.fidelity: empty budget table"),
    ("[variants.x]\nsparsity = { layers = {} }\n", "variants.x.sparsity: empty budget table"),
    ('[variants.x]\naccuracy = { metric = "top1" }\n', "needs a bound: min, max or max_drop"),
    ("[variants.x]\nsize = { max = 10 }\n[regression]\n", "regression: empty budget table"),
])
def test_a_table_that_checks_nothing_is_refused(tmp_path: Path, text: str, says: str) -> None:
    message = _refused(tmp_path, text)
    assert says in message and str(tmp_path / "budget.toml") in message


def test_a_variant_with_only_regression_tolerances_is_allowed(tmp_path: Path) -> None:
    budget = _load(tmp_path, '[variants.x]\n[regression]\nsize = "1%"\n')
    checks = judge(_measurement(), budget.variant("x"), budget.spec.regression)
    assert [(c.metric, c.verdict) for c in checks] == [("regression.size", "skip")]
    assert overall(checks) == "skip"


@pytest.mark.parametrize(("text", "says"), [
    ('[variants.x.memory.gpu]\narena = "1 MiB"\n', "memory.gpu.arena: gpu and npu run as a"),
    ('[variants.x.memory.npu]\npeak_rss = "1 MiB"\n', "memory.npu.peak_rss: gpu and npu"),
    ("[variants.x.delegation.gpu]\nmax_partitions = 1\n", "delegation.gpu.max_partitions: gpu"),
    ('[variants.x.delegation.npu]\nforbid_fallback = ["ADD"]\n', "delegation.npu.forbid_fallback"),
    ("[variants.x.delegation.gpu]\nmin_fraction = 0.5\n", "the only fraction it can judge is 1.0"),
    ("[variants.x.delegation.builtin]\nmin_fraction = 0.5\n", "delegate nothing"),
    ("[variants.x.delegation.reference]\nmax_partitions = 1\n", "delegate nothing"),
])
def test_keys_no_delegate_can_measure_are_refused_with_the_reason(tmp_path: Path, text: str,
                                                                  says: str) -> None:
    assert says in _refused(tmp_path, text)


def test_gpu_full_acceleration_is_a_budget(tmp_path: Path) -> None:
    budget = _load(tmp_path, "[variants.x.delegation.gpu]\nmin_fraction = 1.0\n")
    for accelerated, verdict in ((True, "pass"), (False, "fail")):
        measurement = _measurement(gpu=DelegateResult("ok", fully_accelerated=accelerated))
        (check,) = judge(measurement, budget.variant("x"))
        assert (check.metric, check.verdict) == ("delegation.gpu.min_fraction", verdict)


def test_the_runtime_result_keeps_full_acceleration() -> None:
    # The worker's answer for gpu/npu used to be dropped by a key filter on the way out.
    found = DelegateResult.from_json({"status": "ok", "fully_accelerated": True, "reason": None,
                                      "latency_ms": {"median": 1, "p90": 1, "p99": 1, "min": 1,
                                                     "mean": 1, "std": 0, "n": 3}})
    assert found.fully_accelerated is True and found.reason == ""
    assert found.latency_ms == Latency(1, 1, 1, 1, 1, 0, 3)


@pytest.mark.parametrize(("name", "says"), [
    ("CONV2D", "'CONV2D' is not a TFLite builtin op; did you mean 'CONV_2D'?"),
    ("conv_2d", "did you mean 'CONV_2D'?"),
    ("CUSTOM:", "is not a TFLite builtin op"),
])
def test_forbid_fallback_names_are_builtin_ops(tmp_path: Path, name: str, says: str) -> None:
    message = _refused(tmp_path, f'[variants.x.delegation.xnnpack]\nforbid_fallback = ["{name}"]\n')
    assert "variants.x.delegation.xnnpack.forbid_fallback" in message and says in message


@pytest.mark.parametrize(("forbidden", "verdict", "hit"), [
    (["CUSTOM"], "fail", "MyPostProcess"),
    (["CUSTOM:MyPostProcess"], "fail", "MyPostProcess"),
    (["CUSTOM:Other"], "pass", ""),
    (["SHAPE"], "fail", "SHAPE"),
    (["CONV_2D"], "pass", ""),
])
def test_forbid_fallback_matches_custom_ops_by_their_own_name(
        tmp_path: Path, forbidden: list[str], verdict: str, hit: str) -> None:
    budget = _load(tmp_path, f"[variants.x.delegation.xnnpack]\n"
                             f"forbid_fallback = {json.dumps(forbidden)}\n")
    # The runtime names a custom op by its own name, not "CUSTOM".
    xnnpack = DelegateResult("ok", delegated_nodes=3, total_nodes=6, partitions=1,
                             fallback_ops={"MyPostProcess": 1, "SHAPE": 2})
    (check,) = judge(_measurement(xnnpack=xnnpack), budget.variant("x"))
    assert check.verdict == verdict
    assert (hit in check.reason) if hit else check.reason == ""


@pytest.mark.parametrize(("text", "says"), [
    ('metric = "custom"\nmax_drop = 0.1', 'needs direction = "higher"'),
    ('metric = "top1"\ndirection = "lower"\nmin = 0.5', "direction applies only to metric"),
    ('metric = "custom"\ndirection = "lower"\nmin = 0.5', "lower-is-better: use max, not min"),
    ('metric = "custom"\ndirection = "higher"\nmax = 0.5', "higher-is-better: use min, not max"),
    ('metric = "custom"\ndirection = "up"\nmax_drop = 0.1', "'higher' or 'lower'"),
])
def test_a_custom_metric_states_its_direction(tmp_path: Path, text: str, says: str) -> None:
    assert says in _refused(tmp_path, f"[variants.x.accuracy]\n{text}\n")


def test_a_custom_metric_is_judged_in_its_stated_direction(tmp_path: Path) -> None:
    # It used to guess the direction from whether max was set: with only max_drop, a
    # lower-is-better metric that got worse read as an improvement.
    import numpy as np

    from pytest_tflite import convert
    from tests.helpers.models import keras3_mlp

    candidate = convert(keras3_mlp(seed=0), "float32", output_dir=tmp_path)
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    verdicts = {}
    for direction in ("higher", "lower"):
        budget = _load(tmp_path, f'[variants.x.accuracy]\nmetric = "custom"\n'
                                 f'direction = "{direction}"\nmax_drop = 0\n')
        evaluation = engine.Evaluation((x, np.zeros(16)), keras3_mlp(seed=1),
                                       metric=lambda y, p: float(np.abs(p).mean()))
        entry = engine.run(candidate, budget, "x", engine.Settings(), evaluation=evaluation)
        found = entry.measurement.accuracy
        assert found is not None and found.reference is not None
        worse = found.candidate < found.reference if direction == "higher" \
            else found.candidate > found.reference
        verdicts[direction] = entry.verdict
        assert entry.verdict == ("fail" if worse else "pass"), (direction, found)
    assert sorted(verdicts.values()) == ["fail", "pass"]


def test_runtime_timeout_needs_a_unit(tmp_path: Path) -> None:
    message = _refused(tmp_path, '[variants.x]\nsize = { max = 10 }\nruntime = { timeout = 300 }\n')
    assert 'variants.x.runtime.timeout: a duration needs a unit: write "300 s"' in message
    budget = _load(tmp_path, '[variants.x]\nsize = { max = 10 }\nruntime = { timeout = "300 s" }\n')
    assert budget.variant("x").runtime.timeout == 300_000  # milliseconds, like every time


# --- patterns ---------------------------------------------------------------------------------------


def test_a_pattern_over_zero_weights_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "relu.tflite"
    path.write_bytes(chain_model([4, 4]))  # one RELU: no weights at all
    budget = _load(tmp_path, '[variants.x]\nsparsity = { pattern = "2:4" }\n')
    entry = engine.run(TFLiteModel.from_path(path), budget, "x", engine.Settings())
    (check,) = entry.checks
    assert check.verdict == "error" and "no weights to check 2:4 on" in check.reason
    assert entry.verdict == "error"


# --- nothing measured is a skip, never a pass --------------------------------------------------------


def test_all_skipped_checks_skip_the_entry() -> None:
    entry = Entry("t", "m", "v", "float32", _measurement(), [])
    assert entry.verdict == "skip"


BUDGETS = {
    "lat": """
        [defaults.runtime]
        warmup = { min_runs = 1, min_seconds = 0 }
        timing = { min_runs = 3, min_seconds = 0 }

        [variants.float32.latency.builtin]
        median = "10 s"

        [variants.sized]
        size = { max = "1 MiB" }

        [variants.tight]
        size = { max = 10 }
    """,
}


def test_a_check_with_every_budget_skipped_is_a_skipped_test(project: Any) -> None:
    p = project(BUDGETS, test_skip="""
        import pytest

        @pytest.mark.tflite_budget("lat")
        def test_only_latency(tflite_convert, tflite_budget, mlp):
            tflite_budget.check(tflite_convert(mlp))

        @pytest.mark.tflite_budget("lat")
        def test_latency_then_size(tflite_convert, tflite_budget, mlp):
            tflite_budget.check(tflite_convert(mlp))
            tflite_budget.check(tflite_convert(mlp, variant="sized"))

        @pytest.mark.tflite_budget("lat")
        def test_latency_then_over_size(tflite_convert, tflite_budget, mlp):
            tflite_budget.check(tflite_convert(mlp))
            tflite_budget.check(tflite_convert(mlp, variant="tight"))
    """)
    result = p.runpytest("-p", "no:randomly", "--tflite-no-runtime", "-rsf")
    result.assert_outcomes(passed=1, skipped=1, failed=1)
    result.stdout.fnmatch_lines([
        "SKIPPED*test_skip.py:*no budget was checked: latency.builtin.median: runtime "
        "measurement off (--tflite-no-runtime)*",
        "*FAILED*test_latency_then_over_size*",
    ])
    # The same tests measure for real without the flag.
    result = p.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)


def test_a_filtered_out_delegate_skips_with_the_reason(project: Any) -> None:
    p = project(BUDGETS, test_filter="""
        import pytest

        @pytest.mark.tflite_budget("lat")
        def test_only_latency(tflite_convert, tflite_budget, mlp):
            tflite_budget.check(tflite_convert(mlp))
    """)
    result = p.runpytest("-p", "no:randomly", "--tflite-delegates=xnnpack", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*builtin not measured in this run (--tflite-delegates)*"])


# --- the CLI is the same engine ---------------------------------------------------------------------


def test_cli_check_measures_the_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_tflite import convert
    from tests.helpers.models import keras3_mlp

    model = convert(keras3_mlp(), "float32", output_dir=tmp_path)
    budget = tmp_path / "b.toml"
    budget.write_text('[variants.v]\nsparsity = { pattern = "2:4" }\n')
    # Dense random weights break 2:4 (it used to say "not measured" and exit 2).
    assert cli.main(["check", str(model.path), "--budget", str(budget), "--json"]) == 1
    (check,) = json.loads(capsys.readouterr().out)["checks"]
    assert check["metric"] == "sparsity.pattern" and check["verdict"] == "fail"
    assert check["measured"] > 0 and "groups break 2:4" in check["reason"]


def test_cli_check_reads_the_ini_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "models" / "relu.tflite"
    path.parent.mkdir()
    path.write_bytes(chain_model([64, 64]))
    (tmp_path / "budgets").mkdir()
    budget = tmp_path / "budgets" / "relu.toml"
    budget.write_text('[defaults.runtime]\ntiming = { min_runs = 2, min_seconds = 0 }\n'
                      '[variants.v.latency.builtin]\nmedian = "1 s"\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\ntflite_threads = 2\ntflite_delegates = reference\n")
    assert cli.main(["check", str(path), "--budget", str(budget), "--json"]) == 0
    delegates = json.loads(capsys.readouterr().out)["delegates"]
    assert list(delegates) == ["reference", "builtin"]  # the ini's delegates, then the budget's
    assert {d["threads"] for d in delegates.values()} == {2}
    # The command line beats the ini file, as in pytest.
    assert cli.main(["check", str(path), "--budget", str(budget), "--json", "--threads", "1"]) == 0
    assert {d["threads"] for d in json.loads(capsys.readouterr().out)["delegates"].values()} == {1}


# --- helpers ------------------------------------------------------------------------------------------


def _measurement(**delegates: DelegateResult) -> Measurement:
    return Measurement(size_bytes=100, gzip_bytes=90, ops={}, subgraphs=[], planned_arena_bytes=0,
                       inputs=[], outputs=[], sparsity=0.0, sparsity_layers=[],
                       delegates=dict(delegates), accuracy=None, fidelity=None)


def test_context_defaults_judge_strictly() -> None:
    assert Context().without_data == "error" and not Context().require_delegates


def test_off_linux_peak_rss_is_null_and_its_budget_skips(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    # The worker read /proc unguarded: off Linux every runtime check errored.
    from pytest_tflite.measure.worker import main as worker

    def no_proc(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(2, "No such file or directory", "/proc/self/status")

    monkeypatch.setattr(worker, "open", no_proc, raising=False)
    assert worker._status_kib("VmHWM") is None
    budget = _load(tmp_path, '[variants.x.memory.builtin]\npeak_rss = "8 MiB"\n')
    (check,) = judge(_measurement(builtin=DelegateResult("ok", peak_rss_bytes=None)),
                     budget.variant("x"))
    assert check.verdict == "skip" and "Linux only" in check.reason


def test_one_timeout_reaches_the_evaluation_worker(tmp_path: Path) -> None:
    # The evaluation worker had a fixed 120 s limit that no setting reached.
    import numpy as np

    from pytest_tflite.errors import EvaluationError

    path = tmp_path / "relu.tflite"
    path.write_bytes(chain_model([4, 4]))
    budget = _load(tmp_path, '[variants.x]\nfidelity = { min_cosine = 0.5 }\n'
                             'runtime = { timeout = "1 us" }\n')
    data = np.zeros(4, "float32")  # the 1-D model's axis 0 is its batch
    with pytest.raises(EvaluationError, match=r"timed out after 1e-06 s"):
        engine.run(TFLiteModel.from_path(path), budget, "x", engine.Settings(),
                   evaluation=engine.Evaluation(data, path))


def test_the_timeout_option_reaches_the_conversion_sanity_worker(project: Any) -> None:
    p = project(None, test_sanity="""
        def test_convert(tflite_convert, mlp):
            tflite_convert(mlp)
    """)
    result = p.runpytest("-p", "no:randomly", "--tflite-no-cache", "--tflite-timeout=0.000001")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*timed out after 1e-06 s*"])
