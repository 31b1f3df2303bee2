"""``tflite-budget init`` writes starter budgets that hold, and ``check`` reads their ``source``.

Models are ready ``.tflite`` files from ``tests/helpers/models`` (no conversion); runtime runs use
a short timing protocol (``BUILT_IN`` swapped for a fast one) so five runs stay quick.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_tflite import settings
from pytest_tflite.starter import readable_size, readable_time
from pytest_tflite.units import parse_size, parse_time
from tests.helpers.cli import run_cli
from tests.helpers.models import Op, Subgraph, Tensor, build_model, dense_model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UNITS, INPUTS = 64, 8
# dense_model(64): input [1, 8] and output [1, 64], float32, live at once: 32 + 256 bytes.
ARENA = 4 * INPUTS + 4 * UNITS




@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "dense.tflite"
    path.parent.mkdir()
    path.write_bytes(dense_model(UNITS, inputs=INPUTS))
    return path


@pytest.fixture
def fast_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five runs of a short protocol instead of the default 1.5 s each."""
    fast = dataclasses.replace(settings.BUILT_IN, warmup=settings.Runs(1, 0.0),
                               timing=settings.Runs(20, 0.0))
    monkeypatch.setattr(settings, "BUILT_IN", fast)


# ---------------------------------------------------------------- sizes and times


@pytest.mark.parametrize(("limit", "written"), [
    (303, "303 B"),                    # under 1 KiB: exact bytes
    (2978, "2980 B"),                  # a few KiB: 10 B steps (0.25 KiB would add 8%)
    (20 * 1024, "20 KiB"),
    (20 * 1024 + 1, "20.25 KiB"),
    (270 * 1024, "270 KiB"),
    (270 * 1024 + 1, "275 KiB"),
    (1258292, "1230 KiB"),             # 1.2 MiB: "1.2 MiB" is no whole number of bytes
    (15 * 1024**2 + 1, "15.25 MiB"),
])
def test_sizes_are_rounded_up_to_readable_figures(limit: int, written: str) -> None:
    assert readable_size(limit) == written
    assert limit <= parse_size(written) <= limit * 1.02


def test_every_readable_size_holds_the_limit_and_parses() -> None:
    for limit in [*range(1, 3000, 7), *np.geomspace(3000, 2**40, 400).astype(int).tolist()]:
        parsed = parse_size(readable_size(limit))
        assert limit <= parsed <= max(limit * 1.02, limit + 1), (limit, readable_size(limit))


@pytest.mark.parametrize(("limit_ms", "written"), [
    (0.0022301, "2.24 us"), (0.5, "500 us"), (1.2341, "1.24 ms"), (123.01, "124 ms")])
def test_times_are_rounded_up(limit_ms: float, written: str) -> None:
    assert readable_time(limit_ms) == written
    assert parse_time(written) >= limit_ms


# ---------------------------------------------------------------- what init writes


def test_init_o_writes_source_model_and_static_budgets(model: Path, tmp_path: Path) -> None:
    from pytest_tflite.budget import load

    output = tmp_path / "budgets" / "dense.toml"
    code, out, err = run_cli("init", model, "-o", output, "--no-runtime")
    assert code == 0, err
    assert "wrote" in out and str(output) in out
    text = output.read_text()
    data = tomllib.loads(text)
    assert data["model"] == "dense"
    assert data["source"] == "../models/dense.tflite"
    assert (output.parent / data["source"]).resolve() == model.resolve()
    assert "# source is relative to this file's folder." in text
    variant = data["variants"]["default"]
    size = model.stat().st_size
    assert variant["size"]["max"] == readable_size(math.ceil(size * 1.05))
    assert math.ceil(size * 1.05) <= parse_size(variant["size"]["max"]) <= size * 1.05 * 1.02 + 1
    assert variant["memory"] == {"planned_arena": readable_size(math.ceil(ARENA * 1.05))}
    assert variant["memory"]["planned_arena"] == "303 B"
    assert "sparsity" not in variant  # none of the weights is zero
    assert "latency" not in variant and "defaults" not in data
    assert data["regression"] == {"latency": "5%"}
    assert "5% headroom" in text
    assert load(output).source == model.resolve()


def test_init_to_stdout_writes_source_relative_to_the_current_directory(
        model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("init", "models/dense.tflite", "--no-runtime")
    assert code == 0, err
    data = tomllib.loads(out)
    assert data["source"] == "models/dense.tflite"
    assert "source is relative to the directory `tflite-budget init` ran in" in out
    assert not (tmp_path / "budgets").exists()


def test_init_sparsity_floor_is_below_the_measured_figure(tmp_path: Path) -> None:
    kernel = np.ones((4, 8), np.float32)
    kernel[:, :4] = 0  # half the weights are zero
    path = tmp_path / "sparse.tflite"
    path.write_bytes(build_model([Subgraph(
        [Tensor("input", [1, 8]), Tensor("dense/kernel", [4, 8], data=kernel),
         Tensor("dense/bias", [4], data=np.ones(4, np.float32)), Tensor("output", [1, 4])],
        [Op("FULLY_CONNECTED", [0, 1, 2], [3])], inputs=[0], outputs=[3])]))
    code, out, err = run_cli("init", path, "--no-runtime")
    assert code == 0, err
    # 0.5 measured; a minimum, so the 5% headroom goes down: floor(0.5 x 0.95, 2 places).
    assert tomllib.loads(out)["variants"]["default"]["sparsity"] == {"min": 0.47}


def test_init_o_refuses_an_existing_file_unless_force(model: Path, tmp_path: Path) -> None:
    output = tmp_path / "budgets" / "dense.toml"
    output.parent.mkdir()
    output.write_text("# mine\n")
    code, out, err = run_cli("init", model, "-o", output, "--no-runtime")
    assert code == 2 and out == ""
    assert f"-o {output}: the file exists; pass --force" in err
    assert output.read_text() == "# mine\n"
    code, out, err = run_cli("init", model, "-o", output, "--no-runtime", "--force")
    assert code == 0, err
    assert tomllib.loads(output.read_text())["model"] == "dense"


@pytest.mark.parametrize(("args", "words"), [
    (["-o", "budgets/x.txt"], ["must end in .toml"]),
    (["--runs", "4"], ["--runs 4", "at least 5 runs"]),
    (["--delegates", "xnnpak"], ["unknown delegate", "xnnpak"]),
    (["--delegates", "runner:bench"], ["runner:bench", "written by hand"]),
    (["--margin", "50"], ["percentage"]),
])
def test_init_bad_input_exits_2(model: Path, args: list[str], words: list[str],
                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("init", model, *args)
    assert code == 2 and out == ""
    for word in words:
        assert word in err, err
    assert not (tmp_path / "budgets").exists()


def test_a_file_name_with_quotes_and_newlines_injects_no_key(tmp_path: Path) -> None:
    path = tmp_path / 'we"ird\nsource = "x"\n[evil].tflite'
    path.write_bytes(dense_model(4))
    output = tmp_path / "b.toml"
    code, _out, err = run_cli("init", path, "-o", output, "--no-runtime")
    assert code == 0, err
    data = tomllib.loads(output.read_text())
    assert set(data) == {"model", "source", "variants", "regression"}
    assert data["model"] == path.stem
    assert (tmp_path / data["source"]).resolve() == path.resolve()


# ---------------------------------------------------------------- runtime limits


def test_runtime_limits_come_from_the_worst_p90_of_five_runs(
        model: Path, tmp_path: Path, fast_protocol: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_tflite.measure import runtime

    seen: list[dict[str, Any]] = []
    measure = runtime.measure_delegates

    def spy(*args: Any, **kwargs: Any) -> Any:
        found = measure(*args, **kwargs)
        seen.append(found)
        return found

    monkeypatch.setattr(runtime, "measure_delegates", spy)
    output = tmp_path / "dense.toml"
    code, out, err = run_cli("init", model, "-o", output, "--margin", "50%")
    assert code == 0, err
    assert len(seen) == 5 and all(list(run) == ["xnnpack"] for run in seen)
    data = tomllib.loads(output.read_text())
    assert data["defaults"]["runtime"]["delegates"] == ["xnnpack"]
    variant = data["variants"]["default"]
    assert set(variant["latency"]) == {"xnnpack"}
    worst = max(run["xnnpack"].latency_ms.p90 for run in seen)
    expected = readable_time(worst * 1.5)
    assert variant["latency"]["xnnpack"] == {"median": expected, "p90": expected}
    assert parse_time(expected) >= worst * 1.5
    arena = max(run["xnnpack"].arena_bytes for run in seen)
    assert variant["memory"]["xnnpack"] == {"arena": readable_size(math.ceil(arena * 1.5))}
    assert "peak_rss" not in output.read_text().split("[variants")[-1]  # no key, only a note
    assert variant["delegation"]["xnnpack"] == {"min_fraction": 0.95, "max_partitions": 1}
    assert "50% margin" in output.read_text()

    code, out, err = run_cli("check", "--budget", output)
    assert code == 0, out + err
    assert out.rstrip().splitlines()[-1] == "dense [default]: pass"


def test_init_delegates_writes_each_listed_delegate(model: Path, fast_protocol: None) -> None:
    code, out, err = run_cli("init", model, "--delegates", "xnnpack,builtin")
    assert code == 0, err
    data = tomllib.loads(out)
    assert data["defaults"]["runtime"]["delegates"] == ["xnnpack", "builtin"]
    assert set(data["variants"]["default"]["latency"]) == {"xnnpack", "builtin"}
    assert out.count("the worst p90 seen x (1 + a 40% margin)") == 2  # the default, written


def test_a_variant_name_that_is_no_bare_key_is_quoted(model: Path, tmp_path: Path) -> None:
    from pytest_tflite.budget import load

    output = tmp_path / "d.toml"
    code, _out, err = run_cli("init", model, "-o", output, "--no-runtime", "--variant", "int8 v.2")
    assert code == 0, err
    assert list(load(output).spec.variants) == ["int8 v.2"]


# ---------------------------------------------------------------- check without MODEL


def test_check_without_model_uses_the_files_source(model: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    budgets = tmp_path / "budgets"
    budgets.mkdir()
    size = model.stat().st_size
    ok, over = budgets / "ok.toml", budgets / "over.toml"
    ok.write_text(f'source = "../models/dense.tflite"\n[variants.default]\n'
                  f'size = {{ max = {size} }}\n')
    over.write_text(f'source = "../models/dense.tflite"\n[variants.default]\n'
                    f'size = {{ max = {size - 1} }}\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("check", "--budget", ok)
    assert code == 0, out + err
    assert out.rstrip().splitlines()[-1] == "ok [default]: pass"
    code, out, err = run_cli("check", "--budget", over)
    assert code == 1, out + err
    assert f"{size} B" in out and out.rstrip().splitlines()[-1] == "over [default]: fail"
    # The budget file's source, not the current directory: elsewhere it still finds the model.
    monkeypatch.chdir(budgets)
    assert run_cli("check", "--budget", "ok.toml")[0] == 0


def test_check_without_model_or_source_says_what_to_give(tmp_path: Path) -> None:
    budget = tmp_path / "m.toml"
    budget.write_text('[variants.default]\nsize = { max = "1 KiB" }\n')
    code, out, err = run_cli("check", "--budget", budget)
    assert code == 2 and out == ""
    assert f"{budget}: no model to check" in err
    assert "source =" in err and "check MODEL --budget" in err
