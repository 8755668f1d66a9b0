"""A rerun never duplicates, through LlamaIndex's own front doors, on the embedded Qdrant Edge
store and qdrant-client local mode: the quick start (``SimpleDirectoryReader`` +
``VectorStoreIndex.from_documents``, random document and node ids) run again in new processes
leaves the same points; an edited file replaces its nodes; a deleted file's nodes go the
LlamaIndex way (an ``IngestionPipeline`` with a docstore, ``refresh_ref_docs`` and
``delete_ref_doc``, or ``delete(file_path)``); files read as several documents (sections,
pages) keep them all, whatever the insert batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import (
    Document,
    SimpleDirectoryReader,
    StorageContext,
    VectorStoreIndex,
)
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.utils import node_to_metadata_dict
from llama_index.vector_stores.minilm import MiniLMVectorStore
from llama_index.vector_stores.minilm.base import NODE_KEYS
from stores import CATS, PARROTS, RUST, TOPICS

from minilm_qdrant import Collection, Embedder
from minilm_qdrant import Document as CoreDocument

CHILD = Path(__file__).with_name("llamaindex_quickstart_child.py")


def guide() -> str:
    """A guide long enough for several nodes of LlamaIndex's default splitter."""
    return "\n\n".join(
        f"Step {i} of the sourdough guide is about {TOPICS[i % 8]}: watch the dough at hour "
        f"{i}, note its temperature of {18 + i % 9} degrees and its rise of {i * 3} percent, "
        f"and compare loaf {i} with loaf {i - 1} before changing {TOPICS[(i * 3) % 8]}. "
        "Bakers who keep such notes learn how flour, water and time shape the bread."
        for i in range(36))


def write_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "cats.txt").write_text(CATS, encoding="utf-8")
    (folder / "rust.txt").write_text(RUST, encoding="utf-8")
    (folder / "sourdough.txt").write_text(guide(), encoding="utf-8")
    return folder




def run_child(docs: Path, path: str, *queries: str) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(CHILD), str(docs), path, *queries], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_quick_start_three_processes_then_an_edit(tmp_path: Path, path: str) -> None:
    docs = write_corpus(tmp_path / "docs")
    runs = [run_child(docs, path, "cat naps") for _ in range(3)]
    first = runs[0]
    assert first["count"] > 3  # the guide is several nodes
    assert [r["count"] for r in runs] == [first["count"]] * 3  # not 3 -> 6 -> 9
    assert runs[1]["ids"] == runs[2]["ids"] == first["ids"]
    assert first["top"]["cat naps"] == CATS

    (docs / "cats.txt").write_text(PARROTS, encoding="utf-8")
    edited = run_child(docs, path, "a bird that talks", "cat naps")
    assert edited["count"] == first["count"]
    assert PARROTS in edited["texts"] and CATS not in edited["texts"]
    assert edited["top"]["a bird that talks"] == PARROTS
    assert edited["top"]["cat naps"] != CATS


@pytest.fixture
def open_store(embedder: Embedder) -> Iterator[Callable[[str], MiniLMVectorStore]]:
    """Opens a store the way a new run does (a new `MiniLMVectorStore` on the path)."""
    opened: list[MiniLMVectorStore] = []

    def make(where: str) -> MiniLMVectorStore:
        store = MiniLMVectorStore(collection=Collection("docs", embedder, path=where))
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


def quick_start(store: MiniLMVectorStore, docs: Path, **kwargs: Any) -> VectorStoreIndex:
    reader_kwargs = {k: kwargs.pop(k) for k in ("filename_as_id", "file_extractor")
                     if k in kwargs}
    return VectorStoreIndex.from_documents(
        SimpleDirectoryReader(str(docs), **reader_kwargs).load_data(),
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=store.embed_model, **kwargs)


def texts(store: MiniLMVectorStore) -> list[str]:
    return sorted(d.text for d in store.client.find())


def top(index: VectorStoreIndex, query: str) -> str:
    return index.as_retriever(similarity_top_k=1).retrieve(query)[0].node.get_content()


def test_the_same_store_object_replaces_an_edited_file(
    tmp_path: Path, path: str, open_store: Callable[[str], MiniLMVectorStore]
) -> None:
    """A notebook reruns its cell with the store it already holds: the same points, an edited
    file's new text and not its old, a file's nodes gone by its path or by LlamaIndex's
    document id."""
    docs = write_corpus(tmp_path / "docs")
    store = open_store(path)
    quick_start(store, docs)
    n = store.client.count()
    before = texts(store)
    quick_start(store, docs)
    assert store.client.count() == n and texts(store) == before

    (docs / "cats.txt").write_text(PARROTS, encoding="utf-8")
    index = quick_start(store, docs)
    assert store.client.count() == n
    assert PARROTS in texts(store) and CATS not in texts(store)
    assert top(index, "a bird that talks") == PARROTS

    store.delete(str(docs / "rust.txt"))  # a deleted file, by the reader's file_path
    assert store.client.count() == n - 1 and RUST not in texts(store)
    [parrots] = [d for d in SimpleDirectoryReader(str(docs)).load_data()
                 if d.text == PARROTS]
    index.insert(parrots)  # the same file again: its node replaced, not doubled
    assert store.client.count() == n - 1
    index.delete_ref_doc(parrots.doc_id)  # LlamaIndex's (random) document id
    assert store.client.count() == n - 2 and PARROTS not in texts(store)


def test_ingestion_pipeline_with_a_docstore_updates_and_deletes(
    tmp_path: Path, path: str, open_store: Callable[[str], MiniLMVectorStore]
) -> None:
    """LlamaIndex's own way for folders that change: ``filename_as_id`` documents through an
    ``IngestionPipeline`` with a persisted docstore (``UPSERTS_AND_DELETE``), each run a new
    store and docstore from disk: unchanged files skipped, an edited one replaced, a deleted
    one removed."""
    docs = write_corpus(tmp_path / "docs")
    saved = str(tmp_path / "docstore.json")

    def run() -> tuple[int, int, list[str]]:
        store = open_store(path)
        docstore = SimpleDocumentStore.from_persist_path(saved) if Path(saved).exists() \
            else SimpleDocumentStore()
        pipeline = IngestionPipeline(
            transformations=[SentenceSplitter(), store.embed_model], docstore=docstore,
            vector_store=store, docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE)
        written = pipeline.run(
            documents=SimpleDirectoryReader(str(docs), filename_as_id=True).load_data())
        docstore.persist(saved)
        result = len(written), store.client.count(), texts(store)
        store.close()
        return result

    written, n, first = run()
    assert written == n > 3
    assert run() == (0, n, first)  # nothing changed: nothing written
    (docs / "cats.txt").write_text(PARROTS, encoding="utf-8")
    written, count, now = run()
    assert (written, count) == (1, n) and PARROTS in now and CATS not in now
    (docs / "rust.txt").unlink()
    written, count, now = run()
    assert (written, count) == (0, n - 1) and RUST not in now and PARROTS in now


def test_refresh_ref_docs_and_delete_ref_doc(
    tmp_path: Path, path: str, open_store: Callable[[str], MiniLMVectorStore]
) -> None:
    docs = write_corpus(tmp_path / "docs")
    store = open_store(path)
    index = quick_start(store, docs, filename_as_id=True)
    n = store.client.count()
    (docs / "cats.txt").write_text(PARROTS, encoding="utf-8")
    again = SimpleDirectoryReader(str(docs), filename_as_id=True).load_data()
    refreshed = dict(zip([Path(d.doc_id).name for d in again],
                         index.refresh_ref_docs(again), strict=True))
    assert refreshed == {"cats.txt": True, "rust.txt": False, "sourdough.txt": False}
    assert store.client.count() == n
    assert PARROTS in texts(store) and CATS not in texts(store)
    index.delete_ref_doc(str(docs / "rust.txt"))  # filename_as_id: the path is the id
    assert store.client.count() == n - 1 and RUST not in texts(store)
    assert top(index, "memory safety without garbage collection") != RUST


class SectionsReader(BaseReader):
    """Several documents a file with the same metadata, as LlamaIndex's MarkdownReader gives
    a file's sections (and PDFReader its pages)."""

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None,
                  **kwargs: Any) -> list[Document]:
        parts = Path(file).read_text(encoding="utf-8").split("\n\n")
        return [Document(text=p, metadata=dict(extra_info or {})) for p in parts if p.strip()]


SECTIONS = [f"Section {i}: the {t} of sourdough, in a few words of its own." for i, t in
            enumerate(TOPICS[:5])]


def test_files_read_as_several_documents_keep_them_all(
    tmp_path: Path, path: str, open_store: Callable[[str], MiniLMVectorStore]
) -> None:
    """A file's sections are one file's documents: added in batches of one (each section a
    batch of its own), the file keeps every section; a rerun leaves them; an edit (a section
    changed, one gone) replaces the file's sections."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("\n\n".join(SECTIONS), encoding="utf-8")
    (docs / "cats.md").write_text(CATS, encoding="utf-8")
    extractor = {".md": SectionsReader()}

    store = open_store(path)
    quick_start(store, docs, file_extractor=extractor, insert_batch_size=1)
    assert texts(store) == sorted([*SECTIONS, CATS])
    quick_start(store, docs, file_extractor=extractor, insert_batch_size=2)  # same object
    assert texts(store) == sorted([*SECTIONS, CATS])
    store.close()
    store = open_store(path)  # a new run
    quick_start(store, docs, file_extractor=extractor, insert_batch_size=1)
    assert texts(store) == sorted([*SECTIONS, CATS])
    store.close()

    edited = [SECTIONS[0], PARROTS, *SECTIONS[3:]]
    (docs / "notes.md").write_text("\n\n".join(edited), encoding="utf-8")
    store = open_store(path)
    quick_start(store, docs, file_extractor=extractor, insert_batch_size=1)
    assert texts(store) == sorted([*edited, CATS])


def test_random_node_ids_are_stored_under_derived_ones(
    path: str, open_store: Callable[[str], MiniLMVectorStore]
) -> None:
    """A node with a random id is stored under one derived from its text (no document here):
    the same text added again is the same point; the caller's node is left as it is and
    still finds, and deletes, the stored node by its own id; chosen ids are kept."""
    store = open_store(path)
    node = TextNode(text=CATS)
    [stored] = store.add([node])
    assert stored != node.node_id and uuid.UUID(stored).version == 5
    assert [n.node_id for n in store.get_nodes(node_ids=[node.node_id])] == [stored]
    assert [n.get_content() for n in store.get_nodes(node_ids=[stored])] == [CATS]
    assert store.add([TextNode(text=CATS)]) == [stored] and store.client.count() == 1
    again = TextNode(text=CATS)
    store.add([again])
    store.delete_nodes(node_ids=[again.node_id])
    assert store.client.count() == 0
    assert store.add([TextNode(text=CATS, id_="mine")]) == ["mine"]
    # a document that happens to be called as the node: its nodes leave the node alone
    store.add([TextNode(text=PARROTS, relationships={
        NodeRelationship.SOURCE: RelatedNodeInfo(node_id="mine", hash="v1")})])
    assert texts(store) == sorted([CATS, PARROTS])


def test_a_rerun_clears_duplicates_older_versions_left(
    tmp_path: Path, path: str, open_store: Callable[[str], MiniLMVectorStore]
) -> None:
    """Before stores kept document keys, each quick start added its nodes again under new
    random ids. A rerun now replaces those too: the collection ends with one set."""
    docs = write_corpus(tmp_path / "docs")
    store = open_store(path)
    for _ in range(2):  # two old runs: as the store wrote nodes before (caller's random ids)
        nodes = SentenceSplitter()(SimpleDirectoryReader(str(docs)).load_data())
        store.client.upsert(CoreDocument(
            n.get_content(), dict(n.metadata), id=n.node_id,
            extra={k: v for k, v in node_to_metadata_dict(n, remove_text=True).items()
                   if k in NODE_KEYS}) for n in nodes)
    assert store.client.count() == 2 * len(nodes)
    quick_start(store, docs)
    assert store.client.count() == len(nodes)
