"""`MiniLMEmbedding`: the core `Embedder` as a LlamaIndex `BaseEmbedding`."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import DEFAULT_EMBED_BATCH_SIZE, BaseEmbedding
from llama_index.core.callbacks import CallbackManager
from pydantic import Field, PrivateAttr

from minilm_qdrant import DEFAULT_MODEL, Embedder


class MiniLMEmbedding(BaseEmbedding):
    """MiniLM sentence embeddings from minilm-qdrant's registry, for LlamaIndex.

    Queries go through the model's query path, texts (nodes) through its document path.
    LlamaIndex splits batches by ``embed_batch_size``; the core embedder runs each batch.
    Weights load on first use, once per process.

    Long texts: LlamaIndex's interface is one vector a text, so a text over the model's limit
    (256 word pieces; SentenceSplitter's default nodes are 1,024 tokens) is embedded from its
    first 254 word pieces only (counted, one warning a call). `MiniLMVectorStore`
    (llama-index-vector-stores-minilm) embeds every window of a longer node itself and
    returns the passage that answered.

    Example:
        ```python
        from llama_index.core import Settings
        from llama_index.embeddings.minilm import MiniLMEmbedding

        Settings.embed_model = MiniLMEmbedding(model_name="all-MiniLM-L6-v2")
        ```
    """

    model_name: str = Field(
        default=DEFAULT_MODEL,
        description="Registry name (all-MiniLM-L6-v2), hub id or local directory.",
    )
    device: str | None = Field(
        default=None, description="Torch device; default: CUDA when available, else CPU."
    )
    backend: str = Field(
        default="auto", description="auto (per kind of call), torch, torch-bf16, onnx or onnx-int8."
    )

    _embedder: Embedder = PrivateAttr()

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        backend: str = "auto",
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        callback_manager: CallbackManager | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model_name=model_name,
            device=device,  # type: ignore[call-arg]  # a field of this class
            backend=backend,
            embed_batch_size=embed_batch_size,
            callback_manager=callback_manager or CallbackManager([]),
            **kwargs,
        )
        # Resolves the model now (cheap, no weights), so an unknown name fails here.
        self._embedder = Embedder(model_name, device=device, batch_size=embed_batch_size,
                                  backend=backend)

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    @property
    def embedder(self) -> Embedder:
        """The core embedder this adapter translates calls to."""
        return self._embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed_query(query).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_documents(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
