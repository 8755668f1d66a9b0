"""A rerun never duplicates through LangChain's front doors, on the embedded Qdrant Edge store
and qdrant-client local mode: files loaded with LangChain's ``DirectoryLoader`` /
``TextLoader`` and split with ``RecursiveCharacterTextSplitter``, into
``MiniLMVectorStore.from_documents`` again and again, leave the same points; LangChain's
indexing API (``index()`` with a record manager: langchain_core's ``InMemoryRecordManager``
and the SQL one on SQLite) writes nothing on a rerun, replaces an edited file's chunks
(``incremental``) and removes a deleted file's (``full``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stores import CATS, PARROTS, RUST, TOPICS

pytest.importorskip("langchain_community")
pytest.importorskip("langchain_text_splitters")

from langchain_community.document_loaders import DirectoryLoader, TextLoader
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, RecordManager, index
from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter


def guide() -> str:
    """A guide the splitter cuts into several chunks."""
    return "\n\n".join(
        f"Step {i} of the sourdough guide is about {TOPICS[i % 8]}: watch the dough at hour "
        f"{i} and compare loaf {i} with loaf {i - 1} before changing {TOPICS[(i * 3) % 8]}."
        for i in range(12))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cats.txt").write_text(CATS, encoding="utf-8")
    (folder / "rust.txt").write_text(RUST, encoding="utf-8")
    (folder / "sourdough.txt").write_text(guide(), encoding="utf-8")
    return folder




def load(folder: Path) -> list[Document]:
    loaded = DirectoryLoader(str(folder), glob="*.txt", loader_cls=TextLoader).load()
    return RecursiveCharacterTextSplitter(chunk_size=300, chunk_overlap=40) \
        .split_documents(loaded)


def contents(store: MiniLMVectorStore) -> list[str]:
    return sorted(d.text for d in store.collection.find())


def test_loader_and_from_documents_rerun_leaves_the_same_points(
    docs: Path, path: str, embeddings: MiniLMEmbeddings
) -> None:
    chunks = load(docs)
    assert len(chunks) > 4 and all(c.id is None for c in chunks)  # no ids from the loader

    def run() -> tuple[list[str], list[str]]:
        store = MiniLMVectorStore.from_documents(load(docs), embeddings,
                                                 collection_name="docs", path=path)
        ids = sorted(str(d.id) for d in store.collection.find())
        top = store.similarity_search("cat naps", k=1)[0].page_content
        assert top == CATS
        found = contents(store)
        store.close()
        return ids, found

    first = run()
    assert len(first[0]) == len(chunks)
    assert run() == first == run()


@pytest.fixture(params=["in-memory", "sql"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], RecordManager]:
    """The record manager of each run: langchain_core's in-memory one (kept by the process),
    or the SQL one on a SQLite file (opened again by each run, as a new process would)."""
    if request.param == "in-memory":
        manager = InMemoryRecordManager("minilm/docs")
        manager.create_schema()
        return lambda: manager
    from langchain_classic.indexes import SQLRecordManager

    def sql() -> RecordManager:
        manager = SQLRecordManager("minilm/docs", db_url=f"sqlite:///{tmp_path / 'records.db'}")
        manager.create_schema()
        return manager

    return sql


@pytest.fixture
def run_index(
    docs: Path, path: str, embeddings: MiniLMEmbeddings,
    records: Callable[[], RecordManager],
) -> Iterator[Callable[[str], tuple[dict[str, Any], list[str], str]]]:
    def run(cleanup: str) -> tuple[dict[str, Any], list[str], str]:
        store = MiniLMVectorStore(embeddings, "docs", path=path)
        try:
            result = index(load(docs), records(), store, cleanup=cleanup,  # type: ignore[arg-type]
                           source_id_key="source", key_encoder="sha256")
            top = store.similarity_search("a bird that talks", k=1)[0].page_content
            return dict(result), contents(store), top
        finally:
            store.close()

    yield run


def test_indexing_api_rerun_edit_and_deleted_source(
    docs: Path, run_index: Callable[[str], tuple[dict[str, Any], list[str], str]]
) -> None:
    n = len(load(docs))
    first, stored, _ = run_index("incremental")
    assert (first["num_added"], len(stored)) == (n, n)

    again, same, _ = run_index("incremental")  # a rerun writes nothing
    assert (again["num_added"], again["num_updated"], again["num_deleted"],
            again["num_skipped"]) == (0, 0, 0, n)
    assert same == stored

    (docs / "cats.txt").write_text(PARROTS, encoding="utf-8")
    edited, now, top = run_index("incremental")  # the edited file's chunk replaced
    assert (edited["num_added"], edited["num_deleted"], len(now)) == (1, 1, n)
    assert PARROTS in now and CATS not in now and top == PARROTS

    (docs / "rust.txt").unlink()
    kept, now, _ = run_index("incremental")  # incremental sees only the sources it is given
    assert kept["num_deleted"] == 0 and RUST in now
    full, now, _ = run_index("full")  # full removes what the loader no longer gives
    assert (full["num_added"], full["num_deleted"], len(now)) == (0, 1, n - 1)
    assert RUST not in now and PARROTS in now
