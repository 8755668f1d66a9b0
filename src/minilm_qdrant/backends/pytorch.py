"""The torch backend: the model's transformer (`bert.Bert` for a plain BERT, the MiniLM
family; transformers' ``AutoModel`` for anything else), our tokenizer batches and our pooling,
exactly as the ONNX backend pools.

Texts are tokenised once (``tokenizers``, truncation counted from the same pass), sorted by
length and cut into `TOKEN_BUDGET` batches, each padded to a multiple of `ALIGN` word pieces.
``half=True`` on a CPU: the weights in bf16, every linear layer prepacked for oneDNN (AMX /
AVX-512 BF16 kernels) with its bias, and the GELU after a feed-forward layer fused into it
(`bf16_packed`); on CUDA: fp16 weights.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minilm_qdrant.backends.base import (
    TOKEN_BUDGET,
    Encoded,
    TokenizerCache,
    bars_on_a_terminal,
    token_batches,
)
from minilm_qdrant.backends.bert import Bert, load_bert
from minilm_qdrant.errors import ModelNotFound
from minilm_qdrant.models import ModelSpec

logger = logging.getLogger("minilm_qdrant")

ALIGN = 16
"""A pass's width is padded to a multiple of this (masked): torch's fused CPU attention runs
twice as fast on such lengths (32 rows x 12 heads in bf16: 22.4 ms at 254 word pieces, 9.7 at
256; 13.9 at 248, 10.1 at 240), more than paying for the 1-6% more word pieces it computes
(SciFact windows: +16% word pieces a second, vectors within cosine 0.99999;
`benchmarks/kernel_speed.py`)."""


class TorchBackend:
    """Transformer -> mean or CLS pooling -> (L2 normalisation), on CUDA when present, else CPU.

    Weights load with ``trust_remote_code=False`` and from safetensors; pickle (``.bin``)
    weights are refused unless ``MINILM_QDRANT_ALLOW_PICKLE=1``.
    """

    def __init__(
        self, spec: ModelSpec, path: Path, device: str | None = None, half: bool = False
    ) -> None:
        has_safetensors = any(path.glob("*.safetensors"))
        if not has_safetensors and os.environ.get("MINILM_QDRANT_ALLOW_PICKLE", "") in ("", "0"):
            raise ModelNotFound(
                f"{path} has no .safetensors weights; pickle weights can run code when loaded. "
                "Convert them to safetensors, or set MINILM_QDRANT_ALLOW_PICKLE=1 if you trust "
                "them."
            )
        if not (path / "tokenizer.json").exists():
            raise ModelNotFound(f"{path} has no tokenizer.json (the fast tokenizer's file)")
        model: torch.nn.Module | None = load_bert(path) if has_safetensors else None
        self._hf = model is None
        """transformers' model (another architecture than `Bert`, or pickle weights)."""
        if model is None:
            from transformers import AutoModel

            kwargs: dict[str, Any] = {"use_safetensors": has_safetensors,
                                      "trust_remote_code": False}
            with bars_on_a_terminal():
                try:
                    model = AutoModel.from_pretrained(str(path), attn_implementation="sdpa",
                                                      **kwargs)
                except (ValueError, ImportError):  # a model without SDPA attention
                    model = AutoModel.from_pretrained(str(path), **kwargs)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = model.to(self.device).eval()
        self.packed = 0
        """Linear layers prepacked for oneDNN (bf16 on a CPU)."""
        if half and self.device.startswith("cuda"):
            model = model.half()
        elif half:
            model, self.packed = bf16_packed(model)
        self.model = model
        self._types = self._hf and "token_type_ids" in inspect.signature(
            model.forward).parameters
        self._tokens = TokenizerCache(path / "tokenizer.json")
        self.spec = spec

    def encode(self, texts: list[str], batch_size: int, limit: int | None = None) -> Encoded:
        limit = limit or self.spec.max_tokens
        ids, truncated = self._tokens.ids(texts, limit)
        lengths = [len(row) for row in ids]
        out = np.empty((len(texts), self.spec.dim), dtype=np.float32)
        padded = 0
        with torch.inference_mode():
            for rows in token_batches(lengths, TOKEN_BUDGET, batch_size):
                width = -(-max(lengths[i] for i in rows) // ALIGN) * ALIGN
                feed = np.zeros((len(rows), width), dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=np.int64)
                for r, i in enumerate(rows):
                    feed[r, :lengths[i]] = ids[i]
                    mask[r, :lengths[i]] = 1
                out[rows] = self._forward(torch.from_numpy(feed).to(self.device),
                                          torch.from_numpy(mask).to(self.device)).cpu().numpy()
                padded += len(rows) * width
        return Encoded(out, truncated, sum(lengths), padded)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self._hf:
            extra = {"token_type_ids": torch.zeros_like(ids)} if self._types else {}
            hidden = self.model(input_ids=ids, attention_mask=mask, **extra).last_hidden_state
        else:
            hidden = self.model(ids, mask)
        if self.spec.pooling == "cls":
            vectors = hidden[:, 0].float()
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            vectors = (hidden * weights).sum(1).float() / mask.sum(1, keepdim=True).clamp(min=1)
        if self.spec.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return vectors.float()


def bf16_packed(model: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """``model`` with bf16 weights, each ``nn.Linear`` replaced by one whose weight is
    prepacked for oneDNN (its bias applied in the same kernel) and a feed-forward layer's exact
    GELU fused into its linear layer; the number packed (0: oneDNN's linear ops are missing
    in this torch, the bf16 model is returned as it is). A `Bert` keeps its embeddings, layer
    norms and residual stream in fp32 (only its linear layers and attention run in bf16): its
    vectors stay 3x closer to fp32's (mean 1 - cosine 1.7e-5 against 5.2e-5 on SciFact)."""
    try:
        probe = torch.nn.Linear(8, 8).to(torch.bfloat16)
        check = _PackedLinear(probe, "none")(torch.ones(2, 8, dtype=torch.bfloat16))
        packable = torch.allclose(check, probe(torch.ones(2, 8, dtype=torch.bfloat16)))
    except (AttributeError, RuntimeError):
        packable = False
    if not (packable and isinstance(model, Bert)):  # `Bert`: only its linears become bf16
        model = model.to(torch.bfloat16)
    return model, _pack(model) if packable else 0


def _pack(parent: torch.nn.Module) -> int:
    """Replace ``parent``'s linear layers (below it, at any depth) by packed ones; how many."""
    packed = 0
    up = getattr(parent, "up", None)
    if isinstance(up, torch.nn.Linear) and _exact_gelu(getattr(parent, "act", None)):
        parent.up, parent.act = _PackedLinear(up, "gelu"), torch.nn.Identity()  # `bert.Layer`
        packed += 1
    for name, child in list(parent.named_children()):
        dense = getattr(child, "dense", None)
        if isinstance(dense, torch.nn.Linear) and _exact_gelu(
                getattr(child, "intermediate_act_fn", None)) and len(list(child.children())) <= 2:
            setattr(parent, name, _PackedLinear(dense, "gelu"))  # dense + GELU, nothing else
            packed += 1
        elif isinstance(child, torch.nn.Linear):
            setattr(parent, name, _PackedLinear(child, "none"))
            packed += 1
        else:
            packed += _pack(child)
    return packed


def _exact_gelu(act: Any) -> bool:
    """Whether ``act`` is the exact (erf) GELU that oneDNN's ``gelu`` post-op computes."""
    if act is None:
        return False
    if isinstance(act, torch.nn.GELU):
        return act.approximate == "none"
    return type(act).__name__ == "GELUActivation" and \
        getattr(act, "act", None) is torch.nn.functional.gelu


class _PackedLinear(torch.nn.Module):
    """A bf16 linear layer on oneDNN's prepacked weight: ``x @ W.T + b`` (then GELU)."""

    def __init__(self, linear: torch.nn.Linear, act: str) -> None:
        super().__init__()
        weight = linear.weight.detach().to(torch.bfloat16)
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight)
        self.bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        self.out = weight.shape[0]
        self.act, self.algorithm = act, ("none" if act == "gelu" else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, self.act, [],
                                               self.algorithm)
        return y.view(*x.shape[:-1], self.out)
