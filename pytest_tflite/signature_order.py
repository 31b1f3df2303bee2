"""The order a model's outputs are counted in (``output=INDEX``): their signature names sorted
naturally, ``output_2`` before ``output_10``. Keras 3 names outputs ``output_N`` in its own
order, and a SavedModel's signature keys sort this way, so a ``.tflite`` run in the worker and
its Keras or SavedModel source run here count alike. The worker imports it: standard library
only."""

from __future__ import annotations

import re
from collections.abc import Iterable


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value: ``output_2`` before ``output_10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part)
                 for part in re.split(r"(\d+)", name) if part)


def signature_order(names: Iterable[object]) -> list[str]:
    """Output names in signature order (the order an ``output=INDEX`` counts in)."""
    return sorted((str(n) for n in names), key=natural_key)
