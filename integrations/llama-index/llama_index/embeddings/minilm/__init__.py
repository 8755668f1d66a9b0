"""LlamaIndex embeddings integration for minilm-qdrant."""

from llama_index.embeddings.minilm.base import MiniLMEmbedding

__all__ = ["MiniLMEmbedding"]
