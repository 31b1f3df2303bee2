"""The guard against silent miscompilation: a converted model must agree with its source.

Float recipes must match within a small relative error (relative to the largest reference
output, so near-zero outputs do not blow it up); quantized recipes must keep a cosine similarity
above a threshold. NaN or Inf in the converted model's outputs always fails.

Outputs are paired by the SignatureDef's output names: a converter may list output tensors in
any order, and several outputs may share a shape, so neither position nor shape tells which is
which. Only a candidate without a SignatureDef is paired by order, with an OutputOrderWarning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConversionError, OutputOrderWarning, SanityError

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
KEYS = ("max_relative_error", "min_cosine")
# LiteRT quantizer recipes (``litert_quantizer:NAME``, quantizer.py) all quantize weights at
# least: guarded like the converter's int8 recipe.
QUANTIZER_THRESHOLDS = {"min_cosine": 0.9}


def defaults(recipe: str) -> dict[str, float]:
    """The recipe's default thresholds (a copy)."""
    if recipe.startswith("litert_quantizer:"):
        return dict(QUANTIZER_THRESHOLDS)
    return dict(DEFAULT_THRESHOLDS.get(recipe, {}))


def settings(sanity: Any, recipe: str) -> dict[str, float] | None:
    """The thresholds a conversion is checked against (None: sanity=False, not checked).

    ``sanity``: True (the recipe's defaults), False, or a dict overriding some of ``KEYS``.
    An unknown key or a non-number is a ConversionError: a typo must not loosen the guard.
    """
    if sanity is False:
        return None
    if sanity is True:
        return defaults(recipe)
    if not isinstance(sanity, Mapping):
        raise ConversionError(f"sanity={sanity!r}: expected True, False or a dict of thresholds "
                              f"with the keys {', '.join(KEYS)}")
    unknown = [str(k) for k in sanity if k not in KEYS]
    if unknown:
        raise ConversionError(f"sanity: unknown key(s) {unknown}; the valid keys are "
                              f"{', '.join(KEYS)}")
    chosen: dict[str, float] = {}
    for key, value in sanity.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConversionError(f"sanity: {key} must be a number, got {value!r}")
        chosen[str(key)] = float(value)
    return {**defaults(recipe), **chosen}


@dataclass(frozen=True)
class SanityResult:
    relative_error: float
    cosine: float
    samples: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _paired(reference: Mapping[str, Any], candidate: Mapping[str, Any] | Sequence[Any],
            origin: str) -> list[tuple[str, Any, Any]]:
    """(name, reference output, candidate output) for every output, in the reference's order."""
    names = list(reference)
    if isinstance(candidate, Mapping):
        got = list(candidate)
        if sorted(got) != sorted(names):
            only_candidate = [n for n in got if n not in reference]
            only_source = [n for n in names if n not in candidate]
            raise SanityError(
                f"{origin}: its outputs are named {got}, its source's {names} "
                f"(only in the converted model: {only_candidate}; only in the source: "
                f"{only_source}): outputs are paired by the signature's output names")
        return [(n, reference[n], candidate[n]) for n in names]
    values = list(candidate)
    if len(values) != len(names):
        raise SanityError(f"{origin}: has {len(values)} outputs, its source has {len(names)}")
    if len(values) > 1:
        warnings.warn(OutputOrderWarning(
            f"{origin}: the model has no SignatureDef, so its {len(values)} outputs are "
            f"paired with the source's {names} by tensor order, which a converter does not "
            f"promise to keep"), stacklevel=3)
    return [(n, reference[n], value) for n, value in zip(names, values)]


def compare(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any] | Sequence[Any],
    recipe: str,
    *,
    thresholds: dict[str, float] | None = None,
    origin: str = "the converted model",
) -> SanityResult:
    """Compare the converted model's outputs with its source's, paired by output name.

    ``reference``: the source's outputs by signature name. ``candidate``: the converted model's
    by name, or a list in tensor order when it has no SignatureDef (paired by order, warned).
    """
    import numpy as np

    limits = {**defaults(recipe), **(thresholds or {})}
    pairs = _paired(reference, candidate, origin)
    for name, want, got in pairs:
        if np.shape(want) != np.shape(got):
            raise SanityError(f"{origin}: output {name!r} has shape {np.shape(got)}, its "
                              f"source gives {np.shape(want)}")
    ref = np.concatenate([np.asarray(r, np.float64).ravel() for _, r, _ in pairs])
    got = np.concatenate([np.asarray(c, np.float64).ravel() for _, _, c in pairs])
    if not np.all(np.isfinite(got)):
        bad = int(np.count_nonzero(~np.isfinite(got)))
        raise SanityError(
            f"{origin}: {bad} of {got.size} output values are NaN or Inf where the source gives "
            f"finite values: the converter produced a broken model (recipe {recipe!r})"
        )
    scale = float(np.max(np.abs(ref))) or 1.0
    relative_error = float(np.max(np.abs(got - ref)) / scale) if ref.size else 0.0
    norms = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(np.dot(ref, got) / norms) if norms else float(np.allclose(ref, got))
    result = SanityResult(relative_error, cosine, samples=len(pairs[0][1]) if pairs else 0)
    problems = []
    if relative_error > limits.get("max_relative_error", float("inf")):
        worst = max(pairs, key=lambda p: float(np.max(np.abs(
            np.asarray(p[2], np.float64) - np.asarray(p[1], np.float64)), initial=0.0)))
        problems.append(f"max relative error {relative_error:.3g} > "
                        f"{limits['max_relative_error']:g}, largest in output {worst[0]!r}")
    if cosine < limits.get("min_cosine", -1.0):
        problems.append(f"cosine similarity {cosine:.4f} < {limits['min_cosine']:g}")
    if problems:
        raise SanityError(
            f"{origin}: outputs disagree with the source model on {result.samples} sample(s) "
            f"({'; '.join(problems)}): the conversion (recipe {recipe!r}) is likely broken. "
            f"If this is expected, relax it with sanity={{...}} or turn it off with sanity=False."
        )
    return result
