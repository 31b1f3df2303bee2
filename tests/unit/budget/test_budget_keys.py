"""Every leaf of the budget JSON Schema is judged against a measured value, changes the
measurement, or is refused when the file loads: nothing parses and then does nothing.

The walk reads the leaves from ``tflite-budget schema`` itself, so a key added to the schema
without a row in the key registry (``keys.py``, whose ``KEY_KINDS`` it derives) fails here.
Budget leaves are written at 0.5x and 2x the measured value and must get the verdicts their
registry direction says; setting leaves each have an effect test below. Every registry row is
held to the schema, the typed results, the ratchet and the generated key table of
``docs/budget-file.md``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import re
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite import engine, keys, ratchet, results
from pytest_tflite.budget import ACCELERATORS, DELEGATES, json_schema, load, refusal
from pytest_tflite.errors import BudgetFileError
from pytest_tflite.keys import KEY_KINDS, KEYS, NAMES_UNDER
from pytest_tflite.regressions import NO_BASELINE
from pytest_tflite.results import DelegateResult, Measurement
from pytest_tflite.verdicts import Context, judge
from tests.helpers.paths import REPOSITORY

FAST = 'warmup = { min_runs = 1, min_seconds = 0 }\ntiming = { min_runs = 5, min_seconds = 0 }'
INTERPRETER = ("xnnpack", "builtin", "reference")
HIDDEN = "hidden_walk"  # a layer name Keras keeps as given (it is unique in the session)
EXTERNAL = "external:/opt/fake_delegate.so"  # judged from a faked result, like gpu and npu
RUNNER = "runner:farm"  # a declared runner's result, faked from xnnpack's figures
BATCH = 4  # the walk's batch besides 1 (runtime.batch_sizes), judged by per_sample budgets


# --- the schema's leaves ------------------------------------------------------------------------


def schema_leaves() -> list[str]:
    """Key paths of every leaf, ``<variant>``/``<delegate>``/``<layer>``/``<input>`` for names."""
    schema = json.loads(json_schema())
    defs = schema["$defs"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while True:
            if "$ref" in node:
                node = defs[node["$ref"].split("/")[-1]]
            elif "anyOf" in node and any("$ref" in n or n.get("type") == "object"
                                         for n in node["anyOf"]):
                node = next(n for n in node["anyOf"] if "$ref" in n or n.get("type") == "object")
            else:
                return node

    def walk(node: dict[str, Any], path: list[str]) -> Iterator[str]:
        node = resolve(node)
        children = list(node.get("properties", {}).items())
        children += [("<delegate>", child) for child in node.get("patternProperties", {}).values()]
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            children.append((NAMES_UNDER[path[-1]], extra))
        if not children or node.get("type") == "array":
            yield ".".join(path)
            return
        for key, child in children:
            yield from walk(child, [*path, key])

    return sorted(set(walk(schema, [])))


def kind_of(leaf: str) -> str:
    key = re.sub(r"^(variants\.<variant>\.|defaults\.)", "", leaf)
    kinds = [kind for kind, keys in KEY_KINDS.items() if key in keys]
    assert len(kinds) == 1, f"{leaf}: listed as {kinds or 'nothing'} in keys.KEY_KINDS"
    return kinds[0]


def test_every_leaf_has_exactly_one_kind() -> None:
    leaves = schema_leaves()
    assert "variants.<variant>.latency.<delegate>.median" in leaves  # the walk reaches deep
    assert "regression.latency" in leaves and "defaults.runtime.threads" in leaves
    kinds = {leaf: kind_of(leaf) for leaf in leaves}
    listed = {key for keys in KEY_KINDS.values() for key in keys}
    walked = {re.sub(r"^(variants\.<variant>\.|defaults\.)", "", leaf) for leaf in leaves}
    assert listed == walked, "keys.KEY_KINDS lists keys the schema does not have"
    assert set(kinds.values()) == {"budget", "setting", "regression"}


# --- the key registry: each row against the schema, the results, the ratchet and the docs -------

ROOT = REPOSITORY
# A name for each placeholder, to turn a registry path into a check's metric.
CONCRETE = {"<delegate>": "external:/opt/lib.so", "<layer>": "dense", "<input>": "x"}


def _field(owner: Any, name: str, row: str) -> Any:
    """The type of ``owner.name`` (Optional and list unwrapped); fails the row if it lacks it."""
    hints = typing.get_type_hints(owner)
    assert name in hints, f"{row}: {owner.__name__} has no field {name!r}"
    hint = hints[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType, list):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def test_every_registry_row_matches_the_schema_results_ratchet_and_docs() -> None:
    walked = {re.sub(r"^(variants\.<variant>\.|defaults\.)", "", leaf) for leaf in schema_leaves()}
    key_page = (ROOT / "docs" / "budget-file.md").read_text(encoding="utf-8")
    assert len({key.path for key in KEYS}) == len(KEYS), "a path has two rows"
    for key in KEYS:
        assert key.path in walked, f"{key.path}: not a leaf of the JSON Schema"
        # The measured figure: every TYPE.field.field it names exists on the typed results.
        figures = re.findall(r"\b([A-Z]\w+)((?:\.\w+)+)", key.reads)
        assert bool(figures) == (key.kind != "setting"), f"{key.path} reads {key.reads!r}"
        for owner_name, chain in figures:
            owner = getattr(results, owner_name)
            for name in chain.strip(".").split("."):
                owner = _field(owner, name, key.path)
        # The ratchet: a rule that matches the row, found from a check's metric, or a reason.
        metric = key.path
        for placeholder, name in CONCRETE.items():
            metric = metric.replace(placeholder, name)
        rule, _ = ratchet.rule_for(metric)
        if key.kind == "budget" and key.ratchet is not None:
            assert rule == ratchet.Rule(key.direction, key.ratchet, key.timing), key.path  # type: ignore[arg-type]
        else:
            assert rule is None and key.left_alone, f"{key.path}: moves, or never says why not"
            assert (key.path in ratchet.LEFT_ALONE) == (key.kind == "budget"), key.path
        # The docs: the generated table of docs/budget-file.md has the row.
        assert f"| `{key.path}` | {key.label} |" in key_page, f"{key.path}: not in docs/budget-file.md"


def test_generated_files_are_fresh() -> None:
    """The key table of docs/budget-file.md and the example's schema as ``tools/regenerate.py``
    writes them."""
    spec = importlib.util.spec_from_file_location("regenerate", ROOT / "tools" / "regenerate.py")
    assert spec is not None and spec.loader is not None
    regenerate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regenerate)
    stale = [str(path.relative_to(ROOT)) for path in regenerate.stale()]
    assert stale == [], f"stale: {stale}; run python tools/regenerate.py"


def test_the_simple_key_loops_come_from_the_registry() -> None:
    """verdicts and regressions judge these keys in loops over registry rows: the rows they
    pick are the keys of those tables, in the budget tables' own field order."""
    from pytest_tflite.budget.tables import DelegateMemory, LatencyBudget, MemoryBudget, SizeBudget
    from pytest_tflite.verdicts import FIDELITY_KEYS, LATENCY_KEYS, MEMORY_KEYS

    assert list(LATENCY_KEYS) == [k for k in LatencyBudget.model_fields if k != "per_sample"]
    assert list(MEMORY_KEYS) == list(DelegateMemory.model_fields)
    assert FIDELITY_KEYS["max_abs_error"] == ("max_abs_error", False)
    assert FIDELITY_KEYS["min_cosine"] == ("cosine", True)
    assert [k.path for k in keys.STATIC_LIMITS] == [
        *(f"size.{leaf}" for leaf in SizeBudget.model_fields),
        *(f"memory.{leaf}" for leaf in MemoryBudget.model_fields)]
    # Figures [regression] compares value to value; accuracy (its metric's direction), fidelity
    # (two figures), ops and latency (paired timing) are judged by hand.
    assert {k.leaf for k in keys.SIMPLE_REGRESSIONS} == {
        k.removeprefix("regression.") for k in KEY_KINDS["regression"]} - {
        "accuracy", "fidelity", "ops", "latency", "instructions", "estimated_cycles"}
    assert [k.leaf for k in keys.COST_REGRESSIONS] == ["instructions", "estimated_cycles"]


# --- one real measurement to judge every budget leaf against ------------------------------------


def walk_model(seed: int) -> Any:
    """A small CNN whose weights follow 1:2 along the input channels (sparsity 1/2 in the
    layers after the first); Keras 3's Flatten leaves SHAPE/STRIDED_SLICE/PACK to CPU kernels
    under XNNPACK, so delegation is partial and in more than one partition."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu", name=HIDDEN if seed == 0 else None),
        keras.layers.Dense(10, name="logits"),
    ])
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            kernel = weights[0]
            if kernel.ndim == 4:
                kernel[:, :, 1::2, :] = 0
            else:
                kernel[1::2, :] = 0
            layer.set_weights([kernel, *weights[1:]])
    return model


@dataclasses.dataclass
class Walk:
    measurement: Measurement  # top1 accuracy, fidelity, three interpreter delegates
    error_metric: Measurement  # the same model scored with mae, for accuracy.max
    folder: Path
    candidate: Any


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Walk:
    from pytest_tflite import convert

    folder = tmp_path_factory.mktemp("walk")
    candidate = convert(walk_model(0), "float32", output_dir=folder)
    reference = walk_model(3)  # another model: fidelity and accuracy land well inside 0..1
    x = np.random.default_rng(0).normal(size=(200, 6, 6, 2)).astype("float32")
    expected = reference.predict(x, verbose=0)
    evaluation = engine.Evaluation((x, expected.argmax(axis=1)), reference)
    delegates = ", ".join(f'"{d}"' for d in INTERPRETER)
    text = f"""
        [defaults.runtime]
        delegates = [{delegates}]
        batch_sizes = [1, {BATCH}]
        {FAST}

        [variants.top1]
        accuracy = {{ metric = "top1", min = 0 }}
        sparsity = {{ pattern = "1:2" }}
        fidelity = {{ cross = {{ max_abs_error = 1 }} }}

        [variants.mae]
        accuracy = {{ metric = "mae", max = 1000 }}
    """
    budget = _budget(folder, text)
    measured = engine.measure(candidate, budget, budget.variant("top1"), engine.Settings(),
                              evaluation=evaluation)
    scored = engine.measure(candidate, budget, budget.variant("mae"),
                            engine.Settings(runtime_off="not needed"),
                            evaluation=engine.Evaluation((x, expected), reference))
    return Walk(measured, scored, folder, candidate)


def _budget(folder: Path, text: str, name: str = "walk.toml") -> Any:
    path = folder / name
    path.write_text(textwrap.dedent(text).replace("\n        ", "\n"))
    return load(path)


# Instructions per invoke as callgrind counted them (the face detector of issue 18 under
# xnnpack: 171,273,659 for 11 invokes less 93,426,384 for 6), and figures for the others.
COUNTS = {"xnnpack": 15_569_455, "builtin": 21_000_000, "reference": 310_000_000}
FINGERPRINT = {"valgrind": "3.19.0", "ai_edge_litert": "2.3.0", "threads": 1, "seed": 0}


def _cost(instructions: int) -> results.Cost:
    return results.Cost(instructions, estimated_cycles=instructions + 3_000_000, l1_misses=20_000,
                        ll_misses=3_000, invokes=1, fingerprint=FINGERPRINT,
                        top_functions=[{"name": "xnn_f32_gemm_minmax_ukernel_1x16__asm_amd64_fma3",
                                        "instructions": instructions * 9 // 10, "share": 0.9}])


def _counted(found: Measurement, scale: float = 1.0) -> Measurement:
    """The measurement with a count under each interpreter delegate (``scale`` times it)."""
    return dataclasses.replace(found, delegates={
        name: dataclasses.replace(result, cost=_cost(round(COUNTS[name] * scale)))
        if name in COUNTS else result for name, result in found.delegates.items()})


def _faked(found: Measurement) -> Measurement:
    """gpu, npu and an external delegate as this machine cannot give them: the xnnpack figures
    under their names, and the CompiledModel's all-or-nothing answer for the accelerators."""
    delegates = dict(_counted(found).delegates)
    for name in (*ACCELERATORS, EXTERNAL):
        delegates[name] = dataclasses.replace(found.delegates["xnnpack"])
    for name in ACCELERATORS:
        delegates[name] = DelegateResult("ok", latency_ms=found.delegates["xnnpack"].latency_ms,
                                         init_ms=1.0, first_invoke_ms=1.0, cpu_ms=1.0,
                                         fully_accelerated=True)
    delegates[RUNNER] = DelegateResult("ok", latency_ms=found.delegates["xnnpack"].latency_ms,
                                       init_ms=1.0, first_invoke_ms=1.0, cpu_ms=1.0,
                                       runner_format="pytest-tflite-json")
    # fidelity.cross was measured (xnnpack against reference), but the two agree to ~1e-7: 2x
    # of a cosine that close to 1 is no fraction. The plain fidelity's figures stand in.
    assert found.fidelity_cross is not None and found.fidelity is not None
    cross = dataclasses.replace(found.fidelity_cross, **results.known_fields(
        type(found.fidelity_cross), dataclasses.asdict(found.fidelity)))
    # The CNN keeps no state between invokes: test_state_memory's streaming model's 288 B stand
    # in (measured there from a real model).
    assert found.planned_state_bytes == 0
    return dataclasses.replace(found, delegates=delegates, fidelity_cross=cross,
                               planned_state_bytes=288)


def _measured_value(key: str, walk: Walk, delegate: str) -> float:
    """The figure a budget key is judged against, read from the measurement independently of
    the verdict code."""
    m = walk.measurement
    found = m.delegates.get(delegate) if delegate else None
    if key == "latency.<delegate>.per_sample.median":
        assert found is not None
        at = found.batch(BATCH)
        assert at is not None and at.latency_ms is not None, found.batches
        return at.latency_ms.median / BATCH
    if key.startswith("latency."):
        name = key.split(".")[-1]
        assert found is not None and found.latency_ms is not None
        return float({"cpu": found.cpu_ms, "init": found.init_ms,
                      "first_invoke": found.first_invoke_ms}.get(name)
                     or getattr(found.latency_ms, name))
    readers: dict[str, Callable[[], float]] = {
        "size.max": lambda: m.size_bytes,
        "size.max_gzip": lambda: m.gzip_bytes,
        "memory.planned_arena": lambda: m.planned_arena_bytes,
        "memory.planned_total": lambda: m.planned_arena_bytes + m.planned_state_bytes,
        "memory.planned_state": lambda: m.planned_state_bytes,
        "memory.<delegate>.arena": lambda: found.arena_bytes,  # type: ignore[union-attr,return-value]
        "memory.<delegate>.peak_rss": lambda: found.peak_rss_bytes,  # type: ignore[union-attr,return-value]
        "delegation.<delegate>.min_fraction":
            lambda: found.delegated_nodes / found.total_nodes,  # type: ignore[union-attr,operator]
        "delegation.<delegate>.max_partitions": lambda: found.partitions,  # type: ignore[union-attr,return-value]
        "accuracy.min": lambda: m.accuracy.candidate,  # type: ignore[union-attr]
        "accuracy.max": lambda: walk.error_metric.accuracy.candidate,  # type: ignore[union-attr]
        "accuracy.max_drop": lambda: m.accuracy.drop,  # type: ignore[union-attr,return-value]
        "fidelity.min_top1_agreement": lambda: m.fidelity.top1_agreement,  # type: ignore[union-attr,return-value]
        "fidelity.min_cosine": lambda: m.fidelity.cosine,  # type: ignore[union-attr]
        "fidelity.max_abs_error": lambda: m.fidelity.max_abs_error,  # type: ignore[union-attr]
        "fidelity.min_snr_db": lambda: m.fidelity.snr_db,  # type: ignore[union-attr]
        "fidelity.cross.min_top1_agreement": lambda: m.fidelity_cross.top1_agreement,  # type: ignore[union-attr,return-value]
        "fidelity.cross.min_cosine": lambda: m.fidelity_cross.cosine,  # type: ignore[union-attr]
        "fidelity.cross.max_abs_error": lambda: m.fidelity_cross.max_abs_error,  # type: ignore[union-attr]
        "fidelity.cross.min_snr_db": lambda: m.fidelity_cross.snr_db,  # type: ignore[union-attr]
        "sparsity.min": lambda: m.sparsity,
        "cost.<delegate>.instructions": lambda: found.cost.instructions,  # type: ignore[union-attr]
        "cost.<delegate>.estimated_cycles": lambda: found.cost.estimated_cycles,  # type: ignore[union-attr]
        "sparsity.layers.<layer>.min": lambda: next(
            layer["sparsity"] for layer in m.sparsity_layers if layer["name"] == _layer(m)),
    }
    return float(readers[key]())


def _toml_value(key: str, value: float) -> str:
    if key.startswith("latency."):
        return f'"{value!r} ms"'
    if key.startswith(("size.", "memory.", "cost.")):
        return str(max(1, math.floor(value) if value > 1 else math.ceil(value)))
    if key.endswith("max_partitions"):
        return str(max(1, round(value)))
    return repr(value)


def _layer(measurement: Measurement) -> str:
    # The converter names the weight after the layer, uniquified by TensorFlow's name scope
    # (hidden_walk_1): the budget names the layer as the .tflite does.
    return next(layer["name"] for layer in measurement.sparsity_layers
                if layer["name"].startswith(HIDDEN))


def _document(key: str, delegate: str, value: str, layer: str = "") -> str:
    """A budget file holding only ``key`` (in variant ``v``) with ``value``."""
    path = key.replace("<delegate>", f'"{delegate}"').replace("<layer>", layer).split(".")
    if path[0] == "accuracy":
        metric = "mae" if path[1] == "max" else "top1"
        return f'[variants.v.accuracy]\nmetric = "{metric}"\n{path[1]} = {value}\n'
    if "per_sample" in path:  # judged at a batch size the runtime measures
        return (f"[variants.v.runtime]\nbatch_sizes = [1, {BATCH}]\n"
                f"[variants.v.{'.'.join(path[:-1])}]\nbatch = {BATCH}\nmedian = {value}\n")
    table, leaf = ".".join(path[:-1]), path[-1]
    return f"[variants.v.{table}]\n{leaf} = {value}\n"


def _budget_leaves() -> list[tuple[str, str]]:
    """(key, delegate) for every budget leaf, each delegate spelled out."""
    found = []
    for leaf in schema_leaves():
        if kind_of(leaf) != "budget":
            continue
        key = re.sub(r"^variants\.<variant>\.", "", leaf)
        for delegate in ((*DELEGATES, EXTERNAL, RUNNER) if "<delegate>" in key else ("",)):
            found.append((key, delegate))
    return found


@pytest.mark.parametrize(("key", "delegate"), _budget_leaves(),
                         ids=[f"{k}[{d}]" if d else k for k, d in _budget_leaves()])
def test_budget_leaf_is_judged_against_the_measurement(walk: Walk, key: str, delegate: str) -> None:
    metric = key.replace("<delegate>", delegate).replace("<layer>", _layer(walk.measurement))
    why = refusal(metric)
    if why is not None:
        value = '["ADD"]' if key.endswith("forbid_fallback") else "1"
        with pytest.raises(BudgetFileError) as refused:
            _budget(walk.folder, _document(key, delegate, value))
        assert why[:40] in str(refused.value), refused.value
        return
    measurement = _faked(walk.measurement)
    if key == "delegation.<delegate>.forbid_fallback":
        left = sorted(measurement.delegates[delegate].fallback_ops or {})
        assert left, "the walk model must leave ops to CPU kernels"
        verdicts = {_verdict(walk, measurement, key, delegate, json.dumps([op]), metric)
                    for op in (left[0], "CONV_2D")}
        assert verdicts == {"fail", "pass"}
        return
    if key == "sparsity.pattern":
        from pytest_tflite.measure.sparsity import check_pattern

        # Every other weight along the input channels is zero: 1:2 holds, 1:4 does not.
        assert _verdict(walk, measurement, key, "", '"1:2"', metric) == "pass"
        four = dataclasses.replace(measurement, sparsity_pattern=check_pattern(walk.candidate.view, 1, 4))
        assert _verdict(walk, four, key, "", '"1:4"', metric) == "fail"
        assert _verdict(walk, measurement, key, "", '"1:4"', metric) == "error"  # measured 1:2
        return
    if key.startswith("delegation.") and delegate in ACCELERATORS:
        # The CompiledModel says only whether it took the whole model; min_fraction = 1.0.
        assert _verdict(walk, measurement, key, delegate, "1.0", metric) == "pass"
        partial = dataclasses.replace(measurement, delegates={
            **measurement.delegates,
            delegate: dataclasses.replace(measurement.delegates[delegate], fully_accelerated=False)})
        assert _verdict(walk, partial, key, delegate, "1.0", metric) == "fail"
        return
    measured = _measured_value(key, dataclasses.replace(walk, measurement=measurement), delegate)
    assert measured and math.isfinite(measured), f"{metric}: nothing to compare ({measured})"
    low, high = (_verdict(walk, measurement, key, delegate, _toml_value(key, measured * factor),
                          metric, measured) for factor in (0.5, 2.0))
    # A limit below the figure fails an upper limit and passes a lower one; above it, the other.
    # Half of a positive figure is below it, half of a negative one (an SNR in dB) above.
    direction = keys.BY_PATH[key].direction
    below = ("fail", "pass") if direction == "upper" else ("pass", "fail")
    expected = below if measured > 0 else below[::-1]
    assert (low, high) == expected, f"{metric} ({direction}): {low} at 0.5x, {high} at 2x of {measured}"


def _verdict(walk: Walk, measurement: Measurement, key: str, delegate: str, value: str,
             metric: str, measured: float | None = None) -> str:
    budget = _budget(walk.folder, _document(key, delegate, value, _layer(measurement)),
                     f"{abs(hash(metric))}.toml")
    if key == "accuracy.max":
        measurement = walk.error_metric
    checks = [c for c in judge(measurement, budget.variant("v")) if c.metric == metric]
    assert len(checks) == 1, (metric, checks)
    check = checks[0]
    if measured is not None and check.measured is not None:
        assert check.measured == pytest.approx(measured), metric  # judged against the measurement
    return check.verdict


# --- [regression]: a baseline is needed -----------------------------------------------------------


def _regression_table(leaf: str, tolerance: str) -> str:
    """A budget with the tolerance where ``leaf`` says: the file-wide [regression], or the
    variant's own [variants.v.regression] (judged the same against a measured figure)."""
    table = "[variants.v.regression]" if leaf.startswith("variants.") else "[regression]"
    return f'[variants.v]\nsize = {{ max = "1 MiB" }}\n{table}\n{leaf.split(".")[-1]} = {tolerance}\n'


@pytest.mark.parametrize("leaf", [leaf for leaf in schema_leaves() if kind_of(leaf) == "regression"])
def test_regression_leaf_is_a_skip_without_a_baseline(walk: Walk, tmp_path: Path, leaf: str) -> None:
    key = re.sub(r"^variants\.<variant>\.", "", leaf)
    tight, _ = REGRESSION_TOLERANCES[key]
    budget = _budget(tmp_path, _regression_table(leaf, tight))
    checks = {c.metric: c for c in judge(walk.measurement, budget.variant("v"),
                                         budget.spec.regression)}
    assert checks[key].verdict == "skip" and checks[key].reason == NO_BASELINE


# (tight, loose) tolerance per key, against a baseline the walk's measurement is worse than.
REGRESSION_TOLERANCES = {
    "regression.size": ('"5%"', '"20%"'),
    "regression.gzip": ('"5%"', "100000"),
    "regression.planned_arena": ('"5%"', '"20%"'),
    "regression.planned_total": ('"5%"', '"20%"'),
    "regression.sparsity": ("0.05", "0.2"),
    "regression.accuracy": ("0.05", '"60%"'),
    "regression.fidelity": ("0.05", "0.2"),
    "regression.ops": ('"exact"', '"report"'),
    "regression.latency": ('"5%"', '"20%"'),
    "regression.instructions": ('"5%"', '"40M"'),
    "regression.estimated_cycles": ('"5%"', '"20%"'),
}


def _worse_baseline(found: Measurement) -> Measurement:
    """The walk's measurement as a base branch would have had it: 10% smaller files and arena,
    0.1 more sparsity, accuracy and fidelity, one CONV_2D fewer, a faster model and 10% fewer
    instructions per invoke (counted alike: the same fingerprint)."""
    assert found.accuracy is not None and found.fidelity is not None
    return dataclasses.replace(
        _counted(found, 1 / 1.1), size_bytes=round(found.size_bytes / 1.1),
        gzip_bytes=round(found.gzip_bytes / 1.1),
        planned_arena_bytes=round(found.planned_arena_bytes / 1.1),
        sparsity=found.sparsity + 0.1, ops={**found.ops, "CONV_2D": found.ops["CONV_2D"] - 1},
        accuracy=dataclasses.replace(found.accuracy, candidate=found.accuracy.candidate + 0.1),
        fidelity=dataclasses.replace(found.fidelity, cosine=found.fidelity.cosine + 0.1,
                                     top1_agreement=(found.fidelity.top1_agreement or 0) + 0.1))


@pytest.mark.parametrize("leaf", [leaf for leaf in schema_leaves() if kind_of(leaf) == "regression"])
def test_regression_leaf_is_judged_against_the_baseline(walk: Walk, tmp_path: Path,
                                                        leaf: str) -> None:
    from pytest_tflite.results import Comparison

    key = re.sub(r"^variants\.<variant>\.", "", leaf)
    baseline = _worse_baseline(walk.measurement)
    verdicts = []
    for tolerance, ratio_verdict in zip(REGRESSION_TOLERANCES[key], ("regressed", "unchanged")):
        budget = _budget(tmp_path, _regression_table(leaf, tolerance), f"{abs(hash(tolerance))}.toml")
        measurement = _counted(walk.measurement)
        if key == "regression.latency":  # what the paired timing said under that tolerance
            comparison = Comparison(1.1, 1.08, 1.12, 40, ratio_verdict, 0.05)  # type: ignore[arg-type]
            measurement = dataclasses.replace(measurement, delegates={
                name: dataclasses.replace(found, comparison=comparison)
                for name, found in measurement.delegates.items()})
        checks = [c for c in judge(measurement, budget.variant("v"), budget.spec.regression,
                                   baseline=baseline) if c.metric.startswith(key)]
        assert checks, key
        for check in checks:
            assert check.baseline is not None or key == "regression.ops", check
            assert check.measured is not None, check
        verdicts.append({c.verdict for c in checks})
    assert verdicts == [{"fail"}, {"pass"}], (key, verdicts)


# --- setting leaves: each changes the measurement or the report --------------------------------


def _measure(folder: Path, runtime: str, model: Any, *, variant: str = "v",
             budgets: str = 'size = { max = "1 MiB" }', file_keys: str = "",
             evaluation: engine.Evaluation | None = None) -> Any:
    budget = _budget(folder, f"{file_keys}\n[variants.{variant}]\n{budgets}\n"
                             f"[variants.{variant}.runtime]\n{runtime}\n",
                     f"{abs(hash((runtime, budgets, file_keys)))}.toml")
    return engine.run(model, budget, variant, engine.Settings(), evaluation=evaluation)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from pytest_tflite import convert
    from tests.helpers.models import keras3_mlp

    return convert(keras3_mlp(), "float32", output_dir=tmp_path_factory.mktemp("mlp"))


def _only(entry: Any, delegate: str = "builtin") -> DelegateResult:
    found: DelegateResult = entry.measurement.delegates[delegate]
    assert found.status == "ok", found.reason
    return found


def effect_threads(folder: Path, mlp: Any) -> None:
    for threads in (1, 2):
        entry = _measure(folder, f'threads = {threads}\ndelegates = ["xnnpack"]\n{FAST}', mlp)
        assert _only(entry, "xnnpack").threads == threads


def effect_delegates(folder: Path, mlp: Any) -> None:
    for delegates in (["builtin"], ["reference", "xnnpack"]):
        entry = _measure(folder, f"delegates = {json.dumps(delegates)}\n{FAST}", mlp)
        assert list(entry.measurement.delegates) == delegates


def effect_warmup_min_runs(folder: Path, mlp: Any) -> None:
    for runs in (3, 7):
        entry = _measure(folder, f'delegates = ["builtin"]\nwarmup = {{ min_runs = {runs}, '
                                 f'min_seconds = 0 }}\ntiming = {{ min_runs = 1, min_seconds = 0 }}',
                         mlp)
        assert _only(entry).warmup_runs == runs


def effect_warmup_min_seconds(folder: Path, mlp: Any) -> None:
    runs = [_only(_measure(folder, f'delegates = ["builtin"]\nwarmup = {{ min_runs = 1, '
                                   f'min_seconds = {s} }}\ntiming = {{ min_runs = 1, '
                                   f'min_seconds = 0 }}', mlp)).warmup_runs for s in (0, 0.2)]
    assert runs[0] == 1 and runs[1] is not None and runs[1] > 10


def effect_timing_min_runs(folder: Path, mlp: Any) -> None:
    for runs in (5, 9):
        entry = _measure(folder, f'delegates = ["builtin"]\nwarmup = {{ min_runs = 0, '
                                 f'min_seconds = 0 }}\ntiming = {{ min_runs = {runs}, '
                                 f'min_seconds = 0 }}', mlp)
        latency = _only(entry).latency_ms
        assert latency is not None and latency.n == runs


def effect_timing_min_seconds(folder: Path, mlp: Any) -> None:
    counts = []
    for seconds in (0, 0.2):
        latency = _only(_measure(folder, f'delegates = ["builtin"]\ntiming = {{ min_runs = 1, '
                                         f'min_seconds = {seconds} }}\nwarmup = {{ min_runs = 0, '
                                         f'min_seconds = 0 }}', mlp)).latency_ms
        assert latency is not None
        counts.append(latency.n)
    assert counts[0] == 1 and counts[1] > 10


def effect_input_shapes(folder: Path, mlp: Any) -> None:
    # The MLP's batch dimension is dynamic: 4 samples need 4x the I/O tensors of 1.
    name = mlp.view.io_details("inputs")[0]["name"]
    arenas = [_only(_measure(folder, f'delegates = ["reference"]\n{FAST}\n'
                                     f'input_shapes = {{ "{name}" = [{batch}, 8] }}', mlp),
                    "reference").arena_bytes for batch in (1, 4)]
    # input 8, hidden 16 and output 4 floats per sample, placed at 64-byte-aligned offsets:
    # at batch 1 the 32-byte input takes a 64-byte slot, at batch 4 every tensor fills its own.
    assert arenas == [64 + 64 + 4 * 4, (8 + 16 + 4) * 4 * 4]


def effect_seed(folder: Path, mlp: Any) -> None:
    for seed in (0, 7):
        entry = _measure(folder, f'delegates = ["builtin"]\nseed = {seed}\n{FAST}', mlp)
        assert _only(entry).inputs == f"random (seed {seed})"


def effect_timeout(folder: Path, mlp: Any) -> None:
    quick = _measure(folder, f'delegates = ["builtin"]\ntimeout = "1 us"\n{FAST}', mlp)
    found = quick.measurement.delegates["builtin"]
    assert found.status == "error" and "timed out after 1e-06 s" in found.reason
    assert _only(_measure(folder, f'delegates = ["builtin"]\ntimeout = "60 s"\n{FAST}', mlp))


def effect_max_memory(folder: Path, mlp: Any) -> None:
    tight = _measure(folder, f'delegates = ["builtin"]\nmax_memory = "8 B"\n{FAST}', mlp)
    assert tight.measurement.planned_arena_bytes > 8  # under the plan: refused, never run
    assert tight.measurement.refused is not None
    assert "the memory cap is 8 B" in tight.measurement.refused
    assert tight.measurement.delegates["builtin"].status == "error"
    roomy = _measure(folder, f'delegates = ["builtin"]\nmax_memory = "4 GiB"\n{FAST}', mlp)
    assert roomy.measurement.refused is None and _only(roomy)


def effect_model(folder: Path, mlp: Any) -> None:
    assert _measure(folder, FAST, mlp, file_keys='model = "shipped_mlp"').model == "shipped_mlp"
    assert _measure(folder, FAST, mlp).model != "shipped_mlp"  # the file's stem otherwise


def effect_source(folder: Path, mlp: Any) -> None:
    from pytest_tflite.collector import names_a_source

    (folder / "models").mkdir(exist_ok=True)
    text = 'source = "models/m.tflite"\n[variants.v]\nsize = { max = "1 MiB" }\n'
    budget = _budget(folder, text, "with_source.toml")
    assert budget.source == (folder / "models" / "m.tflite").resolve()
    assert names_a_source(text) and not names_a_source(text.split("\n", 1)[1])


def effect_unsafe_source(folder: Path, mlp: Any) -> None:
    # What the checker hands the conversion; tests/unit/conversion/test_safe_mode.py loads a
    # Lambda .h5 both ways.
    from pytest_tflite.conversion.sources import classify

    (folder / "m.h5").write_bytes(b"")
    for flag in (True, False):
        text = f'unsafe_source = {str(flag).lower()}\nsource = "m.h5"\n[variants.v]\nsize = {{ max = 1 }}\n'
        budget = _budget(folder, text, "unsafe.toml")
        assert classify(budget.source, unsafe_source=budget.spec.unsafe_source).unsafe is flag


def effect_allow_outside_rootdir(folder: Path, mlp: Any) -> None:
    # More in tests/unit/budget/test_confined.py.
    from pytest_tflite.errors import BudgetFileError

    text = 'source = "/etc/passwd"\n[variants.v]\nsize = { max = 1 }\n'
    path = folder / "outside.toml"
    path.write_text(text)
    with pytest.raises(BudgetFileError, match="outside the project's root"):
        load(path, root=folder)
    path.write_text(f'allow_outside_rootdir = "a test"\n{text}')
    assert load(path, root=folder).source == Path("/etc/passwd")


def effect_accuracy_metric(folder: Path, mlp: Any) -> None:
    x = np.random.default_rng(0).normal(size=(20, 8)).astype("float32")
    found = {}
    for metric, bound in (("top1", "min = 0"), ("mae", "max = 100")):
        entry = _measure(folder, FAST, mlp, budgets=f'accuracy = {{ metric = "{metric}", {bound} }}',
                         evaluation=engine.Evaluation((x, np.zeros((20, 4), "float32"))))
        found[metric] = entry.measurement.accuracy
    assert found["top1"].metric == "top1" and found["mae"].metric == "mae"
    assert found["top1"].candidate != found["mae"].candidate


def effect_accuracy_direction(folder: Path, mlp: Any) -> None:
    # The same two metric values read as better or worse than the reference by the direction.
    from tests.helpers.models import keras3_mlp

    x = np.random.default_rng(0).normal(size=(20, 8)).astype("float32")
    reference = keras3_mlp(seed=1)
    found = {}
    for direction in ("higher", "lower"):
        entry = _measure(folder, FAST, mlp,
                         budgets=f'accuracy = {{ metric = "custom", direction = "{direction}", '
                                 f'max_drop = 100 }}',
                         evaluation=engine.Evaluation((x, np.zeros(20)), reference,
                                                      metric=lambda y, p: float(p.sum())))
        found[direction] = entry.measurement.accuracy
    higher, lower = found["higher"], found["lower"]
    assert higher.candidate == lower.candidate and higher.reference == lower.reference
    assert higher.drop == higher.reference - higher.candidate != 0
    assert lower.drop == -higher.drop


def effect_batch_sizes(folder: Path, mlp: Any) -> None:
    assert _only(_measure(folder, f'delegates = ["builtin"]\n{FAST}', mlp)).batches is None
    found = _only(_measure(folder, f'delegates = ["builtin"]\nbatch_sizes = [1, 4]\n{FAST}', mlp))
    assert found.batches is not None
    assert [(b.batch, b.status, b.input_shapes) for b in found.batches] == [
        (1, "ok", [[1, 8]]), (4, "ok", [[4, 8]])]


def effect_per_sample_batch(folder: Path, mlp: Any) -> None:
    # The batch picks which per-sample figure the limit is held to.
    entry = _measure(folder, f'delegates = ["builtin"]\nbatch_sizes = [1, 4]\n{FAST}', mlp,
                     budgets='latency.builtin.per_sample = { batch = 4, median = "1 s" }')
    found = _only(entry)
    for batch in (1, 4):
        budget = _budget(folder, f'[variants.v.runtime]\nbatch_sizes = [1, 4]\n'
                                 f'[variants.v.latency.builtin.per_sample]\nbatch = {batch}\n'
                                 f'median = "1 s"\n', f"per_sample_{batch}.toml")
        check, = judge(entry.measurement, budget.variant("v"))
        at = found.batch(batch)
        assert at is not None and check.measured == at.per_sample_ms
        assert check.reason == f"at batch {batch}"


def effect_accuracy_delegates(folder: Path, mlp: Any) -> None:
    # One accuracy per named delegate, and checks named by it.
    x = np.random.default_rng(0).normal(size=(20, 8)).astype("float32")
    for delegates in (["reference"], ["xnnpack", "builtin"]):
        entry = _measure(folder, f'delegates = ["builtin"]\n{FAST}', mlp,
                         budgets=f"accuracy = {{ min = 0, delegates = {json.dumps(delegates)} }}",
                         evaluation=engine.Evaluation((x, np.zeros(20))))
        assert list(entry.measurement.accuracy_by_delegate) == delegates
        assert [c.metric for c in entry.checks if c.metric.startswith("accuracy")] == [
            f"accuracy.{d}.min" for d in delegates]


def effect_fidelity_delegates(folder: Path, mlp: Any) -> None:
    from tests.helpers.models import keras3_mlp

    x = np.random.default_rng(0).normal(size=(20, 8)).astype("float32")
    for delegates in (["reference"], ["xnnpack", "builtin"]):
        entry = _measure(folder, f'delegates = ["builtin"]\n{FAST}', mlp,
                         budgets=f"fidelity = {{ max_abs_error = 100, "
                                 f"delegates = {json.dumps(delegates)} }}",
                         evaluation=engine.Evaluation(x, keras3_mlp(seed=1)))
        assert list(entry.measurement.fidelity_by_delegate) == delegates
        assert [c.metric for c in entry.checks if c.metric.startswith("fidelity")] == [
            f"fidelity.{d}.max_abs_error" for d in delegates]


def _cross(folder: Path, mlp: Any, table: str) -> Any:
    x = np.random.default_rng(0).normal(size=(20, 8)).astype("float32")
    entry = _measure(folder, f'delegates = ["builtin"]\n{FAST}', mlp,
                     budgets=f"fidelity = {{ cross = {{ {table}, max_abs_error = 1 }} }}",
                     evaluation=engine.Evaluation(x))  # no labels, no reference
    assert entry.measurement.fidelity_cross is not None
    return entry.measurement


def effect_fidelity_cross_delegate(folder: Path, mlp: Any) -> None:
    # The delegate picks the kernels of the first run: XNNPACK takes the MLP's nodes, builtin none.
    nodes = {}
    for delegate in ("xnnpack", "builtin"):
        found = _cross(folder, mlp, f'delegate = "{delegate}"')
        assert (found.fidelity_cross.delegate, found.fidelity_cross.against) == (delegate,
                                                                                 "reference")
        nodes[delegate] = found.evaluation_runs[delegate].delegated_nodes
    assert nodes["builtin"] == 0 and nodes["xnnpack"] > 0


def effect_fidelity_cross_against(folder: Path, mlp: Any) -> None:
    for against in ("reference", "builtin"):
        found = _cross(folder, mlp, f'against = "{against}"')
        assert (found.fidelity_cross.delegate, found.fidelity_cross.against) == ("xnnpack",
                                                                                 against)
        assert set(found.evaluation_runs) == {"xnnpack", against}


SETTING_EFFECTS: dict[str, Callable[[Path, Any], None]] = {
    "model": effect_model,
    "source": effect_source,
    "unsafe_source": effect_unsafe_source,
    "allow_outside_rootdir": effect_allow_outside_rootdir,
    "runtime.threads": effect_threads,
    "runtime.delegates": effect_delegates,
    "runtime.warmup.min_runs": effect_warmup_min_runs,
    "runtime.warmup.min_seconds": effect_warmup_min_seconds,
    "runtime.timing.min_runs": effect_timing_min_runs,
    "runtime.timing.min_seconds": effect_timing_min_seconds,
    "runtime.input_shapes.<input>": effect_input_shapes,
    "runtime.seed": effect_seed,
    "runtime.timeout": effect_timeout,
    "runtime.max_memory": effect_max_memory,
    "runtime.batch_sizes": effect_batch_sizes,
    "latency.<delegate>.per_sample.batch": effect_per_sample_batch,
    "accuracy.metric": effect_accuracy_metric,
    "accuracy.direction": effect_accuracy_direction,
    "accuracy.delegates": effect_accuracy_delegates,
    "fidelity.delegates": effect_fidelity_delegates,
    "fidelity.cross.delegate": effect_fidelity_cross_delegate,
    "fidelity.cross.against": effect_fidelity_cross_against,
}


def test_every_setting_leaf_has_an_effect_test() -> None:
    settings = {re.sub(r"^(variants\.<variant>\.|defaults\.)", "", leaf)
                for leaf in schema_leaves() if kind_of(leaf) == "setting"}
    assert settings == set(SETTING_EFFECTS)


@pytest.mark.parametrize("key", sorted(SETTING_EFFECTS))
def test_setting_leaf_changes_the_measurement_or_the_report(tmp_path: Path, mlp: Any,
                                                            key: str) -> None:
    SETTING_EFFECTS[key](tmp_path, mlp)


def test_the_context_turns_unmeasured_budgets_into_skips(walk: Walk, tmp_path: Path) -> None:
    budget = _budget(tmp_path, '[variants.v.latency.xnnpack]\nmedian = "1 s"\n')
    checks = judge(walk.measurement, budget.variant("v"), context=Context(runtime_off="off"))
    assert [(c.verdict, c.reason) for c in checks] == [("skip", "off")]
