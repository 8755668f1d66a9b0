"""Export a torch sentence-transformers folder to ONNX (fp32 fused, and int8), cached.

The result is a model directory in the layout optimum writes (``onnx/model.onnx``,
``onnx/model_quantized.onnx``, ``tokenizer.json`` and the sentence-transformers config), so
it loads like any pre-exported ONNX model. torch is needed here only, never at inference.

Choices, each from a measured pitfall: eager attention (an SDPA export disagrees with torch on
padded batches); onnxruntime's BERT fusions before quantising (dynamic int8 on an unfused graph
loses quality); per-channel int8 weights with dynamic activations on the fused graph; but no
``SkipLayerNormalization`` (UNFUSED): onnxruntime's CPU kernel for it took 13% (fp32) and 21%
(int8) of a forward pass where a plain ``Add`` and ``LayerNormalization`` take 4-6% (the same
vectors; SciFact windows, Xeon AMX; `benchmarks/kernel_speed.py`). `UNFUSED` also keeps the
session from fusing them again when it loads the graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from minilm_qdrant.models import ModelSpec

logger = logging.getLogger("minilm_qdrant")

FP32_FILE = "onnx/model.onnx"
INT8_FILE = "onnx/model_quantized.onnx"
UNFUSED = ["SkipLayerNormFusion"]
"""onnxruntime's graph optimizers that a session of our exports runs without (see above)."""
EXPORT_VERSION = "2"  # 2: residual adds and layer norms not fused (UNFUSED)
_CONFIG_FILES = (
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
)


def cache_root() -> Path:
    """``$MINILM_QDRANT_CACHE`` or ``~/.cache/minilm-qdrant``, with ``onnx/`` below it."""
    base = os.environ.get("MINILM_QDRANT_CACHE") or Path.home() / ".cache" / "minilm-qdrant"
    return Path(base) / "onnx"


def export_key(path: Path, spec: ModelSpec) -> str:
    """A hash of the weights, the config and the export recipe: a new one means re-export."""
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for name in ("config.json", "tokenizer.json"):
        if (path / name).exists():
            digest.update((path / name).read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        with weights.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    digest.update(f"{spec.max_tokens}".encode())
    return digest.hexdigest()[:16]


def exported_dir(path: Path, spec: ModelSpec) -> Path:
    """The cached ONNX directory for a torch model folder, exporting it on first use."""
    target = cache_root() / export_key(path, spec)
    if (target / FP32_FILE).exists() and (target / INT8_FILE).exists():
        return target
    from minilm_qdrant.backends.base import bars_on_a_terminal, require_onnx

    require_onnx("onnx", "onnxruntime", what="exporting the model to ONNX")  # before any work
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        logger.info("exporting %s to ONNX in %s (once)", spec.name, target)
        with _captured(), bars_on_a_terminal():
            export_model(path, work)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)  # atomic: a reader never sees a half-written directory
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


@contextmanager
def _captured() -> Iterator[None]:
    """Keep the export's own chatter off the user's terminal: torch's TracerWarning and
    UserWarning lines, onnxruntime's root-logger advice ("consider pre-processing"). What it
    said is logged at debug level (``minilm-qdrant -v`` shows it) once the export is over."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(f"{record.name} {record.levelname}: {record.getMessage()}")

    root = logging.getLogger()
    handlers = root.handlers[:]
    root.handlers = [Keep()]  # also keeps logging.warning() from installing a stderr handler
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        root.handlers = handlers
    said += [f"{w.category.__name__}: {w.message}" for w in caught]
    for line in said:
        logger.debug("ONNX export: %s", line.splitlines()[0] if line else line)


def export_model(src: Path, out: Path) -> None:
    """Write ``out`` as an optimum-layout ONNX model dir (fp32 fused + int8) from ``src``."""
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    raw = out / "onnx" / "raw.onnx"
    hidden, heads = _export_raw(src, raw)
    _fuse(raw, out / FP32_FILE, hidden, heads)
    raw.unlink()
    quantize_int8(out / FP32_FILE, out / INT8_FILE)
    for name in _CONFIG_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, out / name)
    for sub in src.iterdir():
        if sub.is_dir() and (sub / "config.json").exists() and sub.name != "onnx":
            shutil.copytree(sub, out / sub.name, dirs_exist_ok=True)
    (out / "export.json").write_text(json.dumps({"source": str(src), "version": EXPORT_VERSION}))


def _export_raw(src: Path, dest: Path) -> tuple[int, int]:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(src), attn_implementation="eager", trust_remote_code=False,
        use_safetensors=any(src.glob("*.safetensors")),
    ).eval()
    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            return self.inner(input_ids=ids, attention_mask=mask, token_type_ids=types)[0]

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tuple(torch.ones((2, 16), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "seq"}
    with torch.no_grad():
        torch.onnx.export(
            Wrapped(), sample, str(dest), input_names=names, output_names=["last_hidden_state"],
            dynamic_axes=axes, opset_version=17, dynamo=False, do_constant_folding=True,
        )
    return int(model.config.hidden_size), int(model.config.num_attention_heads)


def _fuse(src: Path, dest: Path, hidden: int, heads: int) -> None:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    # residual add + layer norm left apart: onnxruntime's fused CPU kernel is slow (UNFUSED)
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = False
    optimized = optimize_model(
        str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1,
        use_gpu=False, optimization_options=options,
    )
    optimized.save_model_to_file(str(dest))


def quantize_int8(src: Path, dest: Path) -> None:
    """Dynamic int8 on the fused graph: per-channel signed weights, dynamic uint8 activations."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dest), weight_type=QuantType.QInt8, per_channel=True,
        reduce_range=False, op_types_to_quantize=["MatMul", "Attention"],
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT},
    )
