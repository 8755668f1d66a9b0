"""Backends run a model: load it, turn texts into pooled vectors. One file per backend."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from minilm_qdrant.errors import UnsupportedModel
from minilm_qdrant.models import ModelSpec

BACKENDS = ("torch",)


class Backend(Protocol):
    """What the embedder needs from a backend."""

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Pooled (and, per the spec, normalised) float32 vectors, one row per text."""
        ...

    def token_counts(self, texts: list[str]) -> list[int]:
        """Word pieces per text before truncation, special tokens included."""
        ...


@lru_cache(maxsize=4)
def load_backend(name: str, spec: ModelSpec, path: Path, device: str | None) -> Backend:
    """The named backend for a model directory, loaded once per process and shared."""
    if spec.weights != "torch":
        raise UnsupportedModel(
            f"Model {spec.name!r} ships {spec.weights} ONNX weights; the ONNX backend is not yet "
            f"supported. Use a torch model such as 'all-MiniLM-L6-v2' or "
            f"'multi-qa-MiniLM-L6-cos-v1'."
        )
    if name == "torch":
        from minilm_qdrant.backends.pytorch import TorchBackend

        return TorchBackend(spec, path, device)
    raise UnsupportedModel(f"Unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}.")
