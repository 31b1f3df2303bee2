"""What the figures depend on besides the model: installed versions, the CPU and its ISA
flags, the threads. A baseline records it, the engine compares it, caches and reports key on
the versions. Standard library only."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# The CPU features that change which kernels XNNPACK and the builtin ops pick.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile",
             "neon", "asimd", "asimddp", "sve", "i8mm", "bf16")


def package_version(distribution: str) -> str | None:
    """An installed distribution's version; None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment_fingerprint(threads: int | None) -> dict[str, Any]:
    """What the figures depend on besides the model: library versions, the CPU, the threads."""
    version = package_version
    cpu, flags = _cpu()
    return {
        "python": sys.version.split()[0],
        "tensorflow": version("tensorflow"),
        "ai_edge_litert": version("ai-edge-litert"),
        "numpy": version("numpy"),
        "machine": platform.machine(),
        "cpu": cpu,
        "isa": sorted(flags),
        "threads": threads,
    }


def _cpu() -> tuple[str, set[str]]:
    """The CPU model and its ISA flags from /proc/cpuinfo (Linux); the platform's words else."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), set()
    model, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split()) & set(ISA_FLAGS)
    return model or platform.machine(), flags


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints, e.g. "tensorflow 2.20.0 -> 2.21.0"."""
    return [f"{key} {saved.get(key)} -> {current.get(key)}"
            for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
