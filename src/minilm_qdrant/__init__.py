"""minilm-qdrant: MiniLM sentence-transformer embeddings into Qdrant.

texts -> `Embedder` -> float32 vectors -> `Collection` -> Qdrant -> `Hit`s.

Every public name imports from here; the layers beneath are drawn in docs/architecture.md.
"""

from minilm_qdrant.collection import Collection, CollectionOptions, UpsertReport
from minilm_qdrant.documents import Document, Hit
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines.location import Location
from minilm_qdrant.errors import (
    CollectionMismatch,
    CollectionNotFound,
    IngestError,
    InputError,
    MiniLMQdrantError,
    ModelNotFound,
    PermanentError,
    QdrantError,
    StoreInUse,
    TransientError,
    UnsupportedModel,
)
from minilm_qdrant.inputs import SyncReport, read_path, sync
from minilm_qdrant.models import BUNDLED_MODEL, DEFAULT_MODEL, REGISTRY, ModelSpec
from minilm_qdrant.retry import RetryPolicy
from minilm_qdrant.windows import WindowSettings

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_MODEL",
    "REGISTRY",
    "Collection",
    "CollectionMismatch",
    "CollectionNotFound",
    "CollectionOptions",
    "Document",
    "Embedder",
    "Hit",
    "IngestError",
    "InputError",
    "Location",
    "MiniLMQdrantError",
    "ModelNotFound",
    "ModelSpec",
    "PermanentError",
    "QdrantError",
    "RetryPolicy",
    "StoreInUse",
    "SyncReport",
    "TransientError",
    "UnsupportedModel",
    "UpsertReport",
    "WindowSettings",
    "read_path",
    "sync",
]
