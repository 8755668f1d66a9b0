"""`CollectionOptions`: how a new collection is made: the engine's scale settings, and what it
stores beside each document's dense vector (BM25 sparse vectors, every window of a long text)."""

from __future__ import annotations

from dataclasses import dataclass, field

from minilm_qdrant.engines import ScaleOptions
from minilm_qdrant.sparse import Bm25Settings
from minilm_qdrant.windows import WindowSettings


@dataclass(frozen=True)
class CollectionOptions(ScaleOptions):
    """Settings used when a collection is created (scale: see `ScaleOptions`; None there means
    the engine's default)."""

    sparse: Bm25Settings | None = field(default_factory=Bm25Settings)
    """BM25 sparse vectors beside the dense ones (hybrid search); None: dense only."""
    windows: WindowSettings | None = field(default_factory=WindowSettings)
    """Every window of a long text stored (the ``windows`` multivector, MaxSim) beside the
    pooled dense vector; None: one vector of the first window's word pieces (truncated)."""
