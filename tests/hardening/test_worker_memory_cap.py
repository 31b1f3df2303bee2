"""The memory cap is applied inside the worker, not only named in messages.

Two views: the address-space limit the real worker entry runs under, read inside it; and a
model whose file hides how much memory it needs (a TILE whose output is declared 1 row but
made 32 Mi rows at Prepare: 512 MiB), which passes without a cap and is stopped by a 256 MiB
cap. No outer limit is set here, so nothing but the worker's own RLIMIT_AS can stop it.
"""

from __future__ import annotations

import json
import resource
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_tflite import cli
from pytest_tflite.measure import isolated
from tests.helpers.models import Op, Subgraph, Tensor, build_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="RLIMIT_AS is enforced on Linux")

MIB = 2**20
TILED_ROWS = 512 * MIB // 16  # rows of four float32: 512 MiB


def hidden_model() -> bytes:
    """x[1,4] -> TILE(multiples [TILED_ROWS, 1]) -> MEAN over axis 0 -> y[4], the tiled tensor
    declared [1, 4]: the static plan sees a few bytes, Prepare asks for 512 MiB."""
    return build_model([Subgraph(
        tensors=[Tensor("x", [1, 4]),
                 Tensor("multiples", [2], dtype="int32", data=[TILED_ROWS, 1]),
                 Tensor("tiled", [1, 4]), Tensor("axis", [1], dtype="int32", data=[0]),
                 Tensor("y", [4])],
        ops=[Op("TILE", [0, 1], [2]), Op("MEAN", [2, 3], [4])],
        inputs=[0], outputs=[4])])


# The real worker entry (python -m pytest_tflite.measure.worker), with one addition: as it
# exits, it prints the address-space limit it ran under as its last JSON line.
REPORTING_WORKER = textwrap.dedent("""
    import atexit, json, resource, runpy

    def report():
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        print(json.dumps({"ok": True, "result": {"soft": soft, "hard": hard}}), flush=True)

    atexit.register(report)
    runpy.run_module("pytest_tflite.measure.worker", run_name="__main__", alter_sys=True)
""")


def test_a_capped_worker_runs_under_that_address_space_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolated, "worker_command",
                        lambda: [sys.executable, "-c", REPORTING_WORKER])
    cap = 3 * 2**30
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    expected = cap if hard == resource.RLIM_INFINITY else min(cap, hard)
    # No command: the worker answers with its usage, and exits; the limit is read as it exits.
    found = isolated.call_worker([], timeout=60, memory_cap=cap)
    assert (found["soft"], found["hard"]) == (expected, hard)


def run_check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
              cap: str) -> tuple[int, dict[str, Any]]:
    """``tflite-budget check`` of the hidden model under ``--max-memory cap``: exit code, entry."""
    model, budget = tmp_path / "hidden.tflite", tmp_path / "hidden.toml"
    model.write_bytes(hidden_model())
    budget.write_text(textwrap.dedent("""
        [defaults.runtime]
        delegates = ["builtin"]
        warmup = { min_runs = 1, min_seconds = 0 }
        timing = { min_runs = 1, min_seconds = 0 }
        [variants.v.latency.builtin]
        median = "60 s"
    """))
    code = cli.main(["check", str(model), "--budget", str(budget), "--max-memory", cap, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_model_that_needs_more_than_the_cap_is_stopped_by_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Without a cap in its way the model runs, and really uses its 512 MiB...
    code, entry = run_check(tmp_path, capsys, "4 GiB")
    builtin = entry["delegates"]["builtin"]
    assert (code, entry["verdict"], builtin["status"]) == (0, "pass", "ok"), entry
    assert builtin["peak_rss_bytes"] > 512 * MIB
    assert entry["planned_arena_bytes"] < MIB  # ...which its file does not show
    # ...and under a 256 MiB cap the worker's own limit stops it.
    code, entry = run_check(tmp_path, capsys, "256 MiB")
    (latency,) = entry["checks"]
    assert (code, entry["verdict"], latency["verdict"]) == (2, "error", "error"), entry
    assert entry["refused"] is None  # not the static refusal: the plan fit
    assert latency["reason"].startswith(
        "builtin: exceeded the memory cap of 256.0 MiB (runtime.max_memory)"), latency
