"""Instructions per invoke counted under valgrind's callgrind (measure/cost.py): the count repeats
across runs, grows with the work, names the kernel that did it, and never reads 0 as a count.

Four valgrind runs in all, and a fifth cut at 2 s (Python's start-up under callgrind takes
7-10 s). They skip
without valgrind, unless PYTEST_TFLITE_REQUIRE_VALGRIND=1 (set by ``.ci/run``, which installs
it): then a missing valgrind fails. The parser's tests run everywhere, on hand-written files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_tflite.errors import CostUnavailable, ModelError
from pytest_tflite.measure.cost import (
    FORMULA,
    SYMBOL,
    Profile,
    counted_invokes,
    measure_cost,
    parse_callgrind,
    split_symbol,
)
from pytest_tflite.results import Cost
from pytest_tflite.settings import RuntimeSettings
from tests.helpers.models import dense_model

REQUIRE = "PYTEST_TFLITE_REQUIRE_VALGRIND"
INPUTS = 256
NARROW, WIDE = 256, 512  # FULLY_CONNECTED [1, 256] -> [1, units]: WIDE does twice the MACs


def _needs_valgrind() -> None:
    if shutil.which("valgrind") is None:
        message = "valgrind is not installed (apt-get install valgrind)"
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{message}; {REQUIRE}=1 asks for it", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cost")
    paths = {}
    for name, units in (("narrow", NARROW), ("wide", WIDE)):
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(dense_model(units, inputs=INPUTS))
    return paths


@pytest.fixture(scope="module")
def narrow_twice(models: dict[str, Path]) -> tuple[Cost, Cost]:
    """The narrow model counted in two processes: two counted invokes, then one."""
    _needs_valgrind()
    return (measure_cost(models["narrow"], "xnnpack", RuntimeSettings(), invokes=2),
            measure_cost(models["narrow"], "xnnpack", RuntimeSettings(), invokes=1))


def test_the_count_repeats_across_runs(narrow_twice: tuple[Cost, Cost]) -> None:
    # Exact in practice (the invoke's instructions do not depend on time or load); the bound is
    # the 0.001%, for the few instructions glibc's locks may vary by between processes.
    first, second = narrow_twice
    assert first.invokes == 2 and second.invokes == 1
    assert first.instructions > 0
    assert abs(first.instructions - second.instructions) <= 1e-5 * first.instructions
    assert first.fingerprint == second.fingerprint


def test_the_kernel_that_did_the_work_is_named(narrow_twice: tuple[Cost, Cost]) -> None:
    cost = narrow_twice[0]
    top = cost.top_functions[0]
    # XNNPACK's f32 GEMM micro-kernel does the 256x256 multiply-adds: most of the invoke.
    assert top["name"].startswith("xnn_f32_gemm"), cost.top_functions
    assert top["share"] > 0.5
    assert sum(f["share"] for f in cost.top_functions) <= 1.0 + 1e-9
    assert cost.symbol == SYMBOL and cost.formula == FORMULA
    # The formula on the per-invoke means, each rounded once (hence the slack of half a unit).
    formula = cost.instructions + 10 * cost.l1_misses + 100 * cost.ll_misses
    assert cost.l1_misses > 0 and abs(cost.estimated_cycles - formula) <= 0.5 + 5 + 50
    # Seen from inside valgrind: its CPU has AVX2 and FMA3 but never AVX-512.
    assert "AVX2" in cost.fingerprint["isa"] and "AVX512F" not in cost.fingerprint["isa"]
    assert cost.fingerprint["threads"] == 1 and cost.fingerprint["inputs"] == "random (seed 0)"
    assert cost.cache == {"I1": "32768,8,64", "D1": "32768,8,64", "LL": "8388608,16,64"}


def test_the_count_grows_with_the_work(models: dict[str, Path],
                                       narrow_twice: tuple[Cost, Cost]) -> None:
    wide = measure_cost(models["wide"], "xnnpack", RuntimeSettings())
    ratio = wide.instructions / narrow_twice[0].instructions
    # Twice the multiply-adds; the invoke's fixed overhead (~1.5k of ~39k) keeps it below 2.
    assert 1.85 < ratio < 2.05, (wide.instructions, narrow_twice[0].instructions)


def test_a_symbol_this_build_lacks_is_an_error_naming_it(models: dict[str, Path]) -> None:
    _needs_valgrind()
    with pytest.raises(ModelError, match=r"'\*NoSuchWrapper::Invoke\*'.*never a pass"):
        measure_cost(models["narrow"], "xnnpack", RuntimeSettings(),
                     symbol="*NoSuchWrapper::Invoke*")


def test_without_valgrind_the_reason_names_the_package(models: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no valgrind on it
    with pytest.raises(CostUnavailable) as raised:
        measure_cost(models["narrow"], "xnnpack", RuntimeSettings())
    assert "apt-get install valgrind" in str(raised.value)
    assert CostUnavailable.is_missing(str(raised.value))


@pytest.mark.parametrize("delegate", ["gpu", "npu", "external:/lib/x.so", "runner:phone"])
def test_delegates_valgrind_cannot_see_are_refused(models: dict[str, Path],
                                                   delegate: str) -> None:
    with pytest.raises(CostUnavailable, match="valgrind") as raised:
        measure_cost(models["narrow"], delegate, RuntimeSettings())
    assert not CostUnavailable.is_missing(str(raised.value))


# A callgrind file as valgrind 3.19 writes it, cut down: compressed names, a call whose
# inclusive cost (the line after calls=) must not count as the caller's own.
DUMP = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
part: 3

positions: line
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: 1000 1 1 1 1 1 1 1 1

ob=(1) /lib/liblitert.so
fl=(1) ???
fn=(10) caller
0 40 0 0 2
cfn=(11) xnn_kernel
calls=1 0
0 950 0 0 1 3
+2 5

fn=(11)
0 950 0 0 1 3 0 0 0 1
fn=(10)
* 5

totals: 1000 0 0 3 6 0 0 0 1
"""


def test_the_parser_counts_each_function_by_its_own_instructions() -> None:
    profile = parse_callgrind(DUMP)
    assert profile.part == 3
    assert profile.self_instructions == {"caller": 50, "xnn_kernel": 950}
    assert profile.totals == {"Ir": 1000, "Dr": 0, "Dw": 0, "I1mr": 3, "D1mr": 6, "D1mw": 0,
                              "ILmr": 0, "DLmr": 0, "DLmw": 1}


def test_invokes_are_told_apart_by_the_dumps() -> None:
    def dump(part: int, ir: int) -> Profile:
        return Profile(part, {"Ir": ir, "I1mr": 1, "DLmr": 2}, {"k": ir})

    # Dumped before each invoke: part 1 is the start-up, 2 the warm-up, the last the exit.
    counted = counted_invokes([dump(4, 100), dump(1, 0), dump(3, 100), dump(2, 130)], SYMBOL,
                              warmup=1, invokes=2)
    assert [p.part for p in counted] == [3, 4]
    with pytest.raises(ModelError, match="counted 0 instructions"):
        counted_invokes([dump(1, 0), dump(2, 0)], SYMBOL, warmup=1, invokes=1)
    with pytest.raises(ModelError, match="split the run into 1"):
        counted_invokes([dump(1, 0), dump(2, 300)], SYMBOL, warmup=1, invokes=2)


def test_the_split_pattern_differs_from_the_toggle_and_matches_the_same_calls() -> None:
    # callgrind keeps one setting per pattern string: the same string for both would drop one.
    assert split_symbol(SYMBOL) == "*::InterpreterWrapper::Invoke*" != SYMBOL
    assert split_symbol("LiteRtRunCompiledModel") == "*LiteRtRunCompiledModel"


def test_the_engine_counts_what_cost_keys_and_regression_ask(tmp_path: Path) -> None:
    from pytest_tflite import engine
    from pytest_tflite.budget import load

    path = tmp_path / "model.toml"
    path.write_text('[regression]\ninstructions = "0.5%"\n\n'
                    '[variants.default.cost.builtin]\ninstructions = "40k"\n\n'
                    '[variants.default.latency.reference]\nmedian = "1 s"\n')
    budget = load(path)
    variant = budget.variant("default")

    def counted(settings: engine.Settings) -> list[str]:
        return engine.cost_delegates(budget, variant, settings,
                                     engine.runtime_settings(budget, variant, settings))

    # cost.builtin by name; [regression] instructions: every countable delegate measured.
    assert counted(engine.Settings()) == ["builtin", "reference"]
    assert counted(engine.Settings(delegate_filter=("reference",))) == ["reference"]
    assert counted(engine.Settings(runtime_off="--tflite-no-runtime")) == []


def test_a_count_past_the_timeout_is_killed_and_says_so(models: dict[str, Path]) -> None:
    _needs_valgrind()
    # Python's start-up alone takes seconds under callgrind: 2 s never reaches the invoke.
    with pytest.raises(ModelError, match=r"timed out after 2 s .*runtime\.timeout"):
        measure_cost(models["narrow"], "xnnpack", RuntimeSettings(timeout=2))


def test_measure_cost_prints_the_figures_and_the_top_functions(tmp_path: Path) -> None:
    from pytest_tflite.cli import cost_lines
    from pytest_tflite.measure.static import measure_static
    from pytest_tflite.model import TFLiteModel
    from pytest_tflite.results import CostFunction, DelegateResult

    (tmp_path / "m.tflite").write_bytes(dense_model(4))
    measurement = measure_static(TFLiteModel.from_path(tmp_path / "m.tflite"))
    cost = Cost(instructions=38_688, estimated_cycles=82_038, l1_misses=4_335, ll_misses=0,
                invokes=1, formula=FORMULA,
                top_functions=[CostFunction(name="xnn_f32_gemm_x", instructions=37_135,
                                            share=0.96)])
    measurement.delegates = {"xnnpack": DelegateResult("ok", cost=cost),
                             "builtin": DelegateResult("ok")}
    text = "\n".join(cost_lines(measurement))
    assert "xnnpack cost per invoke (1 counted after a warm-up, under valgrind): 38,688 " \
           "instructions, 82,038 estimated cycles, 4,335 L1 misses, 0 LL misses" in text
    assert "xnn_f32_gemm_x" in text and "37,135" in text and "96.0%" in text
    assert "builtin" not in text  # not counted: no line
