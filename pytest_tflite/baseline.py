"""Baselines: a base branch's typed results and ``.tflite`` files, saved and compared against.

Layout of a baseline directory::

    DIR/manifest.json                {"version": 1, "environment": {...}}
    DIR/<model>/<variant>.json       the entry (results.Entry.to_json())
    DIR/<model>/<variant>.tflite     the model itself, for the paired latency comparison

Every file is written atomically (a temporary file in the same folder, flushed, then
``os.replace``), and the manifest goes last, with the SHA-256 of every entry and model file
(``"files": {"<model>/<variant>.json": HASH, ...}``). A save killed halfway leaves the previous
manifest: an entry it rewrote no longer matches its hash, and looking it up is an error that says
to save again, never a comparison against half of one save and half of another. No pytest, no
TensorFlow. The environment fingerprint it records is ``environment``'s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TFLiteError
from .files import path_part, write_atomic
from .results import Entry

BASELINE_VERSION = 1


class BaselineError(TFLiteError):
    """A baseline directory is missing, corrupt, of another version, or would be ambiguous."""


@dataclass(frozen=True)
class BaselineEntry:
    entry: Entry
    tflite: Path | None  # None when the saved model file is missing


class Baseline:
    """An opened baseline directory: its environment, and entries looked up by model and variant."""

    def __init__(self, directory: Path, environment: dict[str, Any],
                 files: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.environment = environment
        # Relative path -> SHA-256 of what the save wrote; None for a manifest older than that.
        self.files = files

    @classmethod
    def open(cls, directory: Path) -> Baseline:
        manifest = directory / "manifest.json"
        if not directory.is_dir():
            raise BaselineError(
                f"baseline directory {directory} does not exist: save one on the base branch "
                f"with --tflite-baseline-save={directory}")
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if any(directory.glob("*/*.json")):
                raise BaselineError(f"{manifest} is missing but {directory} holds entries: a "
                                    f"save was interrupted; save the baseline again (with "
                                    f"--tflite-baseline-save)") from None
            raise BaselineError(f"{manifest} is missing: {directory} is not a baseline "
                                f"directory (save one with --tflite-baseline-save)") from None
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise BaselineError(f"{manifest} is corrupt ({exc}): save the baseline again") from None
        if not isinstance(data, dict) or data.get("version") != BASELINE_VERSION:
            found = data.get("version") if isinstance(data, dict) else None
            raise BaselineError(
                f"{manifest} has version {found!r}; this pytest-tflite reads version "
                f"{BASELINE_VERSION}: save the baseline again with this version")
        environment = data.get("environment")
        files = data.get("files")
        return cls(directory, environment if isinstance(environment, dict) else {},
                   files if isinstance(files, dict) else None)

    def lookup(self, model: str, variant: str) -> BaselineEntry | None:
        """The saved entry of a model variant; None when the baseline has none (a new model)."""
        name = f"{path_part(model)}/{path_part(variant)}"
        path = self.directory / f"{name}.json"
        if self.files is not None and f"{name}.json" not in self.files:
            # Not part of the saved baseline, even if a file is there: left by an earlier save,
            # or written by one that was interrupted before its manifest.
            return None
        if not path.is_file():
            if self.files is not None:
                raise BaselineError(f"{path} is missing, though the manifest lists it: save the "
                                    f"baseline again")
            return None
        try:
            raw = path.read_bytes()
            self._verify(f"{name}.json", raw)
            entry = Entry.from_json(json.loads(raw.decode("utf-8")))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise BaselineError(f"{path} is corrupt ({type(exc).__name__}: {exc}): save the "
                                f"baseline again") from None
        tflite = path.with_suffix(".tflite")
        if self.files is not None and f"{name}.tflite" in self.files:
            try:
                self._verify(f"{name}.tflite", tflite.read_bytes())
            except OSError as exc:
                raise BaselineError(f"{tflite} is missing or unreadable ({exc}), though the "
                                    f"manifest lists it: save the baseline again") from None
        return BaselineEntry(entry, tflite if tflite.is_file() else None)

    def _verify(self, name: str, content: bytes) -> None:
        if self.files is not None and self.files.get(name) != _sha256(content):
            raise ValueError("it does not match the hash in the manifest (a save interrupted "
                             "while rewriting it?)")


def save(directory: Path, entries: Sequence[Entry], environment: dict[str, Any]) -> list[str]:
    """Write every entry and its model; the manifest last. Returns what was written, per line.

    Two tests that measured the same model variant would make the baseline depend on which
    ran last: that is an error naming both, and nothing is written.
    """
    by_key: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        key = (path_part(entry.model), path_part(entry.variant))
        if key in by_key and by_key[key].test != entry.test:
            raise BaselineError(
                f"two tests measured {entry.model} [{entry.variant}]: {by_key[key].test} and "
                f"{entry.test}; a baseline keeps one result per model variant: give one of "
                f"them another variant= (or check the model once)")
        by_key[key] = entry
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    files: dict[str, str] = {}
    for (model, variant), entry in sorted(by_key.items()):
        folder = directory / model
        folder.mkdir(exist_ok=True)
        content = (json.dumps(entry.to_json(), indent=2) + "\n").encode("utf-8")
        write_atomic(folder / f"{variant}.json", content)
        files[f"{model}/{variant}.json"] = _sha256(content)
        if entry.model_path and Path(entry.model_path).is_file():
            content = Path(entry.model_path).read_bytes()
            write_atomic(folder / f"{variant}.tflite", content)
            files[f"{model}/{variant}.tflite"] = _sha256(content)
        else:  # a model file left from an earlier save would pair with this entry
            (folder / f"{variant}.tflite").unlink(missing_ok=True)
        lines.append(f"  {entry.model} [{entry.variant}] -> {folder / variant}.json")
    # Last: until it is replaced, the previous manifest's hashes refuse whatever this save
    # has rewritten so far.
    manifest = {"version": BASELINE_VERSION, "environment": environment, "files": files}
    write_atomic(directory / "manifest.json",
                  (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return lines


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
