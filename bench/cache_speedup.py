"""Speed-up from the conversion cache, for a pytest suite and for in-memory models.

Part 1 (suite): builds 5 small, different Keras models in a temp dir
  - tf_keras MLP          -> .h5
  - tf_keras conv net     -> .keras (written by tf_keras, Keras 2 format)
  - Keras 3 conv net      -> .keras
  - Keras 3 MLP           -> SavedModel dir via model.export()
  - tf_keras conv/MLP     -> SavedModel dir via tf.saved_model.save()
and a pytest suite (own pytest.ini with ``tflite_cache_dir = cache``, no addopts) whose 5 tests
each call ``tflite_convert(path, "float32")``. It runs ``python -m pytest -p no:randomly -q`` in
a fresh subprocess: cold (cache dir deleted first) then warm (same cache), PAIRS times, after
one untimed warm-up run. Reports the median wall time of cold and warm runs and the ratio
cold/warm. A conftest ``pytest_sessionfinish`` hook writes whether tensorflow (and tf_keras,
keras) ended up in ``sys.modules`` and each test's ``cache_hit``, which the script checks:
every warm test must be a hit, and the warm run must not import TensorFlow.

Part 2 (in-memory): for a few Keras model objects passed directly to
``pytest_tflite.convert(model, "float32", cache=ConversionCache(dir), stats=CacheStats())`` in
this process, times a miss (first call, after an untimed warm-up conversion of another model so
converter set-up is not billed to the first model; a miss includes the default sanity check,
which runs the converted model in a worker subprocess) and a hit (second call: fingerprint of
the model's config and weights plus a cache read) and reports the time saved per model.

Targets: warm suite >= 3x faster than cold (ratio of medians), tensorflow not imported in the
warm run; an in-memory hit much cheaper than a miss.

Run: python bench/cache_speedup.py [PAIRS]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
TARGET = 3.0

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # this process and the suite's: logging only

CONFTEST = '''
import json, sys
from pathlib import Path

import pytest

_HITS = {}


@pytest.fixture
def record_hit(request):
    def record(model):
        _HITS[request.node.name] = model.cache_hit
    return record


def pytest_sessionfinish(session):
    out = Path(session.config.rootpath, "session.json")
    out.write_text(json.dumps({
        "modules": {m: m in sys.modules for m in ("tensorflow", "tf_keras", "keras")},
        "hits": _HITS,
    }))
'''

TEST_FILE = '''
from pathlib import Path

import pytest

MODELS = Path(__file__).parent / "models"
NAMES = {names!r}


@pytest.mark.parametrize("name", NAMES)
def test_convert(tflite_convert, record_hit, name):
    model = tflite_convert(MODELS / name, "float32")
    assert model.size_bytes > 0
    record_hit(model)
'''


def build_models(folder: Path) -> list[str]:
    """Five small models of different architectures and Keras flavours; returns their names."""
    import warnings

    import keras
    import tensorflow as tf
    import tf_keras

    warnings.filterwarnings("ignore", message=".*HDF5 file.*")
    tf.get_logger().setLevel("ERROR")
    folder.mkdir()
    names = []

    def tfk_mlp():
        return tf_keras.Sequential([
            tf_keras.Input(shape=(20,)),
            tf_keras.layers.Dense(64, activation="relu"),
            tf_keras.layers.Dense(32, activation="relu"),
            tf_keras.layers.Dense(5, activation="softmax"),
        ])

    m = tfk_mlp()
    m.save(folder / "tfk_mlp.h5")
    names.append("tfk_mlp.h5")

    m = tf_keras.Sequential([
        tf_keras.Input(shape=(16, 16, 1)),
        tf_keras.layers.Conv2D(8, 3, activation="relu"),
        tf_keras.layers.MaxPooling2D(),
        tf_keras.layers.Conv2D(16, 3, activation="relu"),
        tf_keras.layers.GlobalAveragePooling2D(),
        tf_keras.layers.Dense(10),
    ])
    m.save(folder / "tfk_cnn.keras")
    names.append("tfk_cnn.keras")

    m = keras.Sequential([
        keras.Input(shape=(24, 24, 3)),
        keras.layers.Conv2D(12, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.Conv2D(16, 1, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4, activation="softmax"),
    ])
    m.save(folder / "k3_cnn.keras")
    names.append("k3_cnn.keras")

    m = keras.Sequential([
        keras.Input(shape=(12,)),
        keras.layers.Dense(48, activation="tanh"),
        keras.layers.Dense(3),
    ])
    m.export(str(folder / "k3_mlp_export"), verbose=False)
    names.append("k3_mlp_export")

    inputs = tf_keras.Input(shape=(8, 8, 2))
    x = tf_keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    x = tf_keras.layers.Flatten()(x)
    outputs = tf_keras.layers.Dense(7)(x)
    m = tf_keras.Model(inputs, outputs)
    tf.saved_model.save(m, str(folder / "tfk_savedmodel"))
    names.append("tfk_savedmodel")
    return names


def run_suite(root: Path, env: dict[str, str]) -> tuple[float, dict]:
    (root / "session.json").unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q",
               "--rootdir", str(root), "-c", str(root / "pytest.ini")]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"suite failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return elapsed, json.loads((root / "session.json").read_text())


def suite_benchmark(scratch: Path) -> bool:
    root = scratch / "suite"
    root.mkdir()
    names = build_models(root / "models")
    (root / "pytest.ini").write_text("[pytest]\ntflite_cache_dir = cache\n", encoding="utf-8")
    (root / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (root / "test_models.py").write_text(TEST_FILE.format(names=names), encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    cache = root / "cache"

    shutil.rmtree(cache, ignore_errors=True)
    run_suite(root, env)  # warm-up: disk cache for TensorFlow, .pyc files
    cold, warm, ok = [], [], True
    for i in range(PAIRS):
        shutil.rmtree(cache, ignore_errors=True)
        t_cold, s_cold = run_suite(root, env)
        t_warm, s_warm = run_suite(root, env)
        cold.append(t_cold)
        warm.append(t_warm)
        print(f"  pair {i + 1}: cold {t_cold:6.2f} s (tensorflow imported: "
              f"{s_cold['modules']['tensorflow']}, hits {sum(s_cold['hits'].values())}/5)   "
              f"warm {t_warm:5.2f} s (tensorflow imported: {s_warm['modules']['tensorflow']}, "
              f"tf_keras: {s_warm['modules']['tf_keras']}, keras: {s_warm['modules']['keras']}, "
              f"hits {sum(s_warm['hits'].values())}/5)")
        if any(s_cold["hits"].values()) or not all(s_warm["hits"].values()) \
                or len(s_warm["hits"]) != 5 or any(s_warm["modules"].values()):
            ok = False
    c, w = statistics.median(cold), statistics.median(warm)
    ratio = c / w
    print(f"  median cold {c:.2f} s, median warm {w:.2f} s, ratio cold/warm {ratio:.1f}x "
          f"(target >= {TARGET}x) -> {'PASS' if ratio >= TARGET else 'FAIL'}")
    print(f"  warm runs: all 5 hits and no tensorflow/tf_keras/keras import -> "
          f"{'PASS' if ok else 'FAIL'}")
    return ok and ratio >= TARGET


def in_memory_benchmark(scratch: Path) -> None:
    import keras
    import tf_keras

    from pytest_tflite.conversion.cache.storage import CacheStats, ConversionCache

    # Imported from the submodule: up to 051f96b the lazy __getattr__ in pytest_tflite/__init__.py
    # made ``from pytest_tflite import convert`` return the module, not the function.
    from pytest_tflite.conversion.recipes import convert

    warmup = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])
    convert(warmup, "float32", cache=None, output_dir=scratch / "out")

    models = {
        "tf_keras MLP 20-256-256-10": tf_keras.Sequential([
            tf_keras.Input(shape=(20,)), tf_keras.layers.Dense(256, activation="relu"),
            tf_keras.layers.Dense(256, activation="relu"), tf_keras.layers.Dense(10)]),
        "Keras 3 CNN 32x32x3": keras.Sequential([
            keras.Input(shape=(32, 32, 3)), keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]),
        "Keras 3 MLP 64-128-8": keras.Sequential([
            keras.Input(shape=(64,)), keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(8)]),
    }
    cache = ConversionCache(scratch / "memcache")
    print(f"  {'model':28s} {'miss':>9s} {'hit':>9s} {'saved':>9s}  hits/misses")
    for label, model in models.items():
        stats = CacheStats()
        t0 = time.perf_counter()
        first = convert(model, "float32", cache=cache, stats=stats)
        t1 = time.perf_counter()
        second = convert(model, "float32", cache=cache, stats=stats)
        t2 = time.perf_counter()
        assert first.cache_hit is False and second.cache_hit is True, (first, second)
        assert first.content == second.content
        miss, hit = (t1 - t0) * 1000, (t2 - t1) * 1000
        print(f"  {label:28s} {miss:7.0f}ms {hit:7.1f}ms {miss - hit:7.0f}ms  "
              f"{stats.hits}/{stats.misses}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as name:
        scratch = Path(name)
        print(f"suite of 5 tflite_convert(path, 'float32') tests, {PAIRS} cold/warm pairs "
              f"(fresh pytest subprocess each)")
        ok = suite_benchmark(scratch)
        print("in-memory Keras models, pytest_tflite.convert with a ConversionCache, one process")
        in_memory_benchmark(scratch)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
