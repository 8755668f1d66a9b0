"""The fingerprint: what a collection records of how its points were made (the model, the BM25
settings, how texts were cut into windows, whether it is tenanted, how its vectors are
quantized).

It is written when a collection is created and read back, checked against the vectors the
collection really has, whenever one is opened or pushed, so that every handle embeds, encodes
and cuts the way the stored documents were, or refuses in one line. Models are never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minilm_qdrant.engines import QUANTIZATIONS, CollectionInfo, Quantization
from minilm_qdrant.errors import CollectionMismatch
from minilm_qdrant.sparse import Bm25Settings
from minilm_qdrant.windows import WindowSettings

FINGERPRINT_KEY = "minilm_qdrant_fingerprint"
"""The collection metadata key that holds the fingerprint."""
_PARTS = ("sparse", "windows", "tenants", "origins", "quantization")


@dataclass(frozen=True)
class Fingerprint:
    """One collection's record of how its points were made."""

    model: dict[str, Any]
    """The embedder's fingerprint (model, dim, pooling, normalize, distance...)."""
    sparse: Bm25Settings | None = None
    """BM25 settings where the collection has sparse vectors."""
    windows: WindowSettings | None = None
    """How long texts were cut; None: one truncated vector a text (made before windows)."""
    tenants: bool = False
    """Every point belongs to a tenant (`minilm_qdrant.tenancy`)."""
    origins: bool = False
    """Folder syncs mark what they write (`documents.ORIGIN_KEY`); False: a collection made
    before the mark, whose synced documents are recognised by their file metadata."""
    quantization: Quantization | None = None
    """The pooled vectors' quantized copy (``int8``, ``binary``), so that every handle sends
    rescoring parameters with its searches and a push or reembed makes the same; None: not
    quantized (and every collection made before it was recorded)."""

    def as_metadata(self) -> dict[str, Any]:
        """The collection metadata that records it."""
        record = dict(self.model)
        if self.sparse is not None:
            record["sparse"] = self.sparse.as_dict()
        if self.windows is not None:
            record["windows"] = self.windows.as_dict()
        if self.tenants:
            record["tenants"] = True
        if self.origins:
            record["origins"] = True
        if self.quantization is not None:
            record["quantization"] = self.quantization
        return {FINGERPRINT_KEY: record}

    @classmethod
    def read(cls, info: CollectionInfo, name: str, where: str) -> Fingerprint:
        """Collection ``name``'s fingerprint, checked against the vectors it has
        (`CollectionMismatch` where it has none, or records vectors that are not there)."""
        stored = info.metadata.get(FINGERPRINT_KEY)
        if not isinstance(stored, dict):
            raise CollectionMismatch(
                f"Collection {name!r} at {where} was not made by minilm-qdrant (it has no "
                f"fingerprint; size={info.size}, distance={info.distance}), so its model is "
                "unknown; use another --collection name."
            )
        sparse, windows = stored.get("sparse"), stored.get("windows")
        if (windows is not None) != info.windows:
            raise CollectionMismatch(
                f"Collection {name!r} at {where} records windows {windows} but "
                f"{'has' if info.windows else 'has no'} window vectors: re-index it."
            )
        if sparse is not None and not info.sparse:
            raise CollectionMismatch(
                f"Collection {name!r} at {where} records BM25 settings but has no 'bm25' "
                "sparse vector; it was not made by this version: re-index it."
            )
        quantization = stored.get("quantization")
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise CollectionMismatch(
                f"Collection {name!r} at {where} records quantization {quantization!r}, which "
                f"this version does not know ({', '.join(QUANTIZATIONS)}): upgrade "
                "minilm-qdrant to open it.")
        return cls(
            model={k: v for k, v in stored.items() if k not in _PARTS},
            sparse=None if sparse is None else Bm25Settings.from_dict(sparse),
            windows=None if windows is None else WindowSettings.from_dict(windows),
            tenants=bool(stored.get("tenants")),
            origins=bool(stored.get("origins")),
            quantization=quantization,
        )

    def mismatch(self, info: CollectionInfo, mine: dict[str, Any]) -> bool:
        """Whether an embedder of fingerprint ``mine`` makes other vectors than the stored
        ones (the recorded model, or the collection's real size and distance, differ)."""
        return self.model != mine or {**self.model, "dim": info.size,
                                      "distance": info.distance} != mine


def describe(model: dict[str, Any]) -> str:
    """A model fingerprint in one line, for errors."""
    return (
        f"model={model.get('model')} dim={model.get('dim')} pooling={model.get('pooling')} "
        f"normalize={model.get('normalize')} distance={model.get('distance')}"
        + (f" weights={model['weights']}" if model.get("weights") else "")
    )
