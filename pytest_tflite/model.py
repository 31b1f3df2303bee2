"""TFLiteModel: a converted or ready ``.tflite`` (bytes, path, recipe, variant, source)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .errors import ModelError
from .flatbuffer import FlatbufferView


@dataclass(frozen=True)
class TFLiteModel:
    """A converted (or ready) ``.tflite`` model: what ``tflite_convert`` returns and ``check`` takes.

    ``variant`` picks the budget file's ``[variants.NAME]`` section; it defaults to the recipe.
    """

    content: bytes = field(repr=False)
    path: Path
    recipe: str
    variant: str
    source: str
    cache_hit: bool | None = None

    @property
    def size_bytes(self) -> int:
        return len(self.content)

    @cached_property
    def view(self) -> FlatbufferView:
        return FlatbufferView(self.content, origin=str(self.path))

    @classmethod
    def from_path(cls, path: str | Path, *, variant: str | None = None) -> TFLiteModel:
        """Load a ready ``.tflite`` file; it is validated as a TFLite flatbuffer first."""
        path = Path(path)
        if path.is_dir():
            raise ModelError(f"{path} is a directory, not a .tflite file")
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        content = path.read_bytes()
        model = cls(content, path, recipe="tflite", variant=variant or "default", source=str(path))
        model.view.validate()
        return model
