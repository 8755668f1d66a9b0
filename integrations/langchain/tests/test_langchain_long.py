"""Long texts through `MiniLMVectorStore` (LangChain): every window embedded, and a hit's
``page_content`` is the passage that answered, with its offsets in the whole text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore

CORPUS = Path(__file__).resolve().parents[3] / "examples" / "conference.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


def _long() -> tuple[list[str], dict[str, tuple[int, int, int]]]:
    """Nine sessions a text; where each sits: id -> (text number, start, end)."""
    texts: list[str] = []
    where: dict[str, tuple[int, int, int]] = {}
    for n, first in enumerate(range(0, len(ROWS), 9)):
        text = ""
        for r in ROWS[first:first + 9]:
            section = f"{r['title']}\n{r['text']}"
            start = len(text) + (2 if text else 0)
            text = f"{text}\n\n{section}" if text else section
            where[r["id"]] = (n, start, start + len(section))
        texts.append(text)
    return texts, where


@pytest.mark.parametrize("location", ["edge", ":memory:"])
def test_a_hit_in_a_long_text_is_its_passage(
        location: str, tmp_path: Path, embeddings: MiniLMEmbeddings) -> None:
    texts, where = _long()
    path = str(tmp_path / "store") if location == "edge" else location
    ids = [f"long-{n}" for n in range(len(texts))]
    store = MiniLMVectorStore.from_texts(texts, embeddings, ids=ids, collection_name="long",
                                         path=path)
    try:
        points = [p for page in store.collection.engine.scroll("long", 16) for p in page]
        assert all(p.windows is not None and len(p.windows) > 2 for p in points)
        late = [r for r in ROWS if where[r["id"]][1] > 3000]
        good = 0
        for r in late:
            doc = store.similarity_search(r["title"], k=1)[0]
            n, start, end = where[r["id"]]
            whole = store.get_by_ids([doc.id or ""])[0].page_content
            passage = doc.metadata["_passage"]
            assert whole[passage["start"]:passage["end"]] == doc.page_content
            assert len(doc.page_content) < len(whole)
            good += doc.id == ids[n] and passage["start"] < end and start < passage["end"]
        assert good >= 0.9 * len(late)
    finally:
        store.close()
