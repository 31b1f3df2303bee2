"""How a failure the plugin raised reads in the test report: the user's line and the message.

A budget table or a plugin error is the whole finding, so its report drops what pytest's long
traceback adds around it: the test's fixture values (a data set's repr runs for pages), this
package's frames and ``contextlib``'s. TensorFlow's start-up lines (oneDNN, CUDA, CPU flags),
which its import writes to the captured stderr of whichever test imports it first, leave the
report too. Everything else pytest shows stays.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import _pytest
import pluggy
import pytest

from .errors import BudgetExceeded, TFLiteError

# Frames that are never where the user's mistake is: this package's, and those of the pytest and
# pluggy machinery that calls a fixture (pytest drops these itself only for the test function).
PACKAGE = Path(__file__).resolve().parent
MACHINERY = (PACKAGE, Path(_pytest.__file__).resolve().parent,
             Path(pluggy.__file__).resolve().parent)
# What TensorFlow and XLA write to stderr while importing, whatever TF_CPP_MIN_LOG_LEVEL says
# (absl writes them before its log level is read): glog-style lines from these sources, absl's
# banner, and the second line of the CPU-flags notice.
_START_UP_SOURCES = ("port", "cudart_stub", "cpu_feature_guard", "cuda_platform", "cuda_executor",
                     "cuda_dnn", "cuda_fft", "cuda_blas", "computation_placer")
START_UP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rf"|[IWE]\d{{4}} [\d:.]+ +\d+ ({'|'.join(_START_UP_SOURCES)})\.cc:\d+\] .*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler "
    r"flags\.")


def short_failure(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
    """The report of a budget or plugin error raised in a test: pytest's short traceback over the
    user's frames (no fixture values), ending in the message. None when pytest's own report
    stands: another exception, or a traceback style the user chose (``--tb``, ``--fulltrace``)."""
    config = item.config
    if (not isinstance(excinfo.value, (BudgetExceeded, TFLiteError))
            or not isinstance(item, pytest.Function)
            or config.getoption("tbstyle", "auto") != "auto"
            or config.getoption("fulltrace", False)):
        return None

    def user_frames(info: pytest.ExceptionInfo[BaseException]) -> Any:
        everything = info.traceback.cut(path=item.path).filter(info)
        kept = everything.filter(lambda entry: not _internal(entry.path))
        return kept if len(kept) else everything

    try:
        abspath = Path.cwd() != config.invocation_params.dir
    except OSError:
        abspath = True
    return excinfo.getrepr(style="short", funcargs=False, chain=False, abspath=abspath,
                           showlocals=bool(config.getoption("showlocals", False)),
                           tbfilter=user_frames)


def _internal(path: Any) -> bool:
    """A frame of ``MACHINERY`` or of ``contextlib``."""
    where = Path(str(path))
    return where.name == "contextlib.py" or any(where.is_relative_to(m) for m in MACHINERY)


def without_start_up_noise(sections: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The report's sections with TensorFlow's start-up lines left out of captured stderr; a
    section they alone filled goes."""
    kept = []
    for title, text in sections:
        if title.startswith("Captured stderr"):
            lines = [line for line in text.splitlines(keepends=True)
                     if not START_UP_LINE.fullmatch(line.rstrip("\r\n"))]
            text = "".join(lines)
            if not text.strip():
                continue
        kept.append((title, text))
    return kept
