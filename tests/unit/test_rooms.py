"""The package's rooms keep their rules, read from CONTRIBUTING.md's rooms table so the page and
the code cannot drift apart: each room imports only the rooms and libraries its row names, no
import loop at module or package level, TensorFlow and Keras only through
``conversion/frameworks``, the worker side only LiteRT and numpy, and no module reaches into
another's private names.

The table is the source: a new module needs a row (or a folder's row) before this passes, and a
new import across rooms needs that row's "may import" cell to say so. Imports are read from the
source (``ast``), at any depth: a lazy import inside a function is still an edge, since it runs
whenever that function does.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.models import chain_model
from tests.helpers.paths import REPOSITORY

ROOT = REPOSITORY
PACKAGE = ROOT / "pytest_tflite"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
FORBIDDEN_IN_WORKER = ("pytest", "_pytest", "tensorflow", "tf_keras", "keras", "pydantic",
                       "tensorflow_model_optimization")
TENSORFLOW_AND_KERAS = ("tensorflow", "tf_keras", "keras")
FRAMEWORKS = "pytest_tflite.conversion.frameworks"
# Words a "may import" cell may hold besides room names.
GROUND, EVERYTHING, NOTHING = "ground", "everything", "nothing"


# ---------------------------------------------------------------- the import graph


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # a module of the package, or a third party's top-level name
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(package: Path = PACKAGE) -> Iterator[Import]:
    """Every import statement of the package, at any depth, resolved to a module of the package
    (``from .x import name`` is an edge to ``x.name`` when that is a module, else to ``x``) or to
    a third party's top-level name; the standard library is left out."""
    modules = module_files(package)
    root = package.name

    def owner(name: str) -> str:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[:len(here.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules
                           else module for alias in node.names]
            for target in targets:
                top = target.split(".")[0]
                if top == root:
                    resolved = owner(target)
                    if resolved != name:
                        yield Import(name, resolved, node.lineno)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    yield Import(name, top, node.lineno)



def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def loop_path(graph: Mapping[str, set[str]], members: list[str]) -> str:
    """One loop through a component, for the message: a -> b -> ... -> a."""
    inside = set(members)
    path = [members[0]]
    while True:
        step = sorted(graph[path[-1]] & inside)
        following = next((s for s in step if s not in path), None)
        if following is None:
            back = next(s for s in step if s in path)
            return " -> ".join([*path[path.index(back):], back])
        path.append(following)


# ---------------------------------------------------------------- the rooms table


@dataclass(frozen=True)
class Room:
    name: str  # as the table writes it: `plugin.py`, `measure/`, `measure/worker/`
    may_import: frozenset[str]  # room names, GROUND, EVERYTHING or NOTHING
    libraries: frozenset[str]  # third-party top-level names

    def holds(self, module: str) -> bool:
        path = module.split(".")[1:]
        if self.name == "__init__.py":
            return not path
        if self.name.endswith("/"):
            folder = self.name.rstrip("/").split("/")
            return path[:len(folder)] == folder
        return path == self.name.removesuffix(".py").split("/")


def rooms_table(text: str | None = None) -> list[Room]:
    """The rows of CONTRIBUTING.md's table under "## The rooms": room | holds | may import |
    libraries. A "may import" cell is a comma-separated list of rooms in backticks and the words
    ground (the ground floor's rooms, see ``floors``), everything or nothing; a "libraries" cell
    names third-party modules in backticks."""
    text = CONTRIBUTING.read_text(encoding="utf-8") if text is None else text
    section = text.split("\n## The rooms", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    rooms = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a rooms row needs 4 cells (room | holds | may import | " \
                                f"libraries): {row}"
        allowed = set()
        # "(lazily)" and such are for people.
        for word in (w.strip() for w in re.sub(r"\([^)]*\)", "", cells[2]).split(",")):
            match = re.fullmatch(r"`([^`]+)`|(ground|everything|nothing)", word)
            assert match, f"{cells[0]}: cannot read {word!r} in the may-import cell {cells[2]!r}"
            allowed.add(match.group(1) or match.group(2))
        rooms.append(Room(cells[0].strip("`"), frozenset(allowed),
                          frozenset(re.findall(r"`([^`]+)`", cells[3]))))
    return rooms


def room_of(module: str, rooms: list[Room]) -> Room | None:
    """The most specific row holding the module (`measure/worker/` before `measure/`)."""
    holding = [room for room in rooms if room.holds(module)]
    return max(holding, key=lambda room: len(room.name), default=None)


def floors(text: str | None = None) -> list[set[str]]:
    """CONTRIBUTING.md's line "The floors, bottom first: `a.py`, `b.py` (the ground floor) <
    `c/`, ...": the rooms of each floor, the ground floor first."""
    text = CONTRIBUTING.read_text(encoding="utf-8") if text is None else text
    line = text.split("The floors, bottom first:", 1)[1].split("\n\n")[0]
    line = " ".join(re.sub(r"\([^)]*\)", "", line).split())
    return [set(re.findall(r"`([^`]+)`", floor)) for floor in line.split(" < ")]


def allowed_rooms(room: Room, ground: set[str]) -> set[str] | None:
    """The rooms ``room`` may import (None: any); GROUND stands for the ground floor's rooms."""
    if EVERYTHING in room.may_import:
        return None
    allowed = set(room.may_import) - {GROUND, NOTHING}
    if GROUND in room.may_import:
        allowed |= ground
    return allowed


def violations(found: list[Import], rooms: list[Room], ground: set[str]) -> list[str]:
    """Every import that leaves its room for one that the room's row does not allow."""
    problems = []
    for item in found:
        source = room_of(item.source, rooms)
        if source is None:
            continue  # a module without a row: test_every_module_has_a_row says so
        if item.target.startswith(f"{PACKAGE.name}.") or item.target == PACKAGE.name:
            target = room_of(item.target, rooms)
            if target is None:
                continue
            allowed = allowed_rooms(source, ground)
            if target is not source and allowed is not None and target.name not in allowed:
                problems.append(f"{item}: room `{source.name}` may not import `{target.name}` "
                                f"(CONTRIBUTING.md allows: {', '.join(sorted(allowed)) or 'none'})")
        elif item.target not in source.libraries and EVERYTHING not in source.libraries:
            problems.append(f"{item}: `{item.target}` is not among room `{source.name}`'s "
                            f"libraries in CONTRIBUTING.md")
    return problems


# ---------------------------------------------------------------- the tests


def test_every_module_has_a_row_and_every_row_a_module() -> None:
    rooms = rooms_table()
    modules = module_files()
    assert not [m for m in modules if room_of(m, rooms) is None]
    assert not [r.name for r in rooms if not any(r.holds(m) for m in modules)]
    named = {r.name for r in rooms}
    assert not [(r.name, sorted(r.may_import - named - {GROUND, EVERYTHING, NOTHING}))
                for r in rooms if r.may_import - named - {GROUND, EVERYTHING, NOTHING}]


def test_the_floors_place_every_room_above_what_it_may_import() -> None:
    rooms = rooms_table()
    levels = floors()
    level = {name: index for index, floor in enumerate(levels) for name in floor}
    assert sorted(level) == sorted(r.name for r in rooms)
    assert sum(map(len, levels)) == len(rooms)  # each room on one floor
    # Only the ground floor's rooms import each other (its rows name them one by one).
    upward = [(room.name, target) for room in rooms
              for target in sorted(allowed_rooms(room, levels[0]) or ())
              if level[target] > level[room.name] or level[target] == level[room.name] > 0]
    assert not upward
    assert not [room.name for room in rooms
                if room.name in levels[0] and room.may_import & {GROUND, EVERYTHING}]


def test_each_room_imports_only_what_contributing_allows() -> None:
    problems = violations(list(imports()), rooms_table(), floors()[0])
    assert not problems, "\n".join(problems)


def test_the_may_import_check_catches_an_import_the_table_forbids(tmp_path: Path) -> None:
    # A planted package: the table lets `low.py` import nothing, and it imports `high.py`.
    package = tmp_path / "pytest_tflite"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("from . import low\n")
    (package / "low.py").write_text("def f():\n    from .high import g\n    import numpy\n")
    table = ("\n## The rooms\n\n| room | holds | may import | libraries |\n|---|---|---|---|\n"
             "| `__init__.py` | x | everything | |\n| `high.py` | x | `low.py` | |\n"
             "| `low.py` | x | nothing | |\n")
    found = list(imports(package))
    assert sorted(map(str, found)) == ["pytest_tflite.high:1 imports pytest_tflite.low",
                                       "pytest_tflite.low:2 imports pytest_tflite.high",
                                       "pytest_tflite.low:3 imports numpy"]
    assert violations(found, rooms_table(table), {"low.py"}) == [
        "pytest_tflite.low:2 imports pytest_tflite.high: room `low.py` may not import "
        "`high.py` (CONTRIBUTING.md allows: none)",
        "pytest_tflite.low:3 imports numpy: `numpy` is not among room `low.py`'s libraries in "
        "CONTRIBUTING.md"]
    graph = module_graph(package)
    assert cycles(graph) == [["pytest_tflite.high", "pytest_tflite.low"]]


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in module_files(package)}
    for item in imports(package):
        if item.target.startswith(f"{package.name}."):
            graph[item.source].add(item.target)
    return graph


def test_no_import_loop_between_modules() -> None:
    graph = module_graph()
    loops = [loop_path(graph, members) for members in cycles(graph)]
    assert not loops


def test_no_import_loop_between_packages_or_rooms() -> None:
    # Package level: pytest_tflite.X (a top-level module, or a whole subpackage); room level:
    # the table's rows (so `measure/` and `measure/worker/` count apart).
    rooms = rooms_table()
    for level in (lambda m: ".".join(m.split(".")[:2]),
                  lambda m: getattr(room_of(m, rooms), "name", m)):
        graph: dict[str, set[str]] = {}
        for source, targets in module_graph().items():
            for target in targets:
                if level(source) != level(target):
                    graph.setdefault(level(source), set()).add(level(target))
        assert not [loop_path(graph, members) for members in cycles(graph)]


def test_tensorflow_and_keras_are_imported_only_through_frameworks() -> None:
    outside = [str(i) for i in imports()
               if i.target in TENSORFLOW_AND_KERAS and i.source != FRAMEWORKS]
    assert not outside


def test_the_worker_imports_only_litert_and_numpy(tmp_path: Path) -> None:
    # The worker as the parent runs it, on a real measurement: every module it loads.
    model = tmp_path / "relu.tflite"
    model.write_bytes(chain_model([16, 16]))
    settings = {"threads": 1, "warmup": {"min_runs": 1, "min_seconds": 0},
                "timing": {"min_runs": 2, "min_seconds": 0}, "input_shapes": {}, "seed": 0}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest_tflite.measure.worker", "measure",
         str(model), "builtin", json.dumps(settings)],
        capture_output=True, text=True, timeout=120, env=env)
    assert json.loads(done.stdout.strip().splitlines()[-1])["result"]["status"] == "ok"
    loaded = _top_level_imports(done.stderr)
    assert {"ai_edge_litert", "numpy", "pytest_tflite"} <= loaded
    assert not loaded & set(FORBIDDEN_IN_WORKER), sorted(loaded & set(FORBIDDEN_IN_WORKER))


def _top_level_imports(stderr: str) -> set[str]:
    """Top-level packages from ``python -X importtime``'s report."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "package":
                names.add(name.split(".")[0])
    return names


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            internal = node.level > 0 or (node.module or "").startswith("pytest_tflite")
            private = [a.name for a in node.names if a.name.startswith("_")]
            if internal and private:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {private}")
    assert not offenders


# ---------------------------------------------------------------- rooms of one job

MAX_LINES = 450


def test_no_module_is_over_450_lines() -> None:
    # wc -l, as the limit is stated: a module this long has more than one job.
    paths = sorted(str(path) for path in PACKAGE.rglob("*.py"))
    counted = subprocess.run(["wc", "-l", *paths], capture_output=True, text=True, check=True)
    lines = {name: int(count) for count, name in
             (row.split(None, 1) for row in counted.stdout.strip().splitlines()) if name != "total"}
    assert len(lines) == len(paths)
    assert {name: count for name, count in lines.items() if count > MAX_LINES} == {}


def test_no_two_modules_in_a_folder_differ_only_by_a_suffix() -> None:
    # cache.py beside cache_keys.py reads as one thing split in two: name each for its job.
    pairs = []
    for folder in sorted({path.parent for path in PACKAGE.rglob("*.py")} | {PACKAGE}):
        names = sorted(path.stem for path in folder.iterdir()
                       if (path.suffix == ".py" or (path / "__init__.py").is_file())
                       and not path.stem.startswith("_"))
        pairs += [f"{folder.relative_to(PACKAGE.parent)}: {a} / {b}"
                  for a in names for b in names if a != b and b.startswith(f"{a}_")]
    assert pairs == []
