"""LlamaIndex vector store over minilm-qdrant collections."""

from llama_index.vector_stores.minilm.base import MiniLMVectorStore

__all__ = ["MiniLMVectorStore"]
