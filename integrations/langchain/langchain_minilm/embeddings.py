"""`MiniLMEmbeddings`: the core `Embedder` as a LangChain `Embeddings`."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from minilm_qdrant import DEFAULT_MODEL, Embedder


class MiniLMEmbeddings(BaseModel, Embeddings):
    """MiniLM sentence embeddings from minilm-qdrant's registry, for LangChain.

    Documents go through the model's document path, queries through its query path; both
    return lists of Python floats. Weights load on first use, once per process.

    Long texts: LangChain's interface is one vector a text, so a text over the model's limit
    (256 word pieces) is embedded from its first 254 word pieces only (counted, one warning a
    call). To have every token searchable, add texts through `MiniLMVectorStore`, which
    stores every window of a long text and returns the passage that answered.

    Example:
        ```python
        from langchain_minilm import MiniLMEmbeddings

        embeddings = MiniLMEmbeddings(model_name="all-MiniLM-L6-v2")
        vector = embeddings.embed_query("What is HNSW?")
        ```
    """

    model_name: str = Field(default=DEFAULT_MODEL, alias="model")
    """Registry name (``all-MiniLM-L6-v2``), hub id or local directory; alias ``model``."""

    device: str | None = None
    """Torch device (``cpu``, ``cuda``...); default: CUDA when available, else CPU."""

    batch_size: int = Field(default=256, ge=1)
    """Most texts per forward pass (passes are also bounded in tokens), for the core embedder."""

    backend: str = "auto"
    """``auto`` (the fastest lossless backend per kind of call), ``torch``, ``torch-bf16``,
    ``onnx`` or ``onnx-int8`` (see the core README)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    _embedder: Embedder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Resolve the model now (cheap, no weights) so an unknown name fails here."""
        self._embedder = Embedder(self.model_name, device=self.device,
                                  batch_size=self.batch_size, backend=self.backend)

    @classmethod
    def from_embedder(cls, embedder: Embedder) -> MiniLMEmbeddings:
        """Wrap an existing core embedder (e.g. the one a `Collection` resolved)."""
        instance = cls(
            model=embedder.model_name, device=embedder.device, batch_size=embedder.batch_size,
            backend=embedder.backend_name,
        )
        instance._embedder = embedder
        return instance

    @property
    def embedder(self) -> Embedder:
        """The core embedder this adapter translates calls to."""
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (search targets)."""
        return self._embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return self._embedder.embed_query(text).tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents in a worker thread, over the same sync code."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed a search query in a worker thread, over the same sync code."""
        return await asyncio.to_thread(self.embed_query, text)
