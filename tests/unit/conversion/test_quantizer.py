"""LiteRT quantizer recipes (``lq_*``, ``litert_quantizer:NAME``) on float ``.tflite`` models
built by hand (no TensorFlow): size, fidelity, errors, variants, the cache, a crash contained."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite.conversion.cache.storage import CacheStats, ConversionCache
from pytest_tflite.conversion.quantizer import recipes as quantizer
from pytest_tflite.conversion.recipes import convert
from pytest_tflite.errors import ConversionError, ModelError
from pytest_tflite.measure.isolated import run_model
from tests.helpers.models import Op, Subgraph, Tensor, build_model
from tests.helpers.paths import REPOSITORY

pytest.importorskip("litert_quantizer")

INPUTS, UNITS = 128, 64
WEIGHT_BYTES = INPUTS * UNITS * 4  # the float weights this file's model carries


def with_signature(content: bytes, inputs: dict[str, int], outputs: dict[str, int]) -> bytes:
    """``content`` with a ``serving_default`` SignatureDef (the quantizer calibrates through it)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)

    def tensor_map(name: str, index: int) -> Any:
        mapped = schema.TensorMapT()
        mapped.name, mapped.tensorIndex = name, index
        return mapped

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = [tensor_map(n, i) for n, i in inputs.items()]
    signature.outputs = [tensor_map(n, i) for n, i in outputs.items()]
    model.signatureDefs = [signature]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def dense_model(seed: int = 0) -> bytes:
    """x (1, 128) -> FULLY_CONNECTED with 64x128 float weights -> y (1, 64)."""
    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((UNITS, INPUTS)) * 0.1).astype(np.float32)
    bias = (rng.standard_normal(UNITS) * 0.01).astype(np.float32)
    content = build_model([Subgraph(
        [Tensor("x", [1, INPUTS]), Tensor("w", [UNITS, INPUTS], data=weights),
         Tensor("b", [UNITS], data=bias), Tensor("y", [1, UNITS])],
        [Op("FULLY_CONNECTED", [0, 1, 2], [3])], inputs=[0], outputs=[3])])
    return with_signature(content, {"x": 0}, {"y": 3})


@pytest.fixture(scope="module")
def float_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quantizer") / "dense.tflite"
    path.write_bytes(dense_model())
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ConversionCache:
    return ConversionCache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def quantized(float_path: Path, cache: ConversionCache) -> dict[str, Any]:
    """Each weight recipe once for the module (the worker costs seconds here)."""
    found = {recipe: convert(float_path, recipe, cache=cache) for recipe in ("lq_wi8", "lq_wi4")}
    blockwise = "litert_quantizer:dynamic_wi4b32_afp32"
    found[blockwise] = convert(float_path, blockwise, cache=cache, sanity=False)
    return found


def samples(count: int = 16, seed: int = 1) -> Any:
    return np.random.default_rng(seed).standard_normal((count, INPUTS)).astype(np.float32)


def test_int8_weights_take_a_quarter_of_the_float_bytes_and_int4_less(
    float_path: Path, quantized: dict[str, Any]
) -> None:
    float_size = float_path.stat().st_size
    without_weights = float_size - WEIGHT_BYTES
    int8, int4 = quantized["lq_wi8"].size_bytes, quantized["lq_wi4"].size_bytes
    # int8: the weights at 1/4 of their float bytes, plus per-channel scales and a DEQUANTIZE.
    assert without_weights + WEIGHT_BYTES // 4 <= int8 <= without_weights + WEIGHT_BYTES * 0.35
    # int4 packs two weights a byte: at least another eighth of the float bytes off.
    assert int4 <= int8 - WEIGHT_BYTES // 8 * 0.9
    assert int4 <= without_weights + WEIGHT_BYTES * 0.2
    assert quantized["litert_quantizer:dynamic_wi4b32_afp32"].size_bytes < int8


@pytest.mark.parametrize(("recipe", "min_cosine"), [("lq_wi8", 0.999), ("lq_wi4", 0.98)])
def test_quantized_outputs_stay_close_to_the_float_model(
    float_path: Path, quantized: dict[str, Any], recipe: str, min_cosine: float
) -> None:
    inputs = [samples()]
    reference = run_model(float_path, inputs).arrays[0]
    got = run_model(quantized[recipe].path, inputs).arrays[0]
    cosine = float(np.dot(reference.ravel(), got.ravel())
                   / (np.linalg.norm(reference) * np.linalg.norm(got)))
    assert cosine >= min_cosine
    assert np.max(np.abs(got - reference)) < 0.2 * np.max(np.abs(reference))


def test_variant_defaults_to_the_short_name_or_the_function(quantized: dict[str, Any]) -> None:
    assert quantized["lq_wi8"].variant == "lq_wi8"
    assert quantized["lq_wi8"].recipe == "lq_wi8"
    assert quantized["litert_quantizer:dynamic_wi4b32_afp32"].variant == "dynamic_wi4b32_afp32"


def test_second_convert_is_a_cache_hit(float_path: Path, cache: ConversionCache,
                                       quantized: dict[str, Any]) -> None:
    stats = CacheStats()
    again = convert(float_path, "lq_wi8", cache=cache, stats=stats, variant="mine")
    assert again.cache_hit and (stats.hits, stats.misses) == (1, 0)
    assert again.content == quantized["lq_wi8"].content
    assert again.variant == "mine"
    # The sanity thresholds are part of the key, like every recipe's.
    other = CacheStats()
    convert(float_path, "lq_wi8", cache=cache, stats=other, sanity=False)
    assert (other.hits, other.misses) == (0, 1)


def test_every_short_name_maps_to_a_recipe_function() -> None:
    available = quantizer.available_recipes()
    assert set(quantizer.SHORT_NAMES.values()) <= set(available)


def test_without_the_quantizer_the_error_says_what_to_install(
        float_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    quantizer.available_recipes.cache_clear()
    try:
        with pytest.raises(ConversionError, match=r"pytest-tflite\[quantizer\]"):
            convert(float_path, "lq_wi8")
    finally:
        monkeypatch.undo()
        quantizer.available_recipes.cache_clear()


def test_unknown_name_fails_listing_the_available_ones(float_path: Path) -> None:
    with pytest.raises(ConversionError, match="no zero-argument recipe function 'wi3'") as failed:
        convert(float_path, "litert_quantizer:wi3")
    assert "litert_quantizer:weight_only_wi8_afp32" in str(failed.value)
    assert "lq_static_a8w8 (static_wi8_ai8)" in str(failed.value)


def test_static_recipe_needs_representative_data(float_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="needs representative_data"):
        convert(float_path, "lq_static_a8w8")
    with pytest.raises(ConversionError, match="always take and give integers"):
        convert(float_path, "lq_static_a16w8", representative_data=samples(), float_io=True)
    model = convert(float_path, "lq_static_a8w8", representative_data=samples(32),
                    output_dir=tmp_path)
    assert model.variant == "lq_static_a8w8"
    # Integer in and out, like the converter's int8 recipe without float_io.
    assert [d["dtype"] for d in model.view.io_details("inputs")] == ["int8"]
    assert [d["dtype"] for d in model.view.io_details("outputs")] == ["int8"]
    reference = run_model(float_path, [samples()]).arrays[0]
    got = run_model(model.path, [samples()]).arrays[0]
    assert np.corrcoef(reference.ravel(), got.ravel())[0, 1] > 0.98


def test_converter_recipes_still_refuse_a_tflite_source(float_path: Path) -> None:
    with pytest.raises(ConversionError, match=r"only the LiteRT quantizer's, lq_\*"):
        convert(float_path, "dynamic_int8")


def test_a_corrupt_float_model_is_an_error_not_a_crash(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(dense_model()[:200])
    with pytest.raises(ModelError):
        convert(broken, "lq_wi8", output_dir=tmp_path)


def test_a_crashing_quantizer_fails_one_conversion(float_path: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # This very file as the worker: run as __main__ it dies of SIGSEGV.
    monkeypatch.setattr(quantizer, "WORKER_MODULE", "tests.unit.conversion.test_quantizer")
    with pytest.raises(ConversionError, match=r"LiteRT quantizer .* failed: crashed .*SIGSEGV"):
        convert(float_path, "lq_dynamic_wi8", output_dir=tmp_path)


def test_a_crash_in_one_test_leaves_the_session_running(pytester: pytest.Pytester,
                                                        float_path: Path) -> None:
    pytester.makepyfile(f"""
        from pytest_tflite.conversion.quantizer import recipes as quantizer

        def test_crashes(tflite_convert, monkeypatch):
            monkeypatch.setattr(quantizer, "WORKER_MODULE", "tests.unit.conversion.test_quantizer")
            tflite_convert({str(float_path)!r}, "lq_wi8", sanity=False)

        def test_after():
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:randomly", "-n", "0", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ConversionError*crashed*SIGSEGV*"])


def test_a_tflite_source_never_imports_tensorflow(float_path: Path, tmp_path: Path) -> None:
    script = f"""
import json, sys
from pathlib import Path
from pytest_tflite.conversion.recipes import convert
model = convert({str(float_path)!r}, "lq_wi8", output_dir=Path({str(tmp_path)!r}))
print(json.dumps({{"size": model.size_bytes,
                  "loaded": sorted(m for m in sys.modules
                                   if m.split(".")[0] in ("tensorflow", "keras", "tf_keras",
                                                          "litert_quantizer"))}}))
"""
    root = str(REPOSITORY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["size"] > 0
    # Neither TensorFlow nor the quantizer itself: that runs in its worker.
    assert found["loaded"] == []


def test_a_keras_source_goes_through_the_float32_recipe(tmp_path: Path) -> None:
    from tests.helpers.models import keras3_mlp

    model = keras3_mlp(inputs=64, hidden=64, outputs=8)
    stats = CacheStats()
    cache = ConversionCache(tmp_path / "cache")
    float32 = convert(model, "float32", cache=cache)
    int8 = convert(model, "lq_dynamic_wi8", cache=cache, stats=stats)
    assert (stats.hits, stats.misses) == (0, 1)
    assert int8.size_bytes < float32.size_bytes * 0.5
    notes = [json.loads(path.read_text()) for path in (tmp_path / "cache").rglob("*.json")]
    # Both conversions checked: float32 against Keras, the quantized model against float32.
    assert {n.get("recipe") for n in notes if "sanity" in n} >= {
        "float32", "litert_quantizer:dynamic_wi8_afp32"}
    again = convert(model, "lq_dynamic_wi8", cache=cache, stats=stats)
    assert again.cache_hit and again.content == int8.content


if __name__ == "__main__":
    # Run as the quantizer's worker by test_a_crashing_quantizer_fails_one_conversion.
    os.kill(os.getpid(), signal.SIGSEGV)
