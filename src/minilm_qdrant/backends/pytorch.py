"""The torch backend: sentence-transformers modules built from the spec (so pooling is ours)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from minilm_qdrant.backends.base import (
    TOKEN_BUDGET,
    Encoded,
    bars_on_a_terminal,
    token_batches,
)
from minilm_qdrant.errors import ModelNotFound
from minilm_qdrant.models import ModelSpec


class TorchBackend:
    """Transformer -> Pooling -> (Normalize), on CUDA when present, else CPU.

    ``half=True``: bf16 autocast on CPU (fast only with native bf16), fp16 weights on CUDA.
    Weights load with ``trust_remote_code=False`` and from safetensors; pickle (``.bin``)
    weights are refused unless ``MINILM_QDRANT_ALLOW_PICKLE=1``.
    """

    def __init__(
        self, spec: ModelSpec, path: Path, device: str | None = None, half: bool = False
    ) -> None:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import (
            Normalize,
            Pooling,
            Transformer,
        )

        has_safetensors = any(path.glob("*.safetensors"))
        if not has_safetensors and os.environ.get("MINILM_QDRANT_ALLOW_PICKLE", "") in ("", "0"):
            raise ModelNotFound(
                f"{path} has no .safetensors weights; pickle weights can run code when loaded. "
                "Convert them to safetensors, or set MINILM_QDRANT_ALLOW_PICKLE=1 if you trust "
                "them."
            )
        with bars_on_a_terminal():
            transformer = Transformer(
                str(path),
                max_seq_length=spec.max_tokens,
                model_kwargs={"use_safetensors": has_safetensors, "trust_remote_code": False},
                config_kwargs={"trust_remote_code": False},
                processor_kwargs={"trust_remote_code": False},
            )
        modules = [transformer, Pooling(spec.dim, pooling_mode=spec.pooling)]
        if spec.normalize:
            modules.append(Normalize())
        self.model = SentenceTransformer(modules=modules, device=device)
        self.model.eval()
        self._autocast = half and self.model.device.type == "cpu"
        if half and not self._autocast:
            self.model.half()
        counter = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
        counter.no_truncation()
        counter.no_padding()
        self._counter = counter
        self.spec = spec

    @property
    def device(self) -> str:
        return str(self.model.device)

    def encode(self, texts: list[str], batch_size: int) -> Encoded:
        import torch

        lengths = [len(e.ids) for e in self._counter.encode_batch(texts)]
        limit = self.spec.max_tokens
        cut = [min(n, limit) for n in lengths]
        out = np.empty((len(texts), self.spec.dim), dtype=np.float32)
        padded = 0
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._autocast):
            for rows in token_batches(cut, TOKEN_BUDGET, batch_size):
                vectors = self.model.encode(
                    [texts[i] for i in rows], batch_size=len(rows), convert_to_tensor=True,
                    show_progress_bar=False,
                )
                out[rows] = vectors.float().cpu().numpy()
                padded += len(rows) * max(cut[i] for i in rows)
        return Encoded(out, sum(n > limit for n in lengths), sum(cut), padded)
