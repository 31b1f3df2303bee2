"""``tflite-budget``: the plugin's core from a shell: schema, measure, check, init, explore.

Exit codes: 0 within budget, 1 over budget, 2 on a usage error, an invalid model or budget file,
or a measurement that could not be made (the model crashed or timed out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .arguments import delegate_list, percentage, positive_float, positive_int, size
from .errors import TFLiteError, did_you_mean
from .settings import BUILT_IN
from .starter import DEFAULT_HEADROOM, DEFAULT_MARGIN, DEFAULT_RUNS, MIN_RUNS

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
    measure.add_argument("--cost", action="store_true",
                         help="also count instructions per invoke under valgrind (xnnpack, "
                              "builtin, reference): the figures and the top functions")
    check = commands.add_parser("check", help="check a .tflite model against a budget file")
    check.add_argument("model", type=Path, nargs="?", default=None,
                       help="the .tflite file (default: the budget file's source =)")
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
    init = commands.add_parser(
        "init", help="write a starter budget file from measurements",
        description="Measure MODEL and write a budget file it passes: static figures with "
                    "--headroom, runtime limits (latency median and p90, arena) from --runs "
                    "runs in fresh workers as the worst p90 seen x (1 + --margin), and "
                    "[regression] latency = \"5%\" for runs against a baseline. Peak RSS is "
                    "left out: it moved by up to 62% between identical runs of one model, far "
                    "more than the model itself (bench/init_stability.py).")
    _model_arguments(init, delegate="delegate", default=["xnnpack"])
    init.add_argument("-o", "--output", type=Path, default=None, metavar="PATH",
                      help="write the file here (e.g. budgets/NAME.toml; source = is then "
                           "relative to it); default: print it")
    init.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    init.add_argument("--delegates", type=delegate_list, default=None, metavar="A,B",
                      help="the delegates to write runtime limits for (default: xnnpack), "
                           "e.g. xnnpack,builtin")
    init.add_argument("--runs", type=positive_int, default=None, metavar="N",
                      help=f"runs, each in fresh workers (default and minimum {DEFAULT_RUNS})")
    init.add_argument("--no-runtime", action="store_true",
                      help="static budgets only: no delegate is run")
    init.add_argument("--headroom", default=f"{DEFAULT_HEADROOM:.0%}", type=percentage,
                      help=f"room beyond the static figures (default {DEFAULT_HEADROOM * 100:.0f}%%)")
    init.add_argument("--margin", default=f"{DEFAULT_MARGIN:.0%}", type=percentage,
                      help=f"room above the worst runtime figure seen (default "
                           f"{DEFAULT_MARGIN * 100:.0f}%%)")
    init.add_argument("--variant", default="default", help="the section to write")
    _explore_arguments(commands)
    comment = commands.add_parser(
        "comment", help="post or update the pull-request comment written by --tflite-markdown")
    comment.add_argument("--repo", required=True, metavar="OWNER/NAME",
                         help="the repository, e.g. ${{ github.repository }}")
    comment.add_argument("--pr", required=True, type=positive_int, metavar="N",
                         help="the pull request's number")
    comment.add_argument("--head-sha", metavar="SHA",
                         help="post only if the pull request's head is this commit, the one the "
                              "report is about (in a workflow_run workflow: "
                              "${{ github.event.workflow_run.head_sha }})")
    comment.add_argument("--author", default="github-actions[bot]", metavar="LOGIN",
                         help="update only a marked comment written by this account (default "
                              "github-actions[bot], who posts with a workflow's GITHUB_TOKEN; "
                              "@me: the token's own login, for a personal access token)")
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
        if args.command == "explore":
            return _explore(args)
        return _check(args)
    except TFLiteError as exc:
        print(f"tflite-budget: error: {exc}", file=sys.stderr)
        return 2


def _model_arguments(parser: argparse.ArgumentParser, delegate: str = "delegates",
                     default: list[str] = DEFAULT_DELEGATES) -> None:
    parser.add_argument("model", type=Path)
    parser.add_argument("--delegate", action="append", dest=delegate, metavar="NAME",
                        help=f"measure this delegate (repeatable; default: "
                             f"{', '.join(default)})")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help=f"interpreter threads (default {BUILT_IN.threads})")
    parser.add_argument("--timeout", type=positive_float, default=None, metavar="SECONDS",
                        help=f"limit per delegate (default {BUILT_IN.timeout:g})")
    parser.add_argument("--max-memory", type=size, default=None, metavar="SIZE",
                        help="memory cap of each worker run, e.g. \"2 GiB\" (default: this "
                             "machine's or container's memory)")


def _measure_model(path: Path, delegates: list[str], settings: RuntimeSettings) -> Measurement:
    from .starter import measure_rounds

    measurement, rounds = measure_rounds(path, delegates, settings, 1)
    measurement.delegates = rounds[0] if rounds else {}
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

    for name in [*(args.delegates or []), *(getattr(args, "delegate", None) or [])]:
        if name not in DELEGATES and not name.startswith("external:"):
            raise TFLiteError(f"unknown delegate {name!r}{did_you_mean(name, DELEGATES)}; "
                              f"expected one of {', '.join(DELEGATES)} or external:PATH")
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

    delegates, settings = _cli_settings(args)
    measurement = _measure_model(args.model, delegates, settings)
    failed = _count_instructions(args.model, measurement, delegates, settings) if args.cost else []
    if args.json:
        print(json.dumps(measurement.to_json(), indent=2))
    else:
        print("\n".join(measurement_lines(measurement) + batch_lines(measurement)
                        + cost_lines(measurement)))
    failed += _failed_delegates(measurement)
    for line in failed:
        print(f"tflite-budget: error: {args.model}: {line}", file=sys.stderr)
    return 2 if failed else 0


def _count_instructions(path: Path, measurement: Measurement, delegates: list[str],
                        settings: RuntimeSettings) -> list[str]:
    """``--cost``: each countable delegate counted under valgrind into ``delegates[d].cost``;
    what could not be counted, one line each."""
    from .measure.cost import COUNTABLE, measure_costs
    from .measure.memory_cap import limit
    from .results import DelegateResult

    countable = [d for d in delegates if d in COUNTABLE]
    if not countable:
        return [f"--cost: none of {', '.join(delegates)} can be counted (only "
                f"{', '.join(COUNTABLE)})"]
    with limit(settings.max_memory):
        counted = measure_costs(path, countable, settings)
    failed = []
    for name, cost in counted.items():
        found = measurement.delegates.setdefault(name, DelegateResult("ok", threads=1))
        if isinstance(cost, str):
            found.cost_error = cost
            failed.append(f"{name}: no instruction count: {cost}")
        else:
            found.cost = cost
    return failed


def cost_lines(measurement: Measurement) -> list[str]:
    """Per delegate counted: instructions, estimated cycles and cache misses per invoke, and
    the functions with the most instructions of their own."""
    from .reports.tables import table

    lines: list[str] = []
    for name, found in measurement.delegates.items():
        cost = found.cost
        if cost is None:
            continue
        lines += ["", f"{name} cost per invoke ({cost.invokes} counted after a warm-up, under "
                      f"valgrind): {cost.instructions:,} instructions, "
                      f"{cost.estimated_cycles:,} estimated cycles, {cost.l1_misses:,} L1 "
                      f"misses, {cost.ll_misses:,} LL misses",
                  f"  estimated cycles = {cost.formula}",
                  *table(["function (self)", "instructions", "share"],
                         [[f["name"], f"{f['instructions']:,}", f"{f['share']:.1%}"]
                          for f in cost.top_functions])]
    return lines


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
    model = args.model if args.model is not None else _shown(budget.source)
    if model is None:
        raise TFLiteError(f"{args.budget}: no model to check: give the .tflite file (tflite-budget "
                          f"check MODEL --budget {args.budget}), or add source = "
                          f"\"path/to/model.tflite\" (relative to the budget file) to it")
    entry = engine.run(TFLiteModel.from_path(model, variant=name), budget, name, settings,
                       test=str(model))
    if args.json:
        print(json.dumps(entry.to_json(), indent=2))
    else:
        print("\n".join(check_table(entry.checks)))
        print(f"{budget.model} [{name}]: {entry.verdict}")
    return {"pass": 0, "skip": 0, "fail": 1}.get(entry.verdict, 2)


def _shown(path: Path | None) -> Path | None:
    """A source as messages show it: relative to the current directory when below it."""
    try:
        return path.relative_to(Path.cwd()) if path is not None else None
    except ValueError:
        return path


def _init(args: argparse.Namespace) -> int:
    from .starter import check_output, measure_runs, starter_budget, write_budget

    runs = DEFAULT_RUNS if args.runs is None else args.runs
    if runs < MIN_RUNS:
        raise TFLiteError(f"--runs {runs}: runtime limits need at least {MIN_RUNS} runs to see "
                          f"the machine's noise; give --runs {MIN_RUNS} or more, or "
                          f"--no-runtime")
    if args.delegates and args.delegate:
        raise TFLiteError("give the delegates once: --delegates A,B (or --delegate A "
                          "--delegate B), not both")
    runners = [d for d in args.delegates or [] if d.startswith("runner:")]
    if runners:
        raise TFLiteError(f"--delegates {runners[0]}: init runs the plugin's own delegates; a "
                          f"runner's budgets are written by hand")
    check_output(args.output, args.force)
    _, settings = _cli_settings(args)
    delegates = [] if args.no_runtime else list(args.delegates or args.delegate or ["xnnpack"])
    found = measure_runs(args.model, delegates, settings, runs)
    text = starter_budget(args.model, found, output=args.output, variant=args.variant,
                          headroom=args.headroom, margin=args.margin)
    if args.output is None:
        print(text, end="")
        return 0
    write_budget(args.output, text, force=args.force)
    print(f"wrote {args.output}: check it with `pytest {args.output}` or "
          f"`tflite-budget check --budget {args.output}`")
    return 0


def _explore_arguments(commands: Any) -> None:
    explore = commands.add_parser(
        "explore", help="view a model in Model Explorer with its per-node overlays",
        description="Measure MODEL's placement (which delegate ran each operator), write it as "
                    "Model Explorer node data, with the moves against a baseline's model "
                    "(--base), and serve it on 127.0.0.1 until Ctrl-C. Needs the extra: "
                    "pip install \"pytest-tflite[explorer]\".")
    _model_arguments(explore, default=["xnnpack"])
    explore.add_argument("--base", type=Path, metavar="BASELINE_DIR",
                         help="a baseline directory (--tflite-baseline-save): colour the "
                              "operators that moved against its model variant")
    explore.add_argument("--model", dest="model_name", metavar="NAME",
                         help="the model's name in the baseline (default: MODEL's file name "
                              "without .tflite)")
    explore.add_argument("--variant", default="default", metavar="NAME",
                         help="the variant's name in the baseline (default: default)")
    explore.add_argument("--port", type=positive_int, default=None, metavar="N",
                         help="serve on this port (default: a free one)")
    explore.add_argument("--node-data", type=Path, default=None, metavar="DIR",
                         help="write the model and its node data here and keep them (default: "
                              "a temporary folder, removed at exit)")


def _comment(args: argparse.Namespace) -> int:
    """Find the pull request's comment carrying the body's marker *and* written by --author,
    and update it, or create it. With --head-sha, nothing is posted unless the pull request
    exists and its head is that commit. Exit 0 when posted, 2 on a refused pull request, a
    missing token, an unreadable body or an API error."""
    import os

    from .github import SELF, GitHub, check_head, check_repo, check_sha, post_comment

    check_repo(args.repo)
    if args.head_sha is not None:
        check_sha(args.head_sha)
    if not args.author.strip():
        raise TFLiteError("--author is empty: give the login that posts the comment, or @me")
    token = os.environ.get(args.token_env, "").strip()
    if not token:
        raise TFLiteError(f"no token: set the environment variable {args.token_env} (in a "
                          f"workflow: env: {{ {args.token_env}: ${{{{ github.token }}}} }}), or "
                          f"name another one with --token-env")
    try:
        body = args.body.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TFLiteError(f"cannot read the comment body {args.body}: {exc}") from None
    client = GitHub(token, args.api_url)
    # The head first: a refused pull request gets no request beyond this one.
    if args.head_sha is not None:
        check_head(client, args.repo, args.pr, args.head_sha)
    author = client.login() if args.author.strip() == SELF else args.author.strip()
    action, found, ignored = post_comment(client, args.repo, args.pr, body, author)
    print(f"{action} comment {found.get('id')} on {args.repo}#{args.pr}"
          + (f": {found['html_url']}" if found.get("html_url") else ""))
    if ignored:
        print(f"ignored {len(ignored)} comment(s) carrying the same marker by "
              f"{', '.join(sorted(set(ignored)))}: only {author}'s comment is ours")
    user = found.get("user")
    poster = user.get("login") if isinstance(user, dict) else None
    if action == "created" and isinstance(poster, str) and poster.casefold() != author.casefold():
        print(f"tflite-budget: warning: the comment was posted as {poster}, not {author} "
              f"(--author): the next run will not find it and will post another; pass "
              f"--author {poster} (or --author @me)", file=sys.stderr)
    return 0


def _explore(args: argparse.Namespace) -> int:
    from .explorer import explore

    args.delegates = args.delegates or ["xnnpack"]
    delegates, settings = _cli_settings(args)
    return explore(args.model, delegates, settings, name=args.model_name or args.model.stem,
                   variant=args.variant, base=args.base, port=args.port, folder=args.node_data)
