"""LangChain integration for minilm-qdrant: embeddings and a vector store over `Collection`."""

from langchain_minilm.embeddings import MiniLMEmbeddings
from langchain_minilm.vectorstores import MiniLMVectorStore

__all__ = ["MiniLMEmbeddings", "MiniLMVectorStore"]
