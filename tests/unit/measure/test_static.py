"""Static measurement of real small models, bad model files, verdicts.judge and the CLI."""

from __future__ import annotations

import gzip
import json
import os
import random
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite import cli, verdicts
from pytest_tflite.budget import load
from pytest_tflite.errors import ModelError
from pytest_tflite.flatbuffer import FlatbufferView
from pytest_tflite.measure.static import gzip_size, measure_static
from pytest_tflite.model import TFLiteModel
from pytest_tflite.results import Measurement, overall


@dataclass(frozen=True)
class Built:
    float32: Path  # keras 3 Dense(16, relu) -> Dense(4), float I/O
    int8: Path  # the same model, full-integer quantized with int8 I/O
    conv: Path  # tf_keras Conv2D -> MaxPool -> Flatten -> Dense


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    import numpy as np
    import tensorflow as tf

    from tests.helpers.models import keras3_mlp, tf_keras_cnn

    # Converted with TensorFlow's own converter, not the plugin's: the figures under test must
    # not depend on the code that produces the model.
    directory = tmp_path_factory.mktemp("models")
    dense = keras3_mlp()
    float32 = directory / "dense.tflite"
    float32.write_bytes(tf.lite.TFLiteConverter.from_keras_model(dense).convert())

    samples = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(dense)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    int8 = directory / "dense_int8.tflite"
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected"
        warnings.simplefilter("ignore", UserWarning)
        int8.write_bytes(converter.convert())

    cnn = tf_keras_cnn(filters=4)
    conv = directory / "cnn.tflite"
    conv.write_bytes(tf.lite.TFLiteConverter.from_keras_model(cnn).convert())
    return Built(float32, int8, conv)


def interpreter(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


def model_paths(built: Built) -> list[Path]:
    return [built.float32, built.int8, built.conv]


# --- static measurement ------------------------------------------------------------------------


def test_size_and_gzip_are_the_file_figures(built: Built) -> None:
    for path in model_paths(built):
        content = path.read_bytes()
        measurement = measure_static(TFLiteModel.from_path(path))
        assert measurement.size_bytes == os.path.getsize(path)
        assert measurement.gzip_bytes == len(gzip.compress(content, 9, mtime=0))
        assert 0 < measurement.gzip_bytes < measurement.size_bytes + 64
        assert gzip_size(content) == measurement.gzip_bytes


def test_measurement_of_the_dense_model(built: Built) -> None:
    model = TFLiteModel.from_path(built.float32)
    assert model.recipe == "tflite"
    assert model.variant == "default"
    assert TFLiteModel.from_path(built.float32, variant="int8").variant == "int8"
    measurement = measure_static(model)
    assert measurement.ops == {"FULLY_CONNECTED": 2}
    assert len(measurement.subgraphs) == 1
    subgraph = measurement.subgraphs[0]
    assert subgraph["index"] == 0
    assert subgraph["operators"] == 2
    assert subgraph["tensors"] == len(interpreter(built.float32).get_tensor_details())
    assert measurement.inputs[0]["shape"] == [1, 8]
    assert measurement.inputs[0]["shape_signature"] == [-1, 8]
    assert measurement.outputs[0]["shape"] == [1, 4]
    assert measurement.inputs[0]["dtype"] == "float32"
    assert measurement.inputs[0]["scale"] is None
    assert measurement.inputs[0]["zero_point"] is None


def test_measurement_is_plain_json(built: Built) -> None:
    for path in model_paths(built):
        measurement = measure_static(TFLiteModel.from_path(path))
        document = measurement.to_json()
        assert json.loads(json.dumps(document)) == document
        assert Measurement.from_json(document) == measurement  # the report reads it back typed


def test_conv_model_ops(built: Built) -> None:
    ops = measure_static(TFLiteModel.from_path(built.conv)).ops
    assert ops["CONV_2D"] == 1
    assert ops["MAX_POOL_2D"] == 1
    assert ops["FULLY_CONNECTED"] == 1


def test_ops_match_the_interpreter(built: Built) -> None:
    for path in model_paths(built):
        measurement = measure_static(TFLiteModel.from_path(path))
        it = interpreter(path)
        expected = Counter(op["op_name"] for op in it._get_ops_details())
        assert measurement.ops == dict(expected), path.name
        assert sum(s["operators"] for s in measurement.subgraphs) == sum(expected.values())


def _io_matches(view_details: list[dict[str, Any]], details: list[dict[str, Any]]) -> None:
    import numpy as np

    assert len(view_details) == len(details)
    for ours, theirs in zip(view_details, details, strict=True):
        assert ours["name"] == theirs["name"]
        assert ours["shape"] == theirs["shape"].tolist()
        assert ours["shape_signature"] == theirs["shape_signature"].tolist()
        assert ours["dtype"] == np.dtype(theirs["dtype"]).name
        scale, zero_point = theirs["quantization"]
        if scale == 0.0:
            assert ours["scale"] is None
            assert ours["zero_point"] is None
        else:
            assert ours["scale"] == pytest.approx(scale, rel=1e-6)
            assert ours["zero_point"] == zero_point


def test_io_matches_the_interpreter(built: Built) -> None:
    for path in model_paths(built):
        measurement = measure_static(TFLiteModel.from_path(path))
        it = interpreter(path)
        _io_matches(measurement.inputs, it.get_input_details())
        _io_matches(measurement.outputs, it.get_output_details())


def test_int8_io_quantization(built: Built) -> None:
    measurement = measure_static(TFLiteModel.from_path(built.int8))
    (inp,) = measurement.inputs
    (out,) = measurement.outputs
    assert inp["dtype"] == out["dtype"] == "int8"
    assert inp["scale"] > 0 and out["scale"] > 0
    assert -128 <= inp["zero_point"] <= 127
    assert measurement.size_bytes < os.path.getsize(built.float32) * 2


def test_view_of_bytes_without_a_path(built: Built) -> None:
    view = FlatbufferView(built.float32.read_bytes())
    view.validate()
    assert view.ops == {"FULLY_CONNECTED": 2}


# --- bad model files ---------------------------------------------------------------------------


def _bad_files(tmp_path: Path, good: bytes) -> dict[str, Path]:
    files: dict[str, bytes] = {
        "empty": b"",
        "text": b"this is a text file, not a model\n" * 20,
        "truncated": good[: len(good) // 2],
        "header-only": good[:8],
        "random": random.Random(0).randbytes(4096),
    }
    noisy = bytearray(random.Random(1).randbytes(4096))
    noisy[4:8] = b"TFL3"  # the identifier alone does not make a model
    files["random-with-identifier"] = bytes(noisy)
    paths = {name: tmp_path / f"{name}.tflite" for name in files}
    for name, content in files.items():
        paths[name].write_bytes(content)
    keras_zip = tmp_path / "keras.tflite"
    with zipfile.ZipFile(keras_zip, "w") as archive:
        archive.writestr("config.json", "{}")
    paths["keras-zip"] = keras_zip
    return paths


def test_bad_files_raise_model_error(built: Built, tmp_path: Path) -> None:
    good = built.float32.read_bytes()
    for name, path in _bad_files(tmp_path, good).items():
        with pytest.raises(ModelError) as info:
            TFLiteModel.from_path(path)
        message = str(info.value)
        assert str(path) in message, name
        assert "not a TFLite model" in message or "corrupt" in message, (name, message)
        assert "Traceback" not in message


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_truncated_models_are_reported(built: Built, tmp_path: Path, fraction: float) -> None:
    for source in model_paths(built):
        content = source.read_bytes()
        path = tmp_path / source.name
        path.write_bytes(content[: int(len(content) * fraction)])
        with pytest.raises(ModelError, match=r"corrupt|not a TFLite model") as info:
            TFLiteModel.from_path(path)
        assert str(path) in str(info.value)


def test_random_bytes_with_identifier_never_escape_as_other_errors() -> None:
    rng = random.Random(2)
    for _ in range(200):
        data = bytearray(rng.randbytes(rng.randrange(8, 1024)))
        data[4:8] = b"TFL3"
        with pytest.raises(ModelError, match=r"<noise>: (corrupt|not a TFLite model)"):
            FlatbufferView(bytes(data), origin="<noise>").validate()


def test_directory_and_missing_file(tmp_path: Path) -> None:
    directory = tmp_path / "saved_model.tflite"
    directory.mkdir()
    with pytest.raises(ModelError) as info:
        TFLiteModel.from_path(directory)
    assert str(directory) in str(info.value)
    assert "directory" in str(info.value)

    missing = tmp_path / "absent.tflite"
    with pytest.raises(ModelError) as info:
        TFLiteModel.from_path(missing)
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


def test_measure_static_validates_models_built_in_memory(tmp_path: Path) -> None:
    model = TFLiteModel(b"garbage!" * 4, tmp_path / "mem.tflite", recipe="float32",
                        variant="float32", source="memory")
    with pytest.raises(ModelError, match="not a TFLite model"):
        measure_static(model)


# --- verdicts.judge ------------------------------------------------------------------------------


def _variant(tmp_path: Path, text: str, name: str = "v") -> Any:
    path = tmp_path / "budget.toml"
    path.write_text(text)
    return load(path).variant(name)


def test_size_within_and_over_budget(built: Built, tmp_path: Path) -> None:
    measurement = measure_static(TFLiteModel.from_path(built.float32))
    size, gz = measurement.size_bytes, measurement.gzip_bytes

    within = _variant(tmp_path, f"[variants.v]\nsize = {{ max = {size}, max_gzip = {gz} }}\n")
    checks = verdicts.judge(measurement, within)
    assert [(c.metric, c.measured, c.budget, c.verdict, c.unit) for c in checks] == [
        ("size.max", size, size, "pass", "bytes"),
        ("size.max_gzip", gz, gz, "pass", "bytes"),
    ]
    assert overall(checks) == "pass"

    over = _variant(tmp_path, f"[variants.v]\nsize = {{ max = {size - 1}, max_gzip = {gz} }}\n")
    checks = verdicts.judge(measurement, over)
    assert [(c.metric, c.measured, c.budget, c.verdict) for c in checks] == [
        ("size.max", size, size - 1, "fail"),
        ("size.max_gzip", gz, gz, "pass"),
    ]
    assert overall(checks) == "fail"
    assert checks[0].to_json()["verdict"] == "fail"
    assert json.loads(json.dumps(checks[0].to_json()))["measured"] == size


def test_size_with_units(built: Built, tmp_path: Path) -> None:
    measurement = measure_static(TFLiteModel.from_path(built.float32))
    assert measurement.size_bytes < 1024 * 1024
    mib = _variant(tmp_path, '[variants.v]\nsize = { max = "1 MiB" }\n')
    checks = verdicts.judge(measurement, mib)
    assert [(c.metric, c.budget, c.verdict) for c in checks] == [("size.max", 1048576, "pass")]
    kb = _variant(tmp_path, '[variants.v]\nsize = { max = "1 KB" }\n')
    checks = verdicts.judge(measurement, kb)
    assert [(c.metric, c.budget, c.verdict) for c in checks] == [("size.max", 1000, "fail")]


def test_accuracy_budget_without_data_is_an_error_not_a_silent_pass(built: Built, tmp_path: Path) -> None:
    measurement = measure_static(TFLiteModel.from_path(built.float32))
    variant = _variant(tmp_path, '[variants.v]\nsize = { max = "1 MiB" }\n'
                                 '[variants.v.accuracy]\nmetric = "top1"\nmin = 0.9\n')
    checks = verdicts.judge(measurement, variant)
    by_metric = {c.metric: c for c in checks}
    assert by_metric["size.max"].verdict == "pass"
    assert by_metric["accuracy.min"].verdict == "error"
    assert "needs eval_data" in by_metric["accuracy.min"].reason
    assert overall(checks) == "error"


def test_runtime_budgets_without_runtime_are_skipped_not_passed(built: Built, tmp_path: Path) -> None:
    measurement = measure_static(TFLiteModel.from_path(built.float32))
    variant = _variant(tmp_path, '[variants.v.latency.xnnpack]\nmedian = "1 ms"\n')
    checks = verdicts.judge(measurement, variant,
                            context=verdicts.Context(runtime_off="runtime measurement off"))
    assert [(c.metric, c.verdict, c.reason) for c in checks] == [
        ("latency.xnnpack.median", "skip", "runtime measurement off")]
    assert overall(checks) == "skip"


def test_nothing_judged_is_a_skip_never_a_pass() -> None:
    assert overall([]) == "skip"


# --- the CLI -----------------------------------------------------------------------------------


def _budget(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dense.toml"
    path.write_text(text)
    return path


def test_cli_check_within_budget(built: Built, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    size = os.path.getsize(built.float32)
    budget = _budget(tmp_path, f"[variants.float32]\nsize = {{ max = {size} }}\n")
    capsys.readouterr()
    assert cli.main(["check", str(built.float32), "--budget", str(budget),
                     "--variant", "float32"]) == 0
    out = capsys.readouterr().out
    assert "size.max" in out
    assert "pass" in out
    assert "dense [float32]: pass" in out


def test_cli_check_over_budget(built: Built, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    size = os.path.getsize(built.float32)
    budget = _budget(tmp_path, f"[variants.float32]\nsize = {{ max = {size - 10} }}\n")
    capsys.readouterr()
    assert cli.main(["check", str(built.float32), "--budget", str(budget),
                     "--variant", "float32"]) == 1
    out = capsys.readouterr().out
    assert "fail" in out
    assert "dense [float32]: fail" in out


def test_cli_check_accuracy_without_data_is_not_checked(built: Built, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    budget = _budget(tmp_path, '[variants.v.accuracy]\nmetric = "top1"\nmin = 0.9\n')
    capsys.readouterr()
    assert cli.main(["check", str(built.float32), "--budget", str(budget), "--variant", "v"]) == 0
    out = capsys.readouterr().out
    assert "not checked (needs data)" in out and "v]: skip" in out


def test_cli_check_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budget = _budget(tmp_path, '[variants.v]\nsize = { max = "1 KiB" }\n')
    missing = tmp_path / "absent.tflite"
    capsys.readouterr()
    assert cli.main(["check", str(missing), "--budget", str(budget), "--variant", "v"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err
    assert "Traceback" not in err


def test_cli_check_invalid_budget(built: Built, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    budget = _budget(tmp_path, '[variants.v]\nsize = { max = "12 kb" }\n')
    capsys.readouterr()
    assert cli.main(["check", str(built.float32), "--budget", str(budget), "--variant", "v"]) == 2
    err = capsys.readouterr().err
    assert str(budget) in err
    assert "variants.v.size.max" in err


def test_cli_check_missing_budget_and_unknown_variant(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.toml"
    capsys.readouterr()
    assert cli.main(["check", str(built.float32), "--budget", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err

    budget = _budget(tmp_path, '[variants.int8]\nsize = { max = "1 KiB" }\n')
    assert cli.main(["check", str(built.float32), "--budget", str(budget),
                     "--variant", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "int8" in err


def test_cli_check_corrupt_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "text.tflite"
    model.write_text("not a model at all")
    budget = _budget(tmp_path, '[variants.v]\nsize = { max = "1 KiB" }\n')
    capsys.readouterr()
    assert cli.main(["check", str(model), "--budget", str(budget), "--variant", "v"]) == 2
    assert "not a TFLite model" in capsys.readouterr().err


def test_cli_measure_json(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli.main(["measure", str(built.float32), "--json"]) == 0
    measurement = json.loads(capsys.readouterr().out)
    assert measurement["size_bytes"] == os.path.getsize(built.float32)
    assert measurement["gzip_bytes"] == len(gzip.compress(built.float32.read_bytes(), 9, mtime=0))
    assert measurement["ops"] == {"FULLY_CONNECTED": 2}


def test_cli_measure_table(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli.main(["measure", str(built.float32)]) == 0
    out = capsys.readouterr().out
    assert "FULLY_CONNECTED x2" in out
    assert "gzip" in out


def test_cli_measure_bad_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    capsys.readouterr()
    assert cli.main(["measure", str(empty), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(empty) in captured.err
