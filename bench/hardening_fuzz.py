"""Hardening fuzz: flatbuffer-aware mutants through ``tflite-budget measure``, by mutation class.

Builds MUTATIONS seeded mutants (``tests/hardening/fuzz_mutations.py``: shape, buffer_index, opcode_index,
subgraph_index, quantization, sparsity, table, bytes; seeds: a small FC model, a
WHILE/IF/CALL_ONCE model, a quantized int8 model, a sparse model with DENSIFY), the classes
taking turns, and runs each one through ``pytest_tflite.cli.main(["measure", PATH, "--delegate",
"builtin", "--json"])`` in this process: the static checks here, the interpreter in a fresh
worker. Runtime protocol: 1 warm-up run, 3 timed runs, a 10 s worker timeout; a mutant that
takes longer than BOUND_S counts as a hang.

Per class it prints the count, the outcomes by kind
  measured   the model ran, or the delegate said it cannot run it (with a reason)
  rejected   exit 2 with the file and a known reason (static refusal, interpreter refusal, a
             contained worker crash or timeout)
  crash      uncontained: a Python traceback, an exception out of the CLI, an unknown exit code
             or an error of no known category
  hang       no answer within BOUND_S
and the fraction of mutants whose worker reached ``allocate_tensors()`` (read from the
PYTEST_TFLITE_TRACE file), so the fuzz is seen to reach the interpreter, not only the static
checks. Then a total line, and the first few crashes and hangs with their details.

Target: 0 crashes and 0 hangs.

Run: python bench/hardening_fuzz.py [MUTATIONS] [SEED]     (default 1000, 4)

The suite (tests/hardening/test_fuzz.py) draws the first 24 of the same seeded sequence; this is the full
budget, to run before finishing a change to the flatbuffer view, the static checks or the worker.
``main(mutations, seed)`` returns the figures as a dict (per class and total).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MUTATIONS = 1000
SEED = 4  # tests/hardening/test_fuzz.py's: the suite's sample comes first
TIMEOUT_S = 10.0
BOUND_S = TIMEOUT_S + 15  # the worker's timeout plus process start and the static checks
KINDS = ("measured", "rejected", "crash", "hang")


def main(mutations: int = MUTATIONS, seed: int = SEED, *, quiet: bool = False) -> dict[str, Any]:
    from dataclasses import replace

    from pytest_tflite import settings
    from tests.hardening.fuzz_mutations import CLASSES, measure_outcome, mutants

    settings.BUILT_IN = replace(settings.BUILT_IN, warmup=settings.Runs(1, 0),
                                timing=settings.Runs(3, 0), timeout=TIMEOUT_S)
    per_class = -(-mutations // len(CLASSES))
    counts: dict[str, Counter[str]] = {name: Counter() for name in CLASSES}
    categories: dict[str, Counter[str]] = {name: Counter() for name in CLASSES}
    problems: list[str] = []
    contained: list[str] = []  # worker crashes and timeouts: contained, but worth a look
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hardening-fuzz-") as scratch:
        trace = Path(scratch, "trace.log")
        for index, mutant in enumerate(mutants(per_class, seed)):
            if index >= mutations:
                break
            path = Path(scratch, mutant.file_name(index))
            path.write_bytes(mutant.content)
            outcome = measure_outcome(path, BOUND_S, trace)
            found = counts[mutant.mutation_class]
            found["count"] += 1
            found[outcome.kind] += 1
            found["allocated"] += outcome.allocated
            categories[mutant.mutation_class][outcome.category] += 1
            if outcome.category in ("crashed", "timed out"):
                contained.append(f"{mutant.mutation_class} {mutant.seed} {mutant.detail}: "
                                 f"{outcome.message[-200:]}")
            if outcome.kind in ("crash", "hang"):
                problems.append(f"{mutant.mutation_class} {mutant.seed} {mutant.detail}: "
                                f"{outcome.kind} {outcome.category}: {outcome.message[-400:]}")
            path.unlink()
    elapsed = time.monotonic() - start
    figures: dict[str, Any] = {"mutations": mutations, "seed": seed, "seconds": elapsed,
                               "classes": {}, "total": {}}
    total: Counter[str] = Counter()
    for name, found in counts.items():
        figures["classes"][name] = _row(found, categories[name])
        total.update(found)
    figures["total"] = _row(total, sum(categories.values(), Counter()))
    figures["problems"] = problems
    figures["contained"] = contained
    if not quiet:
        print(f"hardening fuzz: {mutations} mutations (seed {seed}) in {elapsed:.0f} s, "
              f"worker timeout {TIMEOUT_S:g} s, bound {BOUND_S:g} s")
        header = f"{'class':<16}{'count':>6}" + "".join(f"{k:>10}" for k in KINDS) + \
            f"{'allocate':>10}"
        print(header)
        for name, row in [*figures["classes"].items(), ("total", figures["total"])]:
            print(f"{name:<16}{row['count']:>6}" + "".join(f"{row[k]:>10}" for k in KINDS)
                  + f"{row['allocated_fraction']:>10.2f}")
        print("reasons (total):", ", ".join(f"{c} {n}" for c, n in
                                            figures["total"]["categories"].items()))
        for line in contained[:10]:
            print("contained", line)
        for line in problems[:20]:
            print("PROBLEM", line)
    return figures


def _row(found: Counter[str], categories: Counter[str]) -> dict[str, Any]:
    count = found["count"]
    return {"count": count, **{k: found[k] for k in KINDS}, "allocated": found["allocated"],
            "allocated_fraction": found["allocated"] / count if count else 0.0,
            "categories": dict(categories.most_common())}


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    result = main(*arguments)
    sys.exit(1 if result["total"]["crash"] or result["total"]["hang"] else 0)
