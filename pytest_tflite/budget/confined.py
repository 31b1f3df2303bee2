"""Paths a budget file names stay inside the project: ``source`` and ``external:PATH`` delegates.

A budget file comes with pull requests, so what it points at is checked before anything reads
it: a ``source`` of ``/etc/passwd`` (or a symlink to it) would otherwise have its size and first
bytes reported, and an ``external:`` delegate outside the project is a library nobody reviewed
in the repository. Paths are resolved (symlinks followed) and must land inside the root, unless
the file opts out with ``allow_outside_rootdir = "why"``. Only names are resolved here: no byte
of the target is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BudgetFileError

EXTERNAL = "external:"
# What marks a project's root when the caller does not give one (pytest's rootdir rules, plus
# a checkout's .git): the first folder above the budget file that holds one of these.
ROOT_MARKERS = ("pyproject.toml", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", ".git")


def project_root(budget: Path) -> Path | None:
    """The root of the project holding ``budget``: None when no folder above it is marked
    (a budget file in a scratch folder, loaded by a script)."""
    for folder in budget.resolve().parents:
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return None


def outside(data: dict[str, Any], budget: Path, root: Path) -> list[tuple[str, str, Path]]:
    """(key, value, resolved path) of each ``source`` or ``external:PATH`` in the budget file's
    TOML ``data`` that resolves outside ``root``. ``source`` is relative to the budget file;
    ``external:PATH`` to the working directory, as the measuring worker loads it. A bare library
    name (``external:libedgetpu.so.1``, no ``/``) is the dynamic loader's to find among the
    system's libraries, never a project file, so it is not checked."""
    top = root.resolve()
    found = []
    source = data.get("source")
    if isinstance(source, str):
        resolved = (budget.parent / source).resolve()
        if not resolved.is_relative_to(top):
            found.append(("source", source, resolved))
    for key, delegate in _external_names(data, ""):
        library = delegate[len(EXTERNAL):]
        if "/" not in library:
            continue
        resolved = Path(library).resolve()
        if not resolved.is_relative_to(top):
            found.append((key, delegate, resolved))
    return found


def _external_names(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every ``external:`` delegate the file names, as a table key (``latency."external:x"``)
    or a list item (``runtime.delegates``, ``accuracy.delegates``), with its key path."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and key.startswith(EXTERNAL):
                yield f'{where}."{key}"' if where else f'"{key}"', key
            yield from _external_names(value, path)
    elif isinstance(node, list):
        for item in node:
            yield from _external_names(item, where)
    elif isinstance(node, str) and node.startswith(EXTERNAL):
        yield where, node


def refusal(budget: Path, key: str, value: str, resolved: Path, root: Path) -> str:
    """The message for one path outside the root: what, where it leads, and the two ways out."""
    return (f"{budget}: {key} = {value!r} resolves to {resolved}, outside the project's root "
            f"{root}: a budget file may only point at files inside the project (they are reviewed "
            f"with it). Move the file into the project, or, if it must come from there, add "
            f"allow_outside_rootdir = \"why\" at the top of {budget.name} (refused before "
            f"anything was read from it)")


def confine(budget: Path, data: dict[str, Any], allowed: str | None, root: Path | None) -> None:
    """Refuse the budget file when a path it names resolves outside the project, unless
    ``allowed`` says why. The project: ``root`` (pytest's rootdir) or the project found above the
    file, whichever is wider (``pytest budgets/`` without an ini file makes ``budgets/`` the
    rootdir, yet ``source = "../models/m.tflite"`` is the project's); neither: nothing to hold it
    to."""
    roots = [found.resolve() for found in (root, project_root(budget)) if found is not None]
    if allowed is not None or not roots:
        return
    holding = [found for found in roots if budget.resolve().is_relative_to(found)]
    root = min(holding or roots, key=lambda found: len(found.parts))
    found = outside(data, budget, root)
    if found:
        raise BudgetFileError(refusal(budget, *found[0], root))
