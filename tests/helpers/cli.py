"""Running ``tflite-budget`` in-process, its output captured."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from pytest_tflite import cli


def run_cli(*args: Any) -> tuple[int, str, str]:
    """``cli.main`` with its output captured here (usable in module-scoped fixtures too): exit
    code, stdout, stderr; never a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, out.getvalue(), err.getvalue()
