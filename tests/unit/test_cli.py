"""``tflite-budget`` end to end: measure, check, init, schema and usage errors.

The CLI runs in-process through ``cli.main`` (the interpreter still runs in a worker subprocess),
plus one run of the installed console script. One small CNN is converted once per module.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from pytest_tflite import cli
from pytest_tflite.units import parse_size
from tests.helpers.cli import run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LATENCY_KEYS = {"median", "p90", "p99", "min", "mean", "std", "n", "samples"}
# Budgets measured with a short protocol: check stays fast; the CLI's own measure and init use
# the default protocol (warm-up 0.5 s + timing 1 s per delegate).
FAST_RUNTIME = """
[defaults.runtime]
delegates = ["xnnpack", "builtin"]
warmup = { min_runs = 1, min_seconds = 0 }
timing = { min_runs = 20, min_seconds = 0.05 }
"""
WITHIN_BUDGET = FAST_RUNTIME + """
[variants.default]
size = { max = "1 MiB", max_gzip = "1 MiB" }

[variants.default.memory]
planned_arena = "1 MiB"

[variants.default.latency.xnnpack]
median = "1 s"
p90 = "1 s"

[variants.default.latency.builtin]
median = "1 s"

[variants.default.delegation.xnnpack]
min_fraction = 1.0
max_partitions = 1
"""


def _budget(tmp_path: Path, text: str, name: str = "cnn.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _rows(out: str) -> dict[str, str]:
    """``{metric: verdict}`` from the check table."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[-1] in ("pass", "fail", "skip", "error") and "." in parts[0]:
            rows[parts[0]] = parts[-1]
    return rows


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pytest_tflite
    from tests.helpers.models import tf_keras_cnn

    folder = tmp_path_factory.mktemp("cli-model")
    model = pytest_tflite.convert(tf_keras_cnn(), output_dir=folder)
    path = folder / "cnn.tflite"
    shutil.copyfile(model.path, path)
    return path


@pytest.fixture(scope="module")
def measured(cnn: Path) -> tuple[int, str, str]:
    """``measure --json`` with the default delegates and protocol, once per module."""
    return run_cli("measure", cnn, "--json")


@pytest.fixture(scope="module")
def unavailable(cnn: Path) -> tuple[int, str, str]:
    """``measure --json`` under the GPU accelerator and a delegate library that does not exist."""
    return run_cli("measure", cnn, "--delegate", "gpu", "--delegate", "external:/nonexistent/libx.so",
                 "--json")


@pytest.fixture
def gpu_absent(unavailable: tuple[int, str, str]) -> None:
    code, out, err = unavailable
    assert code == 0, err
    if json.loads(out)["delegates"]["gpu"]["status"] == "ok":
        pytest.skip("this machine has a GPU accelerator")


# ---------------------------------------------------------------- measure


def test_measure_json_default_delegates(cnn: Path, measured: tuple[int, str, str]) -> None:
    code, out, err = measured
    assert code == 0, err
    assert err == ""
    m = json.loads(out)
    assert m["size_bytes"] == cnn.stat().st_size
    assert 0 < m["gzip_bytes"] <= m["size_bytes"] + 64
    assert m["ops"] == {"CONV_2D": 1, "MAX_POOL_2D": 1, "RESHAPE": 1, "FULLY_CONNECTED": 1}
    assert m["inputs"][0]["shape"] == [1, 12, 12, 1]
    assert m["inputs"][0]["dtype"] == "float32"
    assert m["outputs"][0]["shape"] == [1, 10]
    assert m["planned_arena_bytes"] > 0
    assert m["subgraphs"][0]["planned_arena_bytes"] == m["planned_arena_bytes"]
    assert list(m["delegates"]) == ["xnnpack", "builtin"]
    total = sum(m["ops"].values())
    for name, found in m["delegates"].items():
        assert found["status"] == "ok", (name, found["reason"])
        assert found["reason"] == ""
        assert found["threads"] == 1
        latency = found["latency_ms"]
        assert set(latency) == LATENCY_KEYS
        assert latency["n"] >= 50
        assert len(latency["samples"]) == min(latency["n"], 1000)  # the raw runs, for plots
        assert 0 < latency["min"] <= latency["median"] <= latency["p90"] <= latency["p99"]
        assert latency["mean"] > 0 and latency["std"] >= 0
        assert found["init_ms"] > 0
        assert found["first_invoke_ms"] > 0
        assert found["cpu_ms"] > 0
        assert found["peak_rss_bytes"] > 0
        assert found["total_nodes"] == total
    xnnpack, builtin = m["delegates"]["xnnpack"], m["delegates"]["builtin"]
    assert xnnpack["delegated_nodes"] == xnnpack["total_nodes"]
    assert xnnpack["partitions"] == 1
    assert xnnpack["fallback_ops"] == {}
    assert builtin["delegated_nodes"] == 0
    assert builtin["partitions"] == 0
    assert builtin["fallback_ops"] == m["ops"]
    assert builtin["arena_bytes"] > 0


def test_measure_unavailable_delegates_give_the_loaders_words(
    unavailable: tuple[int, str, str], gpu_absent: None
) -> None:
    code, out, err = unavailable
    assert code == 0, err
    delegates = json.loads(out)["delegates"]
    gpu, external = delegates["gpu"], delegates["external:/nonexistent/libx.so"]
    assert gpu["status"] == "unavailable"
    assert gpu["latency_ms"] is None
    # What native stderr said, not a canned sentence: the loader names what it lacked, with the
    # library or the source file it failed in.
    assert re.search(r"vulkan|webgpu|opencl|adapter", gpu["reason"], re.IGNORECASE), gpu["reason"]
    assert re.search(r"lib\w+\.so|\.cc:\d+|No adapters", gpu["reason"]), gpu["reason"]
    assert external["status"] == "unavailable"
    assert "/nonexistent/libx.so" in external["reason"]
    assert re.search(r"cannot open shared object|No such file", external["reason"]), external


def test_measure_text_output(cnn: Path) -> None:
    code, out, err = run_cli("measure", cnn, "--delegate", "external:/nonexistent/libx.so")
    assert code == 0, err
    size = cnn.stat().st_size
    assert re.search(rf"^size\s+.*\({size} B\)$", out, re.MULTILINE), out
    assert re.search(r"^ops\s+CONV_2D x1", out, re.MULTILINE), out
    assert re.search(r"^external:/nonexistent/libx.so\s+unavailable", out, re.MULTILINE), out
    assert "cannot open shared object" in out


def test_measure_missing_model(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tflite"
    code, out, err = run_cli("measure", missing, "--json")
    assert code == 2
    assert out == ""
    assert str(missing) in err and "does not exist" in err


# ---------------------------------------------------------------- check


def test_check_within_budget(cnn: Path, tmp_path: Path) -> None:
    budget = _budget(tmp_path, 'model = "cnn"\n' + WITHIN_BUDGET)
    code, out, err = run_cli("check", cnn, "--budget", budget)
    assert code == 0, out + err
    rows = _rows(out)
    assert rows == {
        "size.max": "pass", "size.max_gzip": "pass", "memory.planned_arena": "pass",
        "latency.xnnpack.median": "pass", "latency.xnnpack.p90": "pass",
        "latency.builtin.median": "pass",
        **{k: "pass" for k in rows if k.startswith("delegation.xnnpack.")},
    }
    assert any(k.startswith("delegation.xnnpack.") for k in rows), out
    assert re.search(r"^metric\s+measured\s+budget", out, re.MULTILINE)
    assert out.rstrip().splitlines()[-1] == "cnn [default]: pass"


def test_check_over_budget(cnn: Path, tmp_path: Path) -> None:
    budget = _budget(tmp_path, """
        [variants.default]
        size = { max = 100 }

        [variants.default.latency.builtin]
        median = "1 s"
    """)
    code, out, _ = run_cli("check", cnn, "--budget", budget, "--no-runtime")
    assert code == 1, out
    rows = _rows(out)
    assert rows["size.max"] == "fail"
    assert rows["latency.builtin.median"] == "skip"
    over = cnn.stat().st_size - 100
    assert f"+{over:,} B" in out, out
    # The model's name defaults to the budget file's stem.
    assert out.rstrip().splitlines()[-1] == "cnn [default]: fail"


def test_check_missing_delegate_skips_unless_required(cnn: Path, tmp_path: Path,
                                                      gpu_absent: None) -> None:
    budget = _budget(tmp_path, FAST_RUNTIME.replace('"xnnpack", "builtin"', "") + """
        [variants.default]
        size = { max = "1 MiB" }

        [variants.default.latency.gpu]
        median = "1 s"
    """)
    code, out, _ = run_cli("check", cnn, "--budget", budget)
    assert code == 0, out
    assert _rows(out) == {"size.max": "pass", "latency.gpu.median": "skip"}
    assert re.search(r"vulkan|webgpu|adapter", out, re.IGNORECASE), out
    code, out, _ = run_cli("check", cnn, "--budget", budget, "--require-delegates")
    assert code == 1, out
    assert _rows(out)["latency.gpu.median"] == "fail"
    assert out.rstrip().endswith(": fail")


@pytest.mark.parametrize("case", ["missing model", "missing budget", "not toml", "unknown key",
                                  "zero size", "unknown variant"])
def test_check_bad_input_exits_2(cnn: Path, tmp_path: Path, case: str) -> None:
    good = 'model = "cnn"\n[variants.default]\nsize = { max = "1 MiB" }\n'
    model, variant = cnn, []
    budget = tmp_path / "cnn.toml"
    expected: tuple[str, ...]
    if case == "missing model":
        budget.write_text(good)
        model = tmp_path / "absent.tflite"
        expected = (str(model), "does not exist")
    elif case == "missing budget":
        expected = (str(budget), "does not exist")
    elif case == "not toml":
        budget.write_text("[variants.default\nsize = ")
        expected = (str(budget), "invalid TOML")
    elif case == "unknown key":
        budget.write_text(good + "[variants.default.latency.xnnpak]\nmedian = \"1 ms\"\n")
        expected = (str(budget), "latency.xnnpak", "unknown delegate")
    elif case == "zero size":
        budget.write_text(good.replace('"1 MiB"', "0"))
        expected = (str(budget), "size.max")
    else:
        budget.write_text(good)
        variant = ["--variant", "int8"]
        expected = (str(budget), "[variants.int8]", "default")
    code, out, err = run_cli("check", model, "--budget", budget, *variant)
    assert code == 2, out + err
    assert out == ""
    assert err.startswith("tflite-budget: error: ")
    for words in expected:
        assert words in err, (words, err)


# ---------------------------------------------------------------- init


def test_init_writes_a_budget_that_check_passes(cnn: Path, tmp_path: Path) -> None:
    from pytest_tflite.budget import load

    code, out, err = run_cli("init", cnn, "--delegate", "builtin", "--headroom", "100%")
    assert code == 0, err
    path = tmp_path / "init.toml"
    path.write_text(out)
    data = tomllib.loads(out)
    assert data["model"] == "cnn"
    variant = data["variants"]["default"]
    size = cnn.stat().st_size
    # 100% headroom, rounded up to a readable size: at most 2% more.
    assert 2 * size <= parse_size(variant["size"]["max"]) <= (2 * size + 1) * 1.02
    assert data["defaults"]["runtime"]["delegates"] == ["builtin"]
    assert set(variant["latency"]) == {"builtin"}
    assert {"median", "p90"} <= set(variant["latency"]["builtin"])
    budget = load(path)
    assert budget.model == "cnn"
    assert list(budget.spec.variants) == ["default"]
    code, out, err = run_cli("check", cnn, "--budget", path)
    assert code == 0, out + err
    rows = _rows(out)
    assert {"size.max", "size.max_gzip", "memory.planned_arena", "latency.builtin.median",
            "latency.builtin.p90"} <= set(rows)
    # [regression] latency waits for a baseline; every limit passes.
    assert rows.pop("regression.latency") == "skip"
    assert set(rows.values()) == {"pass"}, out
    assert out.rstrip().splitlines()[-1] == "cnn [default]: pass"


def test_init_missing_model(tmp_path: Path) -> None:
    code, out, err = run_cli("init", tmp_path / "absent.tflite", "--delegate", "builtin")
    assert code == 2 and out == ""
    assert "absent.tflite" in err and "does not exist" in err


@pytest.mark.parametrize("headroom", ["abc", "", "50", "-5%"])
def test_init_bad_headroom_exits_2(cnn: Path, headroom: str) -> None:
    code, out, err = run_cli("init", cnn, "--delegate", "builtin", f"--headroom={headroom}")
    assert code == 2 and out == ""
    assert "headroom" in err


# ---------------------------------------------------------------- schema and usage


def test_schema_prints_json_schema() -> None:
    code, out, err = run_cli("schema")
    assert code == 0, err
    schema = json.loads(out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"model", "variants", "defaults"} <= set(schema["properties"])


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["check", "model.tflite"], ["measure"], ["measure", "m.tflite", "--threads", "x"],
])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    assert code == 2
    assert err.getvalue().startswith("usage: tflite-budget")


def test_unknown_delegate_exits_2(cnn: Path) -> None:
    code, out, err = run_cli("measure", cnn, "--delegate", "xnnpak")
    assert code == 2 and out == ""
    assert "unknown delegate 'xnnpak'" in err


# ---------------------------------------------------------------- the ini file, as pytest reads it

INI_KEYS = {"tflite_threads": "3", "tflite_timeout": "12.5", "tflite_max_memory": "1 GiB",
            "tflite_delegates": "reference"}
FROM_INI = {"threads": 3, "timeout": 12.5, "max_memory": 2**30, "delegates": ("reference",)}
BUILT_IN = {"threads": 1, "timeout": 300.0, "max_memory": None, "delegates": ()}


def _section(header: str, quote: str = "") -> str:
    return header + "\n" + "".join(f"{key} = {quote}{value}{quote}\n"
                                    for key, value in INI_KEYS.items())


# Layout -> (files relative to the project root, the directory the run starts in). Each layout
# is one of pytest's rules: the file kinds it reads, which file wins, how far up it looks.
LAYOUTS: dict[str, tuple[dict[str, str], str]] = {
    "pytest.ini": ({"pytest.ini": _section("[pytest]")}, "."),
    "pyproject.toml": ({"pyproject.toml": _section("[tool.pytest.ini_options]", '"')}, "."),
    "tox.ini": ({"tox.ini": _section("[pytest]")}, "."),
    "setup.cfg": ({"setup.cfg": _section("[tool:pytest]")}, "."),
    # pytest.ini beats tox.ini in one folder; a setup.cfg without a pytest section is skipped on
    # the way up from a nested folder.
    "nested, first file wins": ({"pytest.ini": _section("[pytest]"),
                                 "tox.ini": "[pytest]\ntflite_threads = 7\n",
                                 "pkg/setup.cfg": "[metadata]\nname = x\n"}, "pkg/sub"),
    "none": ({}, "."),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_cli_reads_the_ini_file_pytest_reads(pytester: pytest.Pytester, layout: str) -> None:
    """The CLI finds and reads the configuration file by pytest's own discovery; pinned here on
    this pytest and, in .ci/run's floor run, on pytest 8.0 (the private code differs)."""
    from dataclasses import asdict

    from pytest_tflite.arguments import ini_file_layer
    from pytest_tflite.plugin import PLUGIN_KEY
    from pytest_tflite.settings import resolve_runtime

    files, start = LAYOUTS[layout]
    for name, text in files.items():
        (pytester.path / name).parent.mkdir(parents=True, exist_ok=True)
        (pytester.path / name).write_text(text)
    (pytester.path / start).mkdir(parents=True, exist_ok=True)
    seen = []

    class Recorder:
        def pytest_sessionfinish(self, session: pytest.Session) -> None:
            seen.append(session.config.stash[PLUGIN_KEY].settings().runtime())

    pytester.runpytest_inprocess(start, "-p", "no:randomly", plugins=[Recorder()])
    cli_side = resolve_runtime(ini=ini_file_layer(pytester.path / start))
    assert seen == [cli_side]
    expected = BUILT_IN if layout == "none" else FROM_INI
    assert {key: asdict(cli_side)[key] for key in expected} == expected


def test_measure_reads_the_ini_file_above_the_model(tmp_path: Path) -> None:
    from tests.helpers.models import chain_model

    model = tmp_path / "models" / "relu.tflite"
    model.parent.mkdir()
    model.write_bytes(chain_model([64, 64]))
    (tmp_path / "pytest.ini").write_text("[pytest]\ntflite_threads = 2\n"
                                         "tflite_delegates = reference\n")
    code, out, err = run_cli("measure", model, "--json")
    assert code == 0, err
    delegates = json.loads(out)["delegates"]
    assert list(delegates) == ["xnnpack", "builtin", "reference"]  # the ini's, besides the defaults
    assert {found["threads"] for found in delegates.values()} == {2}
    (tmp_path / "pytest.ini").write_text("[pytest]\ntflite_threads = two\n")
    code, out, err = run_cli("measure", model)
    assert code == 2 and "pytest.ini: expected a whole number >= 1, got 'two'" in err


# ---------------------------------------------------------------- the real console script


def test_console_script_check(cnn: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("tflite-budget")
    assert script.is_file(), "the tflite-budget console script is not installed next to python"
    budget = _budget(tmp_path, WITHIN_BUDGET)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([str(script), "check", str(cnn), "--budget", str(budget)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == "cnn [default]: pass"
    assert "Traceback" not in done.stderr
