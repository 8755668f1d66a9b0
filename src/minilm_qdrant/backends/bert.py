"""A BERT encoder for inference, read straight from a model folder's safetensors.

Why not transformers' ``BertModel``: importing its modelling code costs ~2.6 s of every ingest
process before the first text is embedded (torch itself ~1.3 s more), and its forward builds
masks and output records a call; this is the same arithmetic (checked against it, cosine >=
0.9999 in fp32, `tests/test_cuts.py`) with the query, key and value projections in one matrix
product. Only what the MiniLM family uses is read: absolute positions, exact GELU, post-layer
norm; any other configuration returns None from `load_bert` and the backend uses
transformers. With bf16 linear layers (`pytorch.bf16_packed`) the residual stream, its layer
norms and the embeddings stay fp32: each linear layer takes bf16 and its output is added in
fp32, so the rounding of bf16 does not accumulate across layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.nn import functional as F


class Layer(torch.nn.Module):
    """One encoder layer: self-attention and a feed-forward block, each added and normed."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, heads: int,
                 eps: float) -> None:
        super().__init__()

        def linear(name: str, *names: str) -> torch.nn.Linear:
            parts = [weights[f"{prefix}{n}.weight"] for n in (name, *names)]
            biases = [weights[f"{prefix}{n}.bias"] for n in (name, *names)]
            layer = torch.nn.Linear(parts[0].shape[1], sum(p.shape[0] for p in parts))
            layer.weight.data, layer.bias.data = torch.cat(parts), torch.cat(biases)
            return layer

        def norm(name: str) -> torch.nn.LayerNorm:
            layer = torch.nn.LayerNorm(weights[f"{prefix}{name}.weight"].shape[0], eps=eps)
            layer.weight.data = weights[f"{prefix}{name}.weight"]
            layer.bias.data = weights[f"{prefix}{name}.bias"]
            return layer

        self.heads = heads
        self.qkv = linear("attention.self.query", "attention.self.key", "attention.self.value")
        self.out = linear("attention.output.dense")
        self.norm1 = norm("attention.output.LayerNorm")
        self.up = linear("intermediate.dense")
        self.act: torch.nn.Module = torch.nn.GELU()
        self.down = linear("output.dense")
        self.norm2 = norm("output.LayerNorm")

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        rows, length, width = x.shape
        qkv = self.qkv(x).view(rows, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        mixed = self.out(mixed.transpose(1, 2).reshape(rows, length, width))
        # in place, in x's dtype (a bf16 linear's output is cast as it is added): no copies
        x = self.norm1(x.add_(mixed))
        return self.norm2(x.add_(self.down(self.act(self.up(x)))))


class Bert(torch.nn.Module):
    """Token ids and attention mask -> the last hidden states (rows, length, hidden)."""

    def __init__(self, weights: dict[str, torch.Tensor], config: dict[str, object]) -> None:
        super().__init__()
        eps = float(config.get("layer_norm_eps", 1e-12))  # type: ignore[arg-type]
        heads = int(config["num_attention_heads"])  # type: ignore[call-overload]
        self.words = torch.nn.Embedding.from_pretrained(
            weights["embeddings.word_embeddings.weight"])
        self.positions = torch.nn.Parameter(weights["embeddings.position_embeddings.weight"],
                                            requires_grad=False)
        self.type0 = torch.nn.Parameter(weights["embeddings.token_type_embeddings.weight"][0],
                                        requires_grad=False)
        self.norm = torch.nn.LayerNorm(self.type0.shape[0], eps=eps)
        self.norm.weight.data = weights["embeddings.LayerNorm.weight"]
        self.norm.bias.data = weights["embeddings.LayerNorm.bias"]
        self.layers = torch.nn.ModuleList(
            Layer(weights, f"encoder.layer.{i}.", heads, eps)
            for i in range(int(config["num_hidden_layers"])))  # type: ignore[call-overload]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.words(ids) + self.positions[:ids.shape[1]] + self.type0
        x = self.norm(x)
        # SDPA's boolean mask (any compute dtype); none where no row is padded (batches of
        # full windows, common once sorted by length), which SDPA's attention runs faster
        bias = None if bool(mask.all()) else (mask != 0)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        return x


def load_bert(path: Path) -> Bert | None:
    """The BERT encoder of a model folder with safetensors weights, in eval mode; None where
    the folder holds another architecture or options this module does not implement."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    plain = (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
             and config.get("position_embedding_type", "absolute") == "absolute"
             and not config.get("is_decoder", False))
    files = sorted(path.glob("*.safetensors"))
    if not plain or len(files) != 1:
        return None
    from safetensors.torch import load_file

    weights = {k.removeprefix("bert."): v for k, v in load_file(str(files[0])).items()}
    try:
        return Bert(weights, config).eval()
    except KeyError:  # named otherwise than a BertModel's weights
        return None
