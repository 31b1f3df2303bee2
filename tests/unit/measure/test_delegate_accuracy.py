"""Accuracy and fidelity per delegate (accuracy.delegates, fidelity.delegates) and between two
delegates (fidelity.cross): the candidate evaluated under each named delegate in the worker,
with no fallback, and checks named by the delegate.

The model is one FULLY_CONNECTED layer over 2048 float inputs, built by hand: XNNPACK takes its
one node and sums in its own order, the reference kernels take none and sum in theirs, so the
two runs use different kernels and their outputs differ by a few 1e-5.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite import engine
from pytest_tflite.budget import load
from pytest_tflite.errors import BudgetFileError
from pytest_tflite.measure.metrics import fidelity
from pytest_tflite.results import CrossFidelity, Entry, EvaluationRun
from pytest_tflite.verdicts import Context, judge
from tests.helpers.models import Op, Subgraph, Tensor, build_model

INPUTS, CLASSES, SAMPLES = 2048, 10, 64
NO_RUNTIME = engine.Settings(runtime_off="runtime not needed here")
LOADER_WORDS = ("Vulkan", "WebGPU", "adapter", "OpenCL", "not supported yet")


def fc_model(seed: int = 0) -> tuple[bytes, Any, Any]:
    """(model, x, labels): y = x @ w.T with a dynamic batch; labels are the float argmax."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(CLASSES, INPUTS)).astype("float32")
    content = build_model([Subgraph(
        tensors=[Tensor("x", [1, INPUTS], shape_signature=[-1, INPUTS]),
                 Tensor("w", [CLASSES, INPUTS], data=weights),
                 Tensor("b", [CLASSES], data=np.zeros(CLASSES, "float32")),
                 Tensor("y", [1, CLASSES], shape_signature=[-1, CLASSES])],
        ops=[Op("FULLY_CONNECTED", [0, 1, 2], [3])], inputs=[0], outputs=[3])])
    x = rng.normal(size=(SAMPLES, INPUTS)).astype("float32")
    labels = (x.astype("float64") @ weights.T.astype("float64")).argmax(axis=1)
    return content, x, labels


@pytest.fixture(scope="module")
def fc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    content, x, labels = fc_model()
    path = tmp_path_factory.mktemp("fc") / "fc.tflite"
    path.write_bytes(content)
    return engine.as_model(path), x, labels


def _budget(folder: Path, text: str, name: str = "fc.toml") -> Any:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return load(path)


def _checks(entry: Entry) -> dict[str, Any]:
    return {c.metric: c for c in entry.checks}


def test_accuracy_is_measured_and_named_per_delegate(fc: Any, tmp_path: Path) -> None:
    model, x, labels = fc
    budget = _budget(tmp_path, """
        [variants.v]
        accuracy = { min = 0.9, delegates = ["xnnpack", "reference"] }
    """)
    entry = engine.run(model, budget, "v", NO_RUNTIME, evaluation=engine.Evaluation((x, labels)))
    checks = _checks(entry)
    assert list(checks) == ["accuracy.xnnpack.min", "accuracy.reference.min"]
    assert all(c.verdict == "pass" and c.measured == 1.0 for c in checks.values()), checks
    found = entry.measurement
    assert set(found.accuracy_by_delegate) == {"xnnpack", "reference"}
    assert found.accuracy is not None and found.accuracy.candidate == 1.0  # the default, kept
    # Different kernels: XNNPACK took the one node, the reference kernels none.
    runs = found.evaluation_runs
    assert runs["xnnpack"] == EvaluationRun("ok", "", 1, 1, True)
    assert runs["reference"] == EvaluationRun("ok", "", 0, 1, True)
    # The JSON keys, and back.
    document = json.loads(json.dumps(entry.to_json()))
    assert document["accuracy_by_delegate"]["reference"]["candidate"] == 1.0
    assert document["evaluation_runs"]["xnnpack"]["delegated_nodes"] == 1
    assert Entry.from_json(document).measurement == found


def test_fidelity_per_delegate_against_the_reference(fc: Any, tmp_path: Path) -> None:
    model, x, _ = fc
    budget = _budget(tmp_path, """
        [variants.v]
        fidelity = { min_cosine = 0.9999, delegates = ["builtin", "reference"] }
    """)
    # The candidate itself as its float reference: every delegate agrees to ~1e-5 with it.
    entry = engine.run(model, budget, "v", NO_RUNTIME,
                       evaluation=engine.Evaluation(x, model.path))
    checks = _checks(entry)
    assert list(checks) == ["fidelity.builtin.min_cosine", "fidelity.reference.min_cosine"]
    assert all(c.verdict == "pass" for c in checks.values()), checks
    document = json.loads(json.dumps(entry.to_json()))
    assert set(document["fidelity_by_delegate"]) == {"builtin", "reference"}
    assert Entry.from_json(document).measurement == entry.measurement


def test_cross_fidelity_passes_a_true_bound_and_fails_a_tight_one(fc: Any,
                                                                  tmp_path: Path) -> None:
    model, x, _ = fc
    budget = _budget(tmp_path, """
        [variants.true.fidelity.cross]
        delegate = "xnnpack"
        against = "reference"
        min_cosine = 0.9999
        min_top1_agreement = 1.0
        max_abs_error = 0.01
        min_snr_db = 80
        [variants.tight]
        fidelity.cross = { max_abs_error = 1e-7 }
    """)
    evaluation = engine.Evaluation(x)  # no labels, no reference model
    entry = engine.run(model, budget, "true", NO_RUNTIME, evaluation=evaluation)
    checks = _checks(entry)
    assert sorted(checks) == sorted(f"fidelity.cross.{key}" for key in (
        "min_cosine", "min_top1_agreement", "max_abs_error", "min_snr_db"))
    assert all(c.verdict == "pass" for c in checks.values()), checks
    cross = entry.measurement.fidelity_cross
    assert cross is not None and (cross.delegate, cross.against) == ("xnnpack", "reference")
    assert 1 - 1e-9 < cross.cosine <= 1 + 1e-12 and cross.top1_agreement == 1.0
    assert 0 < cross.max_abs_error < 1e-3  # different kernels: close, never identical
    runs = entry.measurement.evaluation_runs
    assert runs["xnnpack"].delegated_nodes == 1 and runs["reference"].delegated_nodes == 0
    # The same two runs against a bound tighter than the kernels agree: a failure.
    tight = _checks(engine.run(model, budget, "tight", NO_RUNTIME, evaluation=evaluation))
    check = tight["fidelity.cross.max_abs_error"]
    assert check.verdict == "fail" and check.measured is not None and check.measured > 1e-7
    assert Entry.from_json(json.loads(json.dumps(entry.to_json()))).measurement == \
        entry.measurement


def test_cross_fidelity_judges_a_perturbed_delegate(tmp_path: Path) -> None:
    # A delegate that computes differently from the kernels it replaces, crafted: 10% noise.
    rng = np.random.default_rng(3)
    against = rng.normal(size=(100, 10))
    perturbed = against + 0.1 * rng.normal(size=against.shape)  # cosine about 0.995
    budget = _budget(tmp_path, """
        [variants.v]
        fidelity.cross = { delegate = "gpu", against = "xnnpack", min_cosine = 0.999 }
    """)

    def verdict(outputs: Any) -> str:
        measurement = engine.unmeasured_entry(b"", budget, "v", NO_RUNTIME, "", "").measurement
        measurement.refused = None
        measurement.fidelity_cross = CrossFidelity("gpu", "xnnpack", samples=100,
                                                   **fidelity(outputs, against))
        check, = judge(measurement, budget.variant("v"))
        assert check.metric == "fidelity.cross.min_cosine"
        return check.verdict

    assert verdict(against + 1e-6) == "pass"
    assert verdict(perturbed) == "fail"


def test_a_missing_delegate_skips_with_its_reason_and_fails_when_required(
        fc: Any, tmp_path: Path) -> None:
    model, x, labels = fc
    budget = _budget(tmp_path, """
        [variants.v]
        accuracy = { min = 0.9, delegates = ["gpu", "reference"] }
        fidelity.cross = { delegate = "gpu", min_cosine = 0.99 }
    """)
    entry = engine.run(model, budget, "v", NO_RUNTIME, evaluation=engine.Evaluation((x, labels)))
    checks = _checks(entry)
    for metric in ("accuracy.gpu.min", "fidelity.cross.min_cosine"):
        assert checks[metric].verdict == "skip", checks[metric]
        assert checks[metric].reason.startswith("gpu unavailable on this machine: ")
        assert any(word in checks[metric].reason for word in LOADER_WORDS), checks[metric]
    assert checks["accuracy.reference.min"].verdict == "pass"
    assert entry.measurement.evaluation_runs["gpu"].status == "unavailable"
    # --tflite-require-delegates: the same measurement fails.
    required = judge(entry.measurement, budget.variant("v"), context=Context(require_delegates=True))
    assert {c.metric: c.verdict for c in required} == {
        "accuracy.gpu.min": "fail", "accuracy.reference.min": "pass",
        "fidelity.cross.min_cosine": "fail"}


PLUGIN_TEST = """
    import numpy as np
    import pytest

    @pytest.mark.tflite_budget("fc")
    def test_fc(tflite_budget):
        data = np.load("data.npz")
        tflite_budget.check("fc.tflite", eval_data=(data["x"], data["y"]), variant="v")
"""


@pytest.mark.parametrize("require", [False, True])
def test_through_the_plugin(project: Any, require: bool) -> None:
    content, x, labels = fc_model()
    p = project({"fc": """
        [variants.v]
        accuracy = { min = 0.9, delegates = ["reference", "gpu"] }
    """}, test_fc=PLUGIN_TEST)
    (p.path / "fc.tflite").write_bytes(content)
    np.savez(p.path / "data.npz", x=x, y=labels)
    args = ["--tflite-require-delegates"] if require else []
    result = p.runpytest("-p", "no:randomly", "--tflite-no-runtime", "--tflite-report=r.json",
                         *args)
    entry, = json.loads((p.path / "r.json").read_text())["entries"]
    checks = {c["metric"]: c for c in entry["checks"]}
    assert checks["accuracy.reference.min"]["verdict"] == "pass"
    assert checks["accuracy.gpu.min"]["verdict"] == ("fail" if require else "skip")
    assert "gpu unavailable on this machine" in checks["accuracy.gpu.min"]["reason"]
    if require:
        result.assert_outcomes(failed=1)
    else:
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*DelegateSkippedWarning*gpu accuracy/fidelity skipped*"])


@pytest.mark.parametrize(("text", "says"), [
    ('accuracy = { min = 0.9, delegates = ["xnnpak"] }',
     "unknown delegate 'xnnpak' (did you mean 'xnnpack'?)"),
    ('accuracy = { min = 0.9, delegates = ["runner:farm"] }', "a runner reports latency only"),
    ('accuracy = { min = 0.9, delegates = [] }', "at least 1 item"),
    ('fidelity.cross = { delegate = "reference", against = "reference", min_cosine = 0.9 }',
     "fidelity.cross compares two delegates"),
    ('fidelity.cross = { against = "xnnpack", min_cosine = 0.9 }',
     "fidelity.cross compares two delegates"),
    ('fidelity.cross = { delegate = "builtin" }', "fidelity.cross needs a bound"),
    ('fidelity = { delegates = ["reference"], cross = { min_cosine = 0.9 } }',
     "fidelity.delegates applies to"),
])
def test_load_time_refusals(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(BudgetFileError) as refused:
        _budget(tmp_path, f"[variants.v]\n{text}\n")
    assert says in str(refused.value), refused.value


def test_the_default_stays_one_run_with_todays_names(fc: Any, tmp_path: Path) -> None:
    model, x, labels = fc
    budget = _budget(tmp_path, '[variants.v]\naccuracy = { min = 0.9 }\n')
    entry = engine.run(model, budget, "v", NO_RUNTIME, evaluation=engine.Evaluation((x, labels)))
    assert [c.metric for c in entry.checks] == ["accuracy.min"]
    assert entry.measurement.evaluation_runs == {} and entry.measurement.accuracy_by_delegate == {}
