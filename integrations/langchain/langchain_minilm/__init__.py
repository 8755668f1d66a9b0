"""LangChain integration for minilm-qdrant."""

from langchain_minilm.embeddings import MiniLMEmbeddings
from langchain_minilm.vectorstores import MiniLMQdrantVectorStore, minilm_vector_store

__all__ = ["MiniLMEmbeddings", "MiniLMQdrantVectorStore", "minilm_vector_store"]
