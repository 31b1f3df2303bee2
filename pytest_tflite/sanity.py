"""The guard against silent miscompilation: a converted model must agree with its source.

Float recipes must match within a small relative error (relative to the largest reference
output, so near-zero outputs do not blow it up); quantized recipes must keep a cosine similarity
above a threshold. NaN or Inf in the converted model's outputs always fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import SanityError

# Per recipe: max relative error for float recipes, min cosine for quantized ones. Chosen well
# clear of what correct conversions of the test models reach (float32 ~1e-6, float16 ~1e-3,
# int8 cosine > 0.99) and well inside what a wrong-weights model gives.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "float32": {"max_relative_error": 1e-3},
    "float16": {"max_relative_error": 2e-2},
    "dynamic_int8": {"min_cosine": 0.95},
    "int8": {"min_cosine": 0.9},
    "int16x8": {"min_cosine": 0.98},
}


def _aligned(reference: list[Any], candidate: list[Any]) -> list[Any]:
    """The candidate's outputs in the source's order, where their shapes tell it unambiguously.

    Converted models list outputs by tensor, not in the order the source declared them.
    """
    shapes = [tuple(r.shape) for r in reference]
    if [tuple(c.shape) for c in candidate] == shapes or len(set(shapes)) != len(shapes):
        return candidate
    by_shape = {tuple(c.shape): c for c in candidate}
    return [by_shape[s] for s in shapes] if set(by_shape) == set(shapes) else candidate


@dataclass(frozen=True)
class SanityResult:
    relative_error: float
    cosine: float
    samples: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    reference: list[Any],
    candidate: list[Any],
    recipe: str,
    *,
    thresholds: dict[str, float] | None = None,
    origin: str = "the converted model",
) -> SanityResult:
    import numpy as np

    limits = {**DEFAULT_THRESHOLDS.get(recipe, {}), **(thresholds or {})}
    if len(reference) != len(candidate):
        raise SanityError(
            f"{origin}: has {len(candidate)} outputs, its source has {len(reference)}"
        )
    candidate = _aligned(reference, candidate)
    ref = np.concatenate([np.asarray(r, np.float64).ravel() for r in reference])
    got = np.concatenate([np.asarray(c, np.float64).ravel() for c in candidate])
    if ref.shape != got.shape:
        raise SanityError(f"{origin}: outputs have {got.size} values, its source gives {ref.size}")
    if not np.all(np.isfinite(got)):
        bad = int(np.count_nonzero(~np.isfinite(got)))
        raise SanityError(
            f"{origin}: {bad} of {got.size} output values are NaN or Inf where the source gives "
            f"finite values: the converter produced a broken model (recipe {recipe!r})"
        )
    scale = float(np.max(np.abs(ref))) or 1.0
    relative_error = float(np.max(np.abs(got - ref)) / scale)
    norms = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(np.dot(ref, got) / norms) if norms else float(np.allclose(ref, got))
    result = SanityResult(relative_error, cosine, samples=len(reference[0]) if reference else 0)
    problems = []
    if relative_error > limits.get("max_relative_error", float("inf")):
        problems.append(
            f"max relative error {relative_error:.3g} > {limits['max_relative_error']:g}"
        )
    if cosine < limits.get("min_cosine", -1.0):
        problems.append(f"cosine similarity {cosine:.4f} < {limits['min_cosine']:g}")
    if problems:
        raise SanityError(
            f"{origin}: outputs disagree with the source model on {result.samples} sample(s) "
            f"({'; '.join(problems)}): the conversion (recipe {recipe!r}) is likely broken. "
            f"If this is expected, relax it with sanity={{...}} or turn it off with sanity=False."
        )
    return result
