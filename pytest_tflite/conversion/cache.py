"""Content-addressed conversion cache: one ``.tflite`` (plus a small JSON note) per key.

Keys hash everything that decides the converter's output; a cross-process file lock per key
makes concurrent xdist workers convert a model once: the first converts, the others wait and hit.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when the layout or the meaning of a key changes


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


def default_dir() -> Path:
    """Where conversions go when pytest's cache provider is off (``-p no:cacheprovider``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pytest-tflite"


class ConversionCache:
    """``suffix`` names what is stored: ``.tflite`` models, or ``.npz`` pruned weights."""

    def __init__(self, directory: Path, suffix: str = ".tflite") -> None:
        self.directory = directory
        self.suffix = suffix

    def with_suffix(self, suffix: str) -> ConversionCache:
        return ConversionCache(self.directory, suffix)

    def paths(self, key: str) -> tuple[Path, Path]:
        folder = self.directory / key[:2]
        return folder / f"{key}{self.suffix}", folder / f"{key}.json"

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        from filelock import FileLock

        folder = self.directory / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / f"{key}.lock")):
            yield

    def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        model_path, note_path = self.paths(key)
        try:
            note = json.loads(note_path.read_text(encoding="utf-8"))
            content = model_path.read_bytes()
        except (OSError, ValueError):
            return None
        return (content, note) if note.get("size_bytes") == len(content) else None

    def put(self, key: str, content: bytes, note: dict[str, Any]) -> Path:
        model_path, note_path = self.paths(key)
        write_atomic(model_path, content)
        write_atomic(note_path, json.dumps({**note, "size_bytes": len(content)}).encode())
        return model_path

    def get_or_create(
        self, key: str, create: Callable[[], tuple[bytes, dict[str, Any]]]
    ) -> tuple[Path, bytes, dict[str, Any], bool]:
        """(path, content, note, hit): the cached model, or ``create()``'s, stored under the lock."""
        with self.locked(key):
            found = self.get(key)
            if found is not None:
                return self.paths(key)[0], found[0], found[1], True
            content, note = create()
            return self.put(key, content, note), content, note, False


def write_atomic(path: Path, data: bytes) -> None:
    # A reader in another process never sees half a file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
