"""``tflite-budget``: the plugin's core from a shell: schema, measure, check, init.

Exit codes: 0 within budget, 1 over budget, 2 on a usage error, an invalid model or budget file,
or a measurement that could not be made (the model crashed or timed out).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import percentage, positive_float, positive_int, size
from .errors import TFLiteError
from .settings import BUILT_IN

if TYPE_CHECKING:
    from .results import Measurement
    from .settings import Layer, RuntimeSettings

DEFAULT_DELEGATES = ["xnnpack", "builtin"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tflite-budget", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("schema", help="print the JSON Schema of budget files")
    measure = commands.add_parser("measure", help="measure a .tflite model")
    _model_arguments(measure)
    measure.add_argument("--json", action="store_true", help="print the JSON measurement")
    measure.add_argument("--batch-sizes", type=_batch_sizes, default=None, metavar="N,N,...",
                         help="also time each batch size (dimension 0 of every input), e.g. "
                              "1,8,32: latency and latency per sample")
    check = commands.add_parser("check", help="check a .tflite model against a budget file")
    check.add_argument("model", type=Path)
    check.add_argument("--budget", type=Path, required=True, help="the budget file (TOML)")
    check.add_argument("--variant", help="the [variants.NAME] section (default: the only one, "
                                         "or 'default')")
    check.add_argument("--no-runtime", action="store_true", help="skip runtime budgets")
    check.add_argument("--require-delegates", action="store_true",
                       help="fail budgets on delegates this machine lacks instead of skipping")
    check.add_argument("--threads", type=positive_int, default=None,
                       help="interpreter threads (overrides the budget file and the ini file)")
    check.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS",
                       help=f"limit per worker run, in seconds (default {BUILT_IN.timeout:g})")
    check.add_argument("--max-memory", type=size, default=None, metavar="SIZE",
                       help="memory cap of each worker run, e.g. \"2 GiB\" (default: this "
                            "machine's or container's memory)")
    check.add_argument("--json", action="store_true", help="print the JSON report entry")
    init = commands.add_parser("init", help="print a starter budget file from a measurement")
    _model_arguments(init)
    init.add_argument("--headroom", default="20%", type=percentage,
                      help="room above the measured values, e.g. 20%% (the default)")
    init.add_argument("--variant", default="default", help="the section to write")
    comment = commands.add_parser(
        "comment", help="post or update the pull-request comment written by --tflite-markdown")
    comment.add_argument("--repo", required=True, metavar="OWNER/NAME",
                         help="the repository, e.g. ${{ github.repository }}")
    comment.add_argument("--pr", required=True, type=positive_int, metavar="N",
                         help="the pull request's number")
    comment.add_argument("--body", required=True, type=Path, metavar="PATH",
                         help="the comment body (starts with <!-- pytest-tflite:ID -->)")
    comment.add_argument("--token-env", default="GITHUB_TOKEN", metavar="NAME",
                         help="the environment variable holding the token (default "
                              "GITHUB_TOKEN); never the token itself on the command line")
    comment.add_argument("--api-url", default="https://api.github.com", metavar="URL",
                         help="the REST API root (GitHub Enterprise: https://HOST/api/v3)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help: return the code, don't exit the caller
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command == "schema":
            from .budget import json_schema

            print(json_schema())
            return 0
        if args.command == "measure":
            return _measure(args)
        if args.command == "init":
            return _init(args)
        if args.command == "comment":
            return _comment(args)
        return _check(args)
    except TFLiteError as exc:
        print(f"tflite-budget: error: {exc}", file=sys.stderr)
        return 2


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path)
    parser.add_argument("--delegate", action="append", dest="delegates", metavar="NAME",
                        help=f"measure this delegate (repeatable; default: "
                             f"{', '.join(DEFAULT_DELEGATES)})")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help=f"interpreter threads (default {BUILT_IN.threads})")
    parser.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS",
                        help=f"limit per delegate (default {BUILT_IN.timeout:g})")
    parser.add_argument("--max-memory", type=size, default=None, metavar="SIZE",
                        help="memory cap of each worker run, e.g. \"2 GiB\" (default: this "
                             "machine's or container's memory)")


def _measure_model(path: Path, delegates: list[str], settings: RuntimeSettings) -> Measurement:
    from .measure.memory_cap import limit, refuse_over_cap
    from .measure.runtime import measure_delegates
    from .measure.static import measure_static
    from .model import TFLiteModel

    model = TFLiteModel.from_path(path)
    measurement = measure_static(model)
    if delegates:
        with limit(settings.max_memory) as cap:
            refuse_over_cap(str(path), measurement.planned_arena_bytes, cap)
            measurement.delegates = measure_delegates(model.path, delegates, settings)
    return measurement


def _command_line(args: argparse.Namespace) -> Layer:
    return {"threads": args.threads, "timeout": args.timeout, "max_memory": args.max_memory,
            "batch_sizes": getattr(args, "batch_sizes", None)}


def _cli_settings(args: argparse.Namespace) -> tuple[list[str], RuntimeSettings]:
    """``measure`` and ``init``: the delegates to measure and the settings, the ini file's
    (above the model, as ``pytest MODEL`` would find it) under the command line's."""
    from .arguments import ini_file_layer
    from .budget import DELEGATES
    from .runner_config import PREFIX as RUNNER
    from .settings import resolve_runtime

    for name in args.delegates or []:
        if name not in DELEGATES and not name.startswith("external:"):
            raise TFLiteError(f"unknown delegate {name!r}; expected one of {', '.join(DELEGATES)} "
                              f"or external:PATH")
    settings = resolve_runtime(command_line=_command_line(args),
                               ini=ini_file_layer(args.model.resolve().parent))
    # The ini file's delegates come besides the defaults, as besides a budget's; a runner is
    # the pytest plugin's alone.
    delegates = args.delegates or list(dict.fromkeys(
        [*DEFAULT_DELEGATES, *(d for d in settings.delegates if not d.startswith(RUNNER))]))
    return delegates, settings


def _failed_delegates(measurement: Measurement) -> list[str]:
    return [f"{name}: {found.reason}" for name, found in measurement.delegates.items()
            if found.status == "error"]


def _measure(args: argparse.Namespace) -> int:
    from .reports.tables import measurement_lines

    measurement = _measure_model(args.model, *_cli_settings(args))
    if args.json:
        print(json.dumps(measurement.to_json(), indent=2))
    else:
        print("\n".join(measurement_lines(measurement) + batch_lines(measurement)))
    failed = _failed_delegates(measurement)
    for line in failed:
        print(f"tflite-budget: error: {args.model}: {line}", file=sys.stderr)
    return 2 if failed else 0


def _batch_sizes(text: str) -> list[int]:
    """"1,8,32" -> [1, 8, 32]: whole numbers >= 1, each once."""
    try:
        sizes = [positive_int(part.strip()) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        sizes = []
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected batch sizes such as 1,8,32, got {text!r}")
    return list(dict.fromkeys(sizes))


def batch_lines(measurement: Measurement) -> list[str]:
    """Per delegate measured at ``--batch-sizes``: batch, median and median per sample."""
    from .reports.tables import table
    from .units import format_ms

    lines: list[str] = []
    for name, found in measurement.delegates.items():
        if not found.batches:
            continue
        rows = [[str(b.batch), b.status,
                 format_ms(b.latency_ms.median if b.latency_ms else None),
                 format_ms(b.per_sample_ms), b.reason] for b in found.batches]
        lines += ["", f"{name} by batch size:",
                  *table(["batch", "status", "median", "per sample", "reason"], rows)]
    return lines


def _check(args: argparse.Namespace) -> int:
    """The fixture's engine on a ready .tflite, with the ini file's settings as pytest reads them."""
    from . import engine
    from .arguments import ini_file_layer
    from .budget import load
    from .model import TFLiteModel
    from .reports.tables import check_table
    from .runner_config import find_pyproject
    from .runner_config import load as load_runners

    # Runners are declared in the pyproject above the budget file, as ini settings are found.
    runners = load_runners(find_pyproject(args.budget.resolve().parent))
    budget = load(args.budget, runners)
    name = args.variant or (next(iter(budget.spec.variants)) if len(budget.spec.variants) == 1
                            else "default")
    settings = engine.Settings(
        runtime_off="runtime measurement off (--no-runtime)" if args.no_runtime else None,
        require_delegates=args.require_delegates, without_data="skip",
        ini=ini_file_layer(args.budget.resolve().parent), command_line=_command_line(args),
        runners=runners)
    entry = engine.run(TFLiteModel.from_path(args.model, variant=name), budget, name, settings,
                       test=str(args.model))
    if args.json:
        print(json.dumps(entry.to_json(), indent=2))
    else:
        print("\n".join(check_table(entry.checks)))
        print(f"{budget.model} [{name}]: {entry.verdict}")
    return {"pass": 0, "skip": 0, "fail": 1}.get(entry.verdict, 2)


def _init(args: argparse.Namespace) -> int:
    factor = 1 + args.headroom
    measurement = _measure_model(args.model, *_cli_settings(args))
    failed = _failed_delegates(measurement)
    if failed:
        raise TFLiteError(f"{args.model}: cannot write budgets from a failed measurement: "
                          + "; ".join(failed))
    print(starter_budget(args.model, measurement, args.variant, factor))
    return 0


def starter_budget(model: Path, measurement: Measurement, variant: str, factor: float) -> str:
    """A budget file that the measured model passes with ``factor`` headroom."""
    size = f'{{ max = {_bytes_up(measurement.size_bytes * factor)}, ' \
           f'max_gzip = {_bytes_up(measurement.gzip_bytes * factor)} }}'
    lines = [
        f"# Budgets for {model.name}, from `tflite-budget init` with {factor - 1:.0%} headroom.",
        f'model = "{model.stem}"',
        "",
        f"[variants.{variant}]",
        f"size = {size}",
        "",
        f"[variants.{variant}.memory]",
        f"planned_arena = {_bytes_up(measurement.planned_arena_bytes * factor)}",
    ]
    for name, found in measurement.delegates.items():
        if found.status != "ok":
            lines += ["", f"# {name}: {found.status} here ({found.reason[:120]})"]
            continue
        key = f'"{name}"' if ":" in name else name
        memory = [f"{label} = {_bytes_up(value * factor)}"
                  for label, value in (("arena", found.arena_bytes),
                                       ("peak_rss", found.peak_rss_bytes)) if value]
        if memory:
            lines += ["", f"[variants.{variant}.memory.{key}]", *memory]
        if found.latency_ms is not None and found.latency_ms.median is not None \
                and found.latency_ms.p90 is not None:
            lines += ["", f"[variants.{variant}.latency.{key}]",
                      f'median = "{_ms_up(found.latency_ms.median * factor)}"',
                      f'p90 = "{_ms_up(found.latency_ms.p90 * factor)}"']
        if found.total_nodes and found.partitions and found.delegated_nodes is not None:
            fraction = math.floor(100 * found.delegated_nodes / found.total_nodes) / 100
            lines += ["", f"[variants.{variant}.delegation.{key}]",
                      f"min_fraction = {fraction}", f"max_partitions = {found.partitions}"]
    return "\n".join(lines)


def _bytes_up(value: float) -> str:
    return str(max(1, math.ceil(value)))


def _ms_up(value: float) -> str:
    # Three significant digits, rounded up, so the measured value stays inside the budget.
    digits = max(0, 2 - math.floor(math.log10(value))) if value > 0 else 3
    step = 10.0 ** -digits
    return f"{math.ceil(value / step) * step:.{digits}f} ms"


def _comment(args: argparse.Namespace) -> int:
    """Find the pull request's comment carrying the body's marker and update it, or create it.
    Exit 0 when posted, 2 on a missing token, an unreadable body or an API error."""
    import os

    from .github import GitHub, check_repo, post_comment

    check_repo(args.repo)
    token = os.environ.get(args.token_env, "").strip()
    if not token:
        raise TFLiteError(f"no token: set the environment variable {args.token_env} (in a "
                          f"workflow: env: {{ {args.token_env}: ${{{{ github.token }}}} }}), or "
                          f"name another one with --token-env")
    try:
        body = args.body.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TFLiteError(f"cannot read the comment body {args.body}: {exc}") from None
    action, found = post_comment(GitHub(token, args.api_url), args.repo, args.pr, body)
    print(f"{action} comment {found.get('id')} on {args.repo}#{args.pr}"
          + (f": {found['html_url']}" if found.get("html_url") else ""))
    return 0
