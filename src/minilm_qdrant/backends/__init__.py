"""Backends run a model: load it, turn texts into pooled vectors. One file per backend.

Names: ``torch`` (fp32), ``torch-bf16`` (bf16 autocast on CPUs with native bf16, fp16 on
CUDA), ``onnx`` (fp32, fused graph), ``onnx-int8`` (dynamic int8 on the fused graph) and
``auto``: the fastest *lossless* one for the hardware and the kind of call (see `choose`):
the fastest for a batch is not the fastest for one query.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from minilm_qdrant.errors import MissingDependency, UnsupportedModel
from minilm_qdrant.models import ModelSpec

BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
TOKEN_BUDGET = 8192
"""Padded tokens per forward pass (rows x longest row): bounds activation memory."""


@contextmanager
def bars_on_a_terminal() -> Iterator[None]:
    """transformers' "Loading weights" bar while loading a model: on a terminal only (a log or
    a pipe gets none); its setting is put back after."""
    from transformers.utils import logging as hf_logging

    if sys.stderr.isatty() or not hf_logging.is_progress_bar_enabled():
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

    hub_off = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()
        if hub_off:
            disable_progress_bars()


@dataclass(frozen=True)
class Encoded:
    """Vectors for texts, with what it cost: texts are tokenised once, stats come with it."""

    vectors: np.ndarray
    """(n, dim) float32, pooled and (per the spec) normalised, in the texts' order."""
    truncated: int
    """Texts longer than the model's token limit (cut to it)."""
    tokens: int
    """Word pieces run through the model, special tokens included."""
    padded: int
    """Tokens computed including padding (``padded - tokens`` is waste)."""


class Backend(Protocol):
    """What the embedder needs from a backend."""

    def encode(self, texts: list[str], batch_size: int) -> Encoded:
        """Vectors for the texts; passes hold at most ``batch_size`` rows and `TOKEN_BUDGET`
        padded tokens, with texts sorted by length so that little is padding."""
        ...


def token_batches(lengths: list[int], budget: int, max_rows: int) -> Iterator[np.ndarray]:
    """Row indices sorted by length, cut so rows x longest row stays within ``budget``."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < max_rows:
            if (end - start + 1) * lengths[order[end]] > budget:
                break
            end += 1
        yield order[start:end]
        start = end


def native_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@lru_cache(maxsize=8)  # the hardware does not change: not re-read on every query
def choose(device: str | None = None, kind: str = "batch") -> str:
    """The `auto` rule. CUDA -> ``torch``. On a CPU, for batches (ingest, eval's corpus):
    native bf16 -> ``torch-bf16`` (NDCG@10 equal to fp32 within 0.001), else ``onnx``; for
    single queries (``kind="query"``): ``onnx`` (one query on a 2-core Xeon with AMX: onnx
    3.0 ms p50, torch 8.3, torch-bf16 10.5). ``onnx`` is fp32 (cosine >= 0.9999 to torch) and
    needs onnxruntime (else ``torch``). int8 is never chosen: it is lossy.
    """
    import importlib.util

    if device and device.startswith("cuda"):
        return "torch"
    if device is None and importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return "torch"
    if kind == "batch" and native_bf16():
        return "torch-bf16"
    return "onnx" if importlib.util.find_spec("onnxruntime") is not None else "torch"


@lru_cache(maxsize=4)
def load_backend(name: str, spec: ModelSpec, path: Path, device: str | None) -> Backend:
    """The named backend for a model directory, loaded once per process and shared.

    A pre-exported ONNX model (no torch weights) always runs its own ONNX file.
    """
    if name not in BACKENDS:
        raise UnsupportedModel(f"Unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}.")
    if spec.weights != "torch" or name in ("onnx", "onnx-int8"):
        require_onnx("onnxruntime", what=f"the {name} backend")
    if spec.weights != "torch":
        from minilm_qdrant.backends.onnx import OnnxBackend

        return OnnxBackend(spec, path, spec.onnx_file or "model.onnx")
    if name == "auto":
        name = choose(device)
    if name in ("torch", "torch-bf16"):
        from minilm_qdrant.backends.pytorch import TorchBackend

        return TorchBackend(spec, path, device, half=name == "torch-bf16")
    from minilm_qdrant.backends.onnx import OnnxBackend
    from minilm_qdrant.backends.onnx_export import FP32_FILE, INT8_FILE, exported_dir

    file = INT8_FILE if name == "onnx-int8" else FP32_FILE
    return OnnxBackend(spec, exported_dir(path, spec), file)


ONNX_EXTRA = 'pip install "minilm-qdrant[onnx]"'


def require_onnx(*modules: str, what: str) -> None:
    """Fail in one line, naming the extra, where an ONNX module is not installed."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingDependency(
                f"{what} needs {module}, which is not installed: {ONNX_EXTRA} "
                "(or choose --backend torch)"
            ) from None
