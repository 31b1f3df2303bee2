"""A broken LiteRT install, put first on PYTHONPATH: the package is found, and its flatbuffer
schema reads (the real one's), but its interpreter fails to import as a missing native library
does. What a half-upgraded or wrong-platform ``ai-edge-litert`` wheel looks like."""

from __future__ import annotations

import textwrap
from pathlib import Path

NATIVE_ERROR = "libpywrap_litert_common.so: cannot open shared object file: No such file or directory"


def broken_litert(folder: Path) -> Path:
    """Write the shadow package under ``folder``; returns the folder for PYTHONPATH."""
    package = folder / "ai_edge_litert"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent("""
        # The real package's modules stay reachable (its schema loads), behind this one.
        import pathlib, sys
        here = pathlib.Path(__file__).resolve().parent
        for entry in sys.path:
            real = pathlib.Path(entry or ".").resolve() / "ai_edge_litert"
            if real != here and (real / "__init__.py").is_file():
                __path__.append(str(real))
                break
    """))
    (package / "interpreter.py").write_text(f"raise ImportError({NATIVE_ERROR!r})\n")
    return folder
