"""The plugin's ``--tflite-*`` options and ``tflite_*`` ini keys: declared, and read into the
run's ``Settings``.

Importing this module stays cheap (the plugin does): the engine, the baseline and the runners'
table load only when ``run_settings`` is called, the first time something needs the settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .arguments import (
    INI_RUNTIME_KEYS,
    delegate_list,
    ini_layer,
    percentage,
    positive_float,
    positive_int,
    size,
)
from .runtime_defaults import DEFAULT_THREADS, DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from .engine import Settings


def add_options(parser: pytest.Parser) -> None:
    """Every ``--tflite-*`` option and ``tflite_*`` ini key, with defaults read from where they
    are written once."""
    group = parser.getgroup("tflite", "TFLite model budgets (pytest-tflite)")
    group.addoption("--tflite-budget-dir", dest="tflite_budget_dir", default=None, metavar="DIR",
                    help="directory of budget files (relative to the current directory); "
                         "default: the tflite_budget_dir ini key, else <rootdir>/budgets")
    group.addoption("--tflite-report", dest="tflite_report", default=None, metavar="PATH",
                    help="write the JSON report of every checked model variant to PATH")
    from .comment_marker import comment_id  # light: the standard library only

    group.addoption("--tflite-markdown", dest="tflite_markdown", default=None, metavar="PATH",
                    help="write a pull-request comment body (Markdown, base -> head deltas) to "
                         "PATH; post it with `tflite-budget comment`")
    group.addoption("--tflite-comment-id", dest="tflite_comment_id", default="budgets",
                    type=comment_id, metavar="ID",
                    help="the comment's hidden marker, <!-- pytest-tflite:ID --> (default "
                         "budgets): one comment per ID on a pull request")
    group.addoption("--tflite-html", dest="tflite_html", default=None, metavar="PATH",
                    help="write a self-contained HTML report with plots to PATH")
    group.addoption("--tflite-node-data", dest="tflite_node_data", default=None, metavar="DIR",
                    help="write Model Explorer overlays to DIR, per model variant: where each op "
                         "ran, the quantization error each op adds (measured whenever the test "
                         "gives eval_data and reference), and their change against "
                         "--tflite-baseline")
    group.addoption("--tflite-no-cache", dest="tflite_no_cache", action="store_true",
                    default=None, help="convert every model afresh instead of using the cache")
    group.addoption("--tflite-verbose", dest="tflite_verbose", action="store_true", default=None,
                    help="show the converter's own output, hidden by default (also with -vv)")
    group.addoption("--tflite-delegates", dest="tflite_delegates", type=delegate_list,
                    default=None, metavar="LIST",
                    help="measure only these delegates (comma-separated, e.g. xnnpack,builtin); "
                         "budgets on the others are skipped")
    group.addoption("--tflite-no-runtime", dest="tflite_no_runtime", action="store_true",
                    default=None, help="skip runtime measurement: latency, measured memory and "
                                       "delegation budgets are reported as skipped")
    group.addoption("--tflite-require-delegates", dest="tflite_require_delegates",
                    action="store_true", default=None,
                    help="fail, instead of skip, budgets on delegates this machine lacks")
    group.addoption("--tflite-baseline-save", dest="tflite_baseline_save", default=None,
                    metavar="DIR", help="save this run's results and models as a baseline in DIR "
                                        "(on the base branch)")
    group.addoption("--tflite-baseline", dest="tflite_baseline", default=None, metavar="DIR",
                    help="compare against the baseline in DIR under the budget files' "
                         "[regression] tolerances")
    group.addoption("--tflite-strict", dest="tflite_strict", action="store_true", default=None,
                    help="fail, instead of skip, a latency comparison still inconclusive after "
                         "its re-measure")
    group.addoption("--tflite-update-budgets", dest="tflite_update_budgets", action="store_true",
                    default=None, help="rewrite the budget files this run checked so limits "
                                       "follow the model down: a limit the model beats by more "
                                       "than the headroom tightens to measured + headroom "
                                       "(comments and layout kept)")
    group.addoption("--tflite-headroom", dest="tflite_headroom", type=percentage, default=None,
                    metavar="PCT", help="headroom left by --tflite-update-budgets (default 10%%)")
    group.addoption("--tflite-ratchet-timing", dest="tflite_ratchet_timing", action="store_true",
                    default=None, help="let --tflite-update-budgets tighten latency and peak_rss "
                                       "limits too (left alone by default: timings drift)")
    group.addoption("--tflite-loosen", dest="tflite_loosen", action="store_true", default=None,
                    help="let --tflite-update-budgets raise a limit the model breaks to "
                         "measured + headroom (limits never loosen otherwise)")
    group.addoption("--tflite-threads", dest="tflite_threads", type=positive_int, default=None,
                    metavar="N", help=f"interpreter threads (overrides budget files; default "
                                      f"{DEFAULT_THREADS})")
    group.addoption("--tflite-timeout", dest="tflite_timeout", type=positive_float, default=None,
                    metavar="SECONDS", help=f"time limit in seconds for each worker run: a "
                                            f"delegate's measurement, an evaluation, a sanity "
                                            f"check (default {DEFAULT_TIMEOUT_S:g})")
    group.addoption("--tflite-max-memory", dest="tflite_max_memory", type=size, default=None,
                    metavar="SIZE", help="memory cap of each worker run, e.g. \"2 GiB\" "
                                         "(default: the container's or machine's memory divided "
                                         "by the xdist workers)")
    parser.addini("tflite_delegates", "delegates measured for every checked model, besides "
                  "those its budgets name (comma-separated)", default=None)
    parser.addini("tflite_threads", f"interpreter threads (default {DEFAULT_THREADS})",
                  default=None)
    parser.addini("tflite_timeout", f"time limit in seconds for each worker run (default "
                  f"{DEFAULT_TIMEOUT_S:g})", default=None)
    parser.addini("tflite_max_memory", "memory cap of each worker run (default: the memory "
                  "divided by the xdist workers)", default=None)
    parser.addini("tflite_budget_dir", "directory of budget files, relative to the ini file "
                  "(default: <rootdir>/budgets)", default=None)
    parser.addini("tflite_cache_dir", "directory of the conversion cache, relative to the ini "
                  "file (default: pytest's cache dir, .pytest_cache/d/tflite)", default=None)


# What makes a run resolve its settings at start rather than on first use: each can be wrong in
# a way that should stop the run before any test (a bad ini value, a missing baseline).
SETTINGS_OPTIONS = ("threads", "timeout", "max_memory", "delegates", "no_runtime",
                    "require_delegates", "baseline", "strict")


def asks_for_settings(config: pytest.Config) -> bool:
    """Whether an option or ini key the settings read was given."""
    return (any(config.getoption(f"tflite_{name}") is not None for name in SETTINGS_OPTIONS)
            or any(config.getini(f"tflite_{name}") for name in INI_RUNTIME_KEYS))


def run_settings(config: pytest.Config) -> Settings:
    """The run's settings from its options and ini file; a bad value, a missing baseline or a
    broken runners table is a ``pytest.UsageError`` naming it."""
    from .engine import Settings
    from .measure.lock import lock_path

    try:
        ini = ini_layer({name: config.getini(f"tflite_{name}") for name in INI_RUNTIME_KEYS})
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"pytest-tflite ini setting: {exc}") from None
    return Settings(
        runtime_off="runtime measurement off (--tflite-no-runtime)"
        if config.getoption("tflite_no_runtime") else None,
        delegate_filter=config.getoption("tflite_delegates"),
        require_delegates=bool(config.getoption("tflite_require_delegates")),
        baseline=open_baseline(config),
        strict=bool(config.getoption("tflite_strict")),
        ini=ini,
        command_line={name: config.getoption(f"tflite_{name}")
                      for name in ("threads", "timeout", "max_memory")},
        lock_file=lock_path(config.rootpath),
        runners=runners(config),
        node_data=bool(config.getoption("tflite_node_data")),
    )


def runners(config: pytest.Config) -> Any:
    """[tool.pytest-tflite.runners.*] of the inifile when it is a pyproject.toml, else of
    the rootdir's pyproject.toml (none: a budget naming a runner is refused at load)."""
    from .errors import TFLiteError
    from .runner_config import load

    inipath = config.inipath
    pyproject = (inipath if inipath is not None and inipath.name == "pyproject.toml"
                 else config.rootpath / "pyproject.toml")
    try:
        return load(pyproject)
    except TFLiteError as exc:
        raise pytest.UsageError(f"pytest-tflite runners: {exc}") from None


def invocation_path(config: pytest.Config, option: str) -> Path | None:
    """An option's path, relative to the directory pytest was started in; None when not given."""
    value = config.getoption(option)
    return (Path(config.invocation_params.dir) / str(value)).resolve() if value else None


def open_baseline(config: pytest.Config) -> Any:
    """``--tflite-baseline``: opened once; missing, corrupt or another version stops the run
    at start with the reason, since every regression verdict would be meaningless."""
    directory = invocation_path(config, "tflite_baseline")
    if directory is None:
        return None
    from .baseline import Baseline, BaselineError

    try:
        return Baseline.open(directory)
    except BaselineError as exc:
        raise pytest.UsageError(f"--tflite-baseline: {exc}") from None
