"""The built-in runtime defaults, written once for both sides of the worker boundary.

The parent resolves settings from them (``settings.py``) and every help string reads them; the
worker falls back on them when a caller leaves a value out. Warm-up and timing are LiteRT's
benchmark_model's; one limit, in seconds, covers every worker run (a delegate's measurement, an
evaluation, a conversion's sanity check). Plain data: the worker and the plugin both import it.
"""

from __future__ import annotations

DEFAULT_THREADS = 1
DEFAULT_WARMUP = {"min_runs": 1, "min_seconds": 0.5}
DEFAULT_TIMING = {"min_runs": 50, "min_seconds": 1.0}
DEFAULT_SEED = 0
DEFAULT_TIMEOUT_S = 300.0
# runtime.batch_sizes: none by default, so only the model's own batch is timed.
DEFAULT_BATCH_SIZES: list[int] = []
