"""minilm-qdrant: MiniLM sentence-transformer embeddings into Qdrant.

texts -> `Embedder` -> float32 vectors -> `Collection` -> Qdrant -> `Hit`s.
"""

from minilm_qdrant.collection import Collection, UpsertReport
from minilm_qdrant.documents import Document, Hit
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import CollectionOptions
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
from minilm_qdrant.models import BUNDLED_MODEL, DEFAULT_MODEL, REGISTRY, ModelSpec
from minilm_qdrant.retry import RetryPolicy
from minilm_qdrant.sources import SyncReport, read_path, sync

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
    "read_path",
    "sync",
]
