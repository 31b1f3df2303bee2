"""Content-addressed conversion cache: one ``.tflite`` (plus a small JSON note) per key.

Keys hash everything that decides the converter's output; a cross-process file lock per key
makes concurrent xdist workers convert a model once: the first converts, the others wait and hit.
A run killed halfway leaves at most an entry without its note (or the reverse): the note holds
the model's hash, and an entry that does not match it is converted again, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CacheEntryWarning, ConversionError
from ...files import write_atomic

FORMAT = 1  # bump when the layout or the meaning of a key changes
# A conversion can legitimately take minutes while another worker waits for it; past this, a
# lock is far more likely left by something stuck than by a slow converter.
LOCK_TIMEOUT_S = 15 * 60.0
LOCK_TIMEOUT_VARIABLE = "PYTEST_TFLITE_LOCK_TIMEOUT"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


def default_dir() -> Path:
    """Where conversions go when pytest's cache provider is off (``-p no:cacheprovider``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pytest-tflite"


def lock_timeout() -> float:
    """Seconds to wait for another process's conversion: the environment's, else the default."""
    value = os.environ.get(LOCK_TIMEOUT_VARIABLE)
    if not value:
        return LOCK_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConversionError(f"{LOCK_TIMEOUT_VARIABLE}={value!r}: expected a number of seconds "
                              f"above 0")
    return seconds


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
        from filelock import FileLock, Timeout

        folder = self.directory / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key}.lock"
        timeout = lock_timeout()
        try:
            lock = FileLock(str(path), timeout=timeout)
            lock.acquire()
        except Timeout:
            raise ConversionError(
                f"waited {timeout:g} s for the conversion cache lock {path}: another pytest run "
                f"or xdist worker holds it while converting the same model. If no run is going, "
                f"delete {path}; to wait longer, set {LOCK_TIMEOUT_VARIABLE} (seconds)") from None
        try:
            yield
        finally:
            lock.release()

    def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        """The entry, or None when it is absent or cannot be trusted (the latter with a warning:
        a half-written entry is treated as absent, never used)."""
        model_path, note_path = self.paths(key)
        problem = None
        try:
            note = json.loads(note_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if not model_path.exists():
                return None  # a plain miss
            problem = f"its note {note_path.name} is missing"
        except (OSError, ValueError) as exc:
            problem = f"its note {note_path.name} is unreadable ({type(exc).__name__})"
        if problem is None:
            try:
                content = model_path.read_bytes()
            except OSError as exc:
                problem = f"{model_path.name} is unreadable ({type(exc).__name__})"
            else:
                problem = _mismatch(note, content)
        if problem is not None:
            warnings.warn(CacheEntryWarning(
                f"conversion cache entry {model_path} is incomplete or corrupt ({problem}; a run "
                f"killed while writing it?): not used, creating it again"), stacklevel=2)
            return None
        return content, note

    def put(self, key: str, content: bytes, note: dict[str, Any]) -> Path:
        model_path, note_path = self.paths(key)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        # Under the key's lock: a temporary file of these names is a killed writer's leftover.
        for path in (model_path, note_path):
            for leftover in path.parent.glob(f".{path.name}.*.tmp"):
                leftover.unlink(missing_ok=True)
        write_atomic(model_path, content)
        # The note goes last and vouches for the model: a kill between the two writes leaves a
        # model without a note, which get() refuses.
        write_atomic(note_path, json.dumps({
            **note, "size_bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest()}).encode())
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


def _mismatch(note: Any, content: bytes) -> str | None:
    if not isinstance(note, dict):
        return "its note is not a JSON object"
    if note.get("size_bytes") != len(content):
        return f"{len(content)} bytes where its note says {note.get('size_bytes')}"
    digest = note.get("sha256")  # absent in entries written before it was recorded
    if digest is not None and digest != hashlib.sha256(content).hexdigest():
        return "its content does not match the hash in its note"
    return None
