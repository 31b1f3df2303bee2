"""``tflite-budget``: the same core as the plugin, from a shell.

Exit codes: 0 within budget, 1 over budget, 2 usage error or invalid model / budget file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import TFLiteError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tflite-budget", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("schema", help="print the JSON Schema of budget files")
    measure = commands.add_parser("measure", help="measure a .tflite model (static figures)")
    measure.add_argument("model", type=Path)
    measure.add_argument("--json", action="store_true", help="print the JSON measurement")
    check = commands.add_parser("check", help="check a .tflite model against a budget file")
    check.add_argument("model", type=Path)
    check.add_argument("--budget", type=Path, required=True, help="the budget file (TOML)")
    check.add_argument("--variant", default="default", help="the [variants.NAME] section")
    args = parser.parse_args(argv)
    try:
        if args.command == "schema":
            from .budget import json_schema

            print(json_schema())
            return 0
        if args.command == "measure":
            return _measure(args.model, args.json)
        return _check(args.model, args.budget, args.variant)
    except TFLiteError as exc:
        print(f"tflite-budget: error: {exc}", file=sys.stderr)
        return 2


def _measure(path: Path, as_json: bool) -> int:
    from .measure.static import measure_static
    from .model import TFLiteModel
    from .report import table
    from .units import format_bytes

    measurement = measure_static(TFLiteModel.from_path(path))
    if as_json:
        print(json.dumps(measurement, indent=2))
        return 0
    rows = [["size", format_bytes(measurement["size_bytes"])],
            ["gzip", format_bytes(measurement["gzip_bytes"])],
            ["ops", ", ".join(f"{k} x{v}" for k, v in measurement["ops"].items())],
            ["subgraphs", str(len(measurement["subgraphs"]))]]
    print("\n".join(table(["metric", "value"], rows)))
    return 0


def _check(model_path: Path, budget_path: Path, variant: str) -> int:
    from . import check
    from .budget import load
    from .measure.static import measure_static
    from .model import TFLiteModel
    from .report import check_rows, table

    budget = load(budget_path)
    section = budget.variant(variant)
    results = check.evaluate(measure_static(TFLiteModel.from_path(model_path)), section)
    rows = check_rows(c.to_json() for c in results)
    print("\n".join(table(["metric", "measured", "budget", "over by / reason", "verdict"], rows)))
    verdict = check.overall(results)
    print(f"{budget.model} [{variant}]: {verdict}")
    return 0 if verdict in ("pass", "skip") else 1
