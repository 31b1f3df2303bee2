"""The plugin end to end, through pytester: markers, fixtures, budgets, reports, cache, xdist."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.models import dense_model
from tests.helpers.paths import REPOSITORY

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

MLP_BUDGET = """
    [variants.float32]
    size = { max = "64 KiB", max_gzip = "64 KiB" }

    [variants.tight]
    size = { max = 100 }
"""


def test_within_budget_passes_and_over_budget_fails_with_the_table(project):
    p = project({"mlp": MLP_BUDGET}, test_size="""
        import os, pytest

        @pytest.mark.tflite_budget("mlp")
        def test_fits(tflite_convert, tflite_budget, mlp):
            model = tflite_convert(mlp)
            entry = tflite_budget.check(model)
            assert entry["size_bytes"] == os.path.getsize(model.path) == len(model.content)
            assert [c["verdict"] for c in entry["checks"]] == ["pass", "pass"]

        @pytest.mark.tflite_budget("mlp")
        def test_too_big(tflite_convert, tflite_budget, mlp):
            model = tflite_convert(mlp, variant="tight")
            open("tight_size.txt", "w").write(str(os.path.getsize(model.path)))
            tflite_budget.check(model)
    """)
    result = p.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    size = int((p.path / "tight_size.txt").read_text())
    result.stdout.fnmatch_lines([
        "*mlp [[]tight[]] broke 1 of 1 budget(s) in *budgets/mlp.toml:",
        "*metric*measured*budget*over by / reason*verdict*",
        f"*size.max*({size} B)*100 B*{size - 100:+,} B (+{size - 100:.0f}.0%)*fail*",
    ])
    # Plugin frames are hidden: the traceback shows the test's line, not the checker's.
    assert "checker.py" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*tflite budgets*", "*mlp*float32*pass*", "*mlp*tight*fail*"])


def test_json_report_holds_one_entry_per_checked_variant(project):
    p = project({"mlp": MLP_BUDGET}, test_report="""
        import pytest

        @pytest.mark.tflite_budget("mlp")
        @pytest.mark.parametrize("variant", ["float32", "tight"])
        def test_model(tflite_convert, tflite_budget, mlp, variant):
            model = tflite_convert(mlp, variant=variant)
            open(f"{variant}.tflite", "wb").write(model.content)
            tflite_budget.check(model)
    """)
    result = p.runpytest("-p", "no:randomly", "--tflite-report=out/report.json")
    result.assert_outcomes(passed=1, failed=1)
    document = json.loads((p.path / "out" / "report.json").read_text())
    assert document["version"] == 1
    assert document["environment"]["tensorflow"]
    entries = {e["variant"]: e for e in document["entries"]}
    assert set(entries) == {"float32", "tight"}
    for variant, entry in entries.items():
        content = (p.path / f"{variant}.tflite").read_bytes()
        assert entry["test"] == f"test_report.py::test_model[{variant}]"
        assert entry["model"] == "mlp"
        assert entry["recipe"] == "float32"
        assert entry["size_bytes"] == len(content)
        assert entry["ops"] == {"FULLY_CONNECTED": 2}
    assert entries["tight"]["checks"] == [{
        "metric": "size.max", "measured": entries["tight"]["size_bytes"], "budget": 100,
        "verdict": "fail", "unit": "bytes", "reason": "", "baseline": None, "delta": None,
        "tolerance_from": "",
    }]
    assert [c["verdict"] for c in entries["float32"]["checks"]] == ["pass", "pass"]


BAD_BUDGETS = {
    "unknown_key": ("[variants.float32]\nsize = { maxx = 100 }\n",
                    "variants.float32.size.maxx: unknown key"),
    "wrong_unit": ("[variants.float32]\nsize = { max = \"12 parsecs\" }\n",
                   "variants.float32.size.max: expected a size such as"),
    "zero_size": ("[variants.float32]\nsize = { max = 0 }\n",
                  "variants.float32.size.max: a size must be greater than 0"),
    "negative_size": ("[variants.float32]\nsize = { max = -4 }\n",
                      "variants.float32.size.max: a size must be greater than 0"),
    "boolean_size": ("[variants.float32]\nsize = { max = true }\n",
                     "variants.float32.size.max: expected a size*got True"),
    "typo_delegate": ("[variants.float32.latency.xnnpak]\nmedian = 1\n",
                      "variants.float32.latency.xnnpak*unknown delegate 'xnnpak'"),
    "bad_toml": ("[variants.float32\n", "*invalid TOML*line 1*"),
}


def test_each_bad_budget_file_errors_its_own_test_and_the_others_run(project):
    tests = "\n".join(
        f"@pytest.mark.tflite_budget({name!r})\ndef test_{name}(tflite_budget):\n    pass\n"
        for name in [*BAD_BUDGETS, "does_not_exist"]
    )
    p = project({name: text for name, (text, _) in BAD_BUDGETS.items()},
                test_bad=f"import pytest\n\n{tests}\ndef test_unrelated():\n    pass\n")
    result = p.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=len(BAD_BUDGETS) + 1, passed=1)
    output = result.stdout.str()
    for name, (_, message) in BAD_BUDGETS.items():
        result.stdout.fnmatch_lines([f"*budgets/{name}.toml*"])
        result.stdout.fnmatch_lines([f"*{message}*"])
    result.stdout.fnmatch_lines(["*budget file *budgets/does_not_exist.toml does not exist*"])
    assert "Traceback" not in output and "pydantic" not in output


def test_marked_test_that_never_checks_fails_and_fixture_needs_marker(project):
    p = project({"mlp": MLP_BUDGET}, test_forgot="""
        import pytest

        @pytest.mark.tflite_budget("mlp")
        def test_forgot(tflite_budget):
            pass

        def test_no_marker(tflite_budget):
            pass
    """)
    result = p.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines_random([
        "*test_forgot is marked @pytest.mark.tflite_budget but never checked a model*",
        "*the tflite_budget fixture needs @pytest.mark.tflite_budget('NAME')*",
    ])


def test_bad_model_inputs_fail_only_their_own_test(project, tmp_path, tiny_tflite):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tiny_tflite[: len(tiny_tflite) // 2])
    text = tmp_path / "notes.tflite"
    text.write_text("this is not a model\n")
    p = project({"mlp": MLP_BUDGET}, test_bad_models=f"""
        import numpy as np, pytest

        def test_missing_path(tflite_convert):
            tflite_convert("models/nope.keras")

        def test_text_file(tflite_convert):
            tflite_convert({str(text)!r})

        def test_truncated(tflite_convert):
            tflite_convert({str(truncated)!r})

        def test_int8_without_data(tflite_convert, mlp):
            tflite_convert(mlp, "int8")

        def test_wrong_shape(tflite_convert, mlp):
            tflite_convert(mlp, "int8", representative_data=np.zeros((4, 9), "float32"))

        def test_wrong_dtype(tflite_convert, mlp):
            tflite_convert(mlp, "int8", representative_data=np.zeros((4, 8), "uint8"))

        def test_never_built(tflite_convert):
            import keras
            tflite_convert(keras.Sequential([keras.layers.Dense(3)]))

        def test_unknown_recipe(tflite_convert, mlp):
            tflite_convert(mlp, "int4")

        def test_still_fine(tflite_convert, mlp):
            assert tflite_convert(mlp).size_bytes > 0
    """)
    result = p.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=8, passed=1)
    result.stdout.fnmatch_lines_random([
        "*ModelError: model path models/nope.keras does not exist",
        f"*ModelError: {text}: not a TFLite model (no 'TFL3' file identifier*",
        f"*ModelError: {truncated}: corrupt TFLite model*truncated*",
        "*ConversionError: recipe 'int8' needs representative_data*",
        "*ConversionError: representative_data for input * has shape (4, 9), the model expects"
        " (N, 8)*",
        "*ConversionError: representative_data for input * has dtype uint8, the model expects"
        " float32*",
        "*ConversionError: * was never built*Input layer*",
        "*ConversionError: unknown recipe 'int4'; expected one of float32, float16,*",
    ])
    assert "Traceback" not in result.stdout.str()


CACHE_TESTS = """
    import pytest

    def test_a(tflite_convert, mlp):
        assert tflite_convert(mlp).size_bytes > 0

    def test_b(tflite_convert):
        from conftest import build_mlp
        # Built later in the same process, so Keras names its layers dense_2, dense_3: the
        # cache key must not depend on those generated names.
        assert tflite_convert(build_mlp()).size_bytes > 0
"""


def test_cache_misses_once_then_hits_and_can_be_turned_off(project):
    p = project(test_cache=CACHE_TESTS)
    first = p.runpytest("-p", "no:randomly")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["conversion cache: 1 hit(s), 1 miss(es)"])
    assert list((p.path / ".pytest_cache" / "d" / "tflite").rglob("*.tflite"))
    second = p.runpytest("-p", "no:randomly")
    second.stdout.fnmatch_lines(["conversion cache: 2 hit(s), 0 miss(es)"])
    off = p.runpytest("-p", "no:randomly", "--tflite-no-cache")
    off.stdout.fnmatch_lines(["conversion cache: 0 hit(s), 2 miss(es)"])


def test_xdist_two_workers_converting_the_same_model_miss_once(project):
    p = project(test_cache=CACHE_TESTS)
    result = p.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*2 workers*", "conversion cache: 1 hit(s), 1 miss(es)"])


def test_xdist_reports_and_failures_reach_the_controller(project):
    # A ready .tflite: what crosses from the workers is under test, not the conversion.
    p = project({"mlp": MLP_BUDGET}, test_size="""
        import os, pytest

        @pytest.mark.tflite_budget("mlp")
        @pytest.mark.parametrize("variant", ["float32", "tight"])
        def test_model(tflite_convert, tflite_budget, variant):
            tflite_budget.check(tflite_convert(os.path.abspath("dense.tflite"), variant=variant))
    """)
    (p.path / "dense.tflite").write_bytes(dense_model(16))
    result = p.runpytest_subprocess("-n", "2", "--tflite-report=report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*size.max*100 B*fail*"])
    entries = json.loads((p.path / "report.json").read_text())["entries"]
    assert sorted(e["variant"] for e in entries) == ["float32", "tight"]


def test_cache_falls_back_to_user_cache_dir_without_cacheprovider(project, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    p = project(test_cache=CACHE_TESTS)
    result = p.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert len(list((tmp_path / "xdg" / "pytest-tflite").rglob("*.tflite"))) == 1


def test_converter_chatter_stays_off_the_terminal_unless_asked(project):
    p = project(test_quiet="""
        def test_convert(tflite_convert, mlp, samples):
            tflite_convert(mlp, "int8", representative_data=samples)
    """)
    quiet = p.runpytest_subprocess("-s", "--tflite-no-cache")
    quiet.assert_outcomes(passed=1)
    assert "Saved artifact" not in quiet.stdout.str() + quiet.stderr.str()
    assert "fully_quantize" not in quiet.stdout.str() + quiet.stderr.str()
    loud = p.runpytest_subprocess("-s", "--tflite-no-cache", "--tflite-verbose")
    loud.assert_outcomes(passed=1)
    assert "Saved artifact" in loud.stdout.str() + loud.stderr.str()


def test_budget_directory_resolution(pytester, tiny_tflite):
    (pytester.path / "tiny.tflite").write_bytes(tiny_tflite)
    budget = '[variants.default]\nsize = {{ max = {max} }}\n'
    for folder, limit in [("conf/budgets", 10**6), ("alt", 1), ("budgets", 2), ("other", 10**6)]:
        (pytester.path / folder).mkdir(parents=True, exist_ok=True)
        (pytester.path / folder / ("b.toml" if folder == "other" else "a.toml")).write_text(
            budget.format(max=limit))
    (pytester.path / "pytest.ini").write_text("[pytest]\ntflite_budget_dir = conf/budgets\n")
    pytester.makepyfile(test_dirs="""
        import pytest

        @pytest.mark.tflite_budget("a")
        def test_by_name(tflite_budget):
            tflite_budget.check("tiny.tflite")

        @pytest.mark.tflite_budget("other/b.toml")
        def test_by_path(tflite_budget):
            tflite_budget.check("tiny.tflite")
    """)
    pytester.runpytest().assert_outcomes(passed=2)  # ini key: conf/budgets/a.toml (1 MB)
    pytester.runpytest("--tflite-budget-dir=alt").assert_outcomes(passed=1, failed=1)
    (pytester.path / "pytest.ini").unlink()
    result = pytester.runpytest()  # default: <rootdir>/budgets/a.toml (2 bytes)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*budgets/a.toml*"])


def test_marker_is_registered_with_help(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.tflite_budget(name_or_path): check this test's*"])
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--tflite-budget-dir=DIR*", "*--tflite-report=PATH*",
                                 "*--tflite-no-cache*", "*tflite_budget_dir *", "*tflite_cache_dir *"])


def test_importing_the_plugin_loads_nothing_heavy():
    code = textwrap.dedent("""
        import sys
        import pytest_tflite, pytest_tflite.plugin
        heavy = ("tensorflow", "tf_keras", "keras", "ai_edge_litert", "numpy", "pydantic")
        print(",".join(m for m in heavy if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


HEAVY = ("pydantic", "numpy", "pytest_tflite.engine", "ai_edge_litert", "tensorflow")


def _session_modules(pytester: pytest.Pytester, *args: str) -> set[str]:
    """The modules a plain suite's pytest process holds once the session is over."""
    pytester.makeconftest("""
        import sys
        def pytest_unconfigure(config):  # after every sessionfinish and summary hook
            with open("modules.txt", "w") as out:
                out.write("\\n".join(sorted(sys.modules)))
    """)
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:xdist", *args)
    result.assert_outcomes(passed=1)
    return set((pytester.path / "modules.txt").read_text().split())


def test_a_suite_that_uses_nothing_of_the_plugin_loads_nothing_heavy(pytester):
    """No budget, marker or tflite option: the settings are never resolved, so neither the
    engine nor pydantic, numpy or LiteRT load (collect overhead; see bench/collect_overhead.py)."""
    modules = _session_modules(pytester)
    assert "pytest_tflite.plugin" in modules  # the plugin itself is loaded: a real control
    assert not [name for name in HEAVY if name in modules]
    # The same probe sees the engine once an option asks for the settings.
    assert "pytest_tflite.engine" in _session_modules(pytester, "--tflite-threads=2")


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from pytest_tflite import convert
    from tests.helpers.models import keras3_mlp

    model = convert(keras3_mlp(), output_dir=tmp_path_factory.mktemp("tiny"))
    return Path(model.path).read_bytes()


def test_junit_xml_carries_the_entry_as_a_property(project):
    import xml.etree.ElementTree as ET

    p = project({"mlp": MLP_BUDGET}, test_junit="""
        import pytest

        @pytest.mark.tflite_budget("mlp")
        def test_model(tflite_convert, tflite_budget, mlp):
            tflite_budget.check(tflite_convert(mlp))
    """)
    p.runpytest("--junitxml=junit.xml").assert_outcomes(passed=1)
    properties = {
        prop.get("name"): prop.get("value")
        for prop in ET.parse(p.path / "junit.xml").getroot().iter("property")
    }
    entry = json.loads(properties["tflite_entry"])
    assert (entry["model"], entry["variant"], entry["verdict"]) == ("mlp", "float32", "pass")
    assert json.loads(properties["tflite_cache"])["misses"] == 1


def test_example_schema_file_is_current():
    from pytest_tflite.budget import json_schema

    committed = REPOSITORY / "example_project" / "budgets" / "budget.schema.json"
    assert committed.read_text() == json_schema() + "\n", "regenerate: tflite-budget schema > ..."


def test_checking_ready_tflite_files_needs_no_tensorflow(pytester, tiny_tflite):
    """A project that ships .tflite files installs pytest-tflite without TensorFlow."""
    (pytester.path / "tiny.tflite").write_bytes(tiny_tflite)
    (pytester.path / "budgets").mkdir()
    (pytester.path / "budgets" / "tiny.toml").write_text(textwrap.dedent("""
        [variants.default]
        size = { max = "64 KiB" }
        sparsity = { min = 0.0 }
        memory = { planned_arena = "1 MiB" }
        fidelity = { min_cosine = 0.999 }
        [variants.default.runtime]
        timing = { min_runs = 5, min_seconds = 0 }
        warmup = { min_runs = 1, min_seconds = 0 }
        [variants.default.latency.builtin]
        median = "1 s"
    """))
    pytester.makeconftest("""
        import sys
        # As if TensorFlow, Keras and tfmot were not installed: importing them fails.
        for name in ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"):
            sys.modules[name] = None
    """)
    pytester.makepyfile(test_shipped="""
        import sys
        import numpy as np
        import pytest

        @pytest.mark.tflite_budget("tiny")
        def test_shipped_model(tflite_budget):
            x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
            entry = tflite_budget.check("tiny.tflite", eval_data=x, reference="tiny.tflite")
            assert entry["fidelity"]["cosine"] == pytest.approx(1.0)
            assert entry["delegates"]["builtin"]["status"] == "ok"
            assert sys.modules["tensorflow"] is None
    """)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_a_budget_file_with_a_source_is_a_test_per_variant(pytester, tiny_tflite):
    (pytester.path / "models").mkdir()
    (pytester.path / "models" / "tiny.tflite").write_bytes(tiny_tflite)
    (pytester.path / "budgets").mkdir()
    (pytester.path / "budgets" / "tiny.toml").write_text(textwrap.dedent(f"""
        source = "../models/tiny.tflite"
        [variants.roomy]
        size = {{ max = {len(tiny_tflite)} }}
        [variants.tight]
        size = {{ max = {len(tiny_tflite) - 1} }}
    """))
    (pytester.path / "budgets" / "broken.toml").write_text('source = "x.tflite"\n[variants.a\n')
    (pytester.path / "budgets" / "plain.toml").write_text("[variants.a]\nsize = { max = 1 }\n")
    result = pytester.runpytest("budgets", "-p", "no:randomly", "-v")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random([
        "*budgets/tiny.toml::roomy PASSED*",
        "*budgets/tiny.toml::tight FAILED*",
        "*size.max*+1 B (+*",
        "*budgets/broken.toml: invalid TOML*",
    ])
    assert "plain.toml::" not in result.stdout.str()  # no source: not a test
    assert "budgets/plain.toml:1: UnusedBudgetWarning" in result.stdout.str()  # ...and named
    assert "Traceback" not in result.stdout.str()
