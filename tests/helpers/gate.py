"""A pytester project whose one test checks ``dense{UNITS}.tflite`` (``UNITS`` from the
environment, 16 by default) against ``budgets/mlp.toml``: the base branch and the head of a
pull request in one folder, told apart by ``UNITS``. Ready .tflite files, so the inner
sessions, and their xdist workers, never import TensorFlow."""

from __future__ import annotations

from typing import Any

from tests.helpers.models import dense_model

TEST = """
    import os, pytest

    @pytest.mark.tflite_budget("mlp")
    def test_mlp(tflite_convert, tflite_budget):
        units = os.environ.get("UNITS", "16")
        tflite_budget.check(tflite_convert(os.path.abspath(f"dense{units}.tflite"),
                                           variant="float32"))
"""


def gate(project: Any, budgets: dict[str, str], widths: tuple[int, ...] = (16, 64),
         inputs: int = 8) -> Any:
    """The project (``project`` is the suite's fixture), with ``dense{N}.tflite`` for each of
    ``widths``: ``dense_model(N, inputs)``."""
    p = project(budgets, test_gate=TEST)
    for units in widths:
        (p.path / f"dense{units}.tflite").write_bytes(dense_model(units, inputs))
    return p
