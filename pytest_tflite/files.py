"""Writing files so that a kill or a power cut never leaves half of one: the one home of
``write_atomic``, for the conversion cache, the baseline, the ratchet and the reports alike,
and ``path_part``, a model's or variant's name made safe as a folder or file name. Standard
library only."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so that a reader, or the next run after a kill or a power cut, finds the
    old file or the new one, never part of one: a temporary file in the same folder, flushed to
    disk, then renamed over the target. An existing file keeps its permissions."""
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fchmod(stream.fileno(), mode)
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def path_part(name: str) -> str:
    """A model's or variant's name as one path part: nothing that climbs out of the folder or
    needs quoting in a shell (only letters, digits, ``_``, ``.``, ``-``; no leading dot)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "_"


def _sync_folder(folder: Path) -> None:
    # The rename itself reaches the disk only with the folder's entry; not possible everywhere.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _umask() -> int:
    # Read by setting it: there is no getter (3.13's os.umask still works this way).
    current = os.umask(0)
    os.umask(current)
    return current
