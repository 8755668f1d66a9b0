"""Backends run a model: load it, turn texts into pooled vectors. One file per backend.

Names: ``torch`` (fp32), ``torch-bf16`` (bf16 weights prepacked for oneDNN on CPUs with native
bf16, fp16 on CUDA), ``onnx`` (fp32, fused graph), ``onnx-int8`` (dynamic int8 on the fused
graph) and ``auto``: the fastest *lossless* one for the hardware and the kind of call (see
`choose`): the fastest for a batch is not the fastest for one query.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from minilm_qdrant.backends.base import (
    TOKEN_BUDGET,
    Backend,
    Encoded,
    require_onnx,
    token_batches,
)
from minilm_qdrant.errors import UnsupportedModel
from minilm_qdrant.models import ModelSpec

__all__ = ["BACKENDS", "TOKEN_BUDGET", "Backend", "Encoded", "choose", "load_backend",
           "native_bf16", "require_onnx", "token_batches"]

BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")


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
