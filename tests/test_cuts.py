"""How much of a text is embedded, and in how many passes: a text the model's positions hold
is one pass (no window split), a short tail joins the window before it where asked, old
collections keep the cut they were made with, and ``coverage="first-window"`` embeds a plain
stack's first window only, knowingly; with the real weights on Qdrant Edge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import index_in_process

from minilm_qdrant import Collection, Document, Embedder
from minilm_qdrant.collection import CollectionOptions
from minilm_qdrant.windows import Windows, WindowSettings

SENTENCES = [
    "Hierarchical navigable small world graphs answer nearest neighbour queries quickly.",
    "Scalar quantisation keeps one byte a dimension and rescoring restores the order.",
    "Reciprocal rank fusion merges the ranked lists of sparse and dense retrieval.",
    "Write-ahead logs make every acknowledged upsert survive a crash of the process.",
    "Payload indexes let a filter on a keyword field skip most of the collection.",
    "A tokenizer splits rare words into word pieces that the model has embeddings for.",
]


def text_of(embedder: Embedder, pieces: int, tail: str = "") -> str:
    """A text of about ``pieces`` word pieces (sentences repeated), then ``tail``."""
    tokenizer, parts, n = embedder.tokenizer(), [], 0
    while n < pieces:
        sentence = SENTENCES[len(parts) % len(SENTENCES)]
        parts.append(sentence)
        n += len(tokenizer.encode(sentence, add_special_tokens=False).ids)
    return " ".join(parts) + (" " + tail if tail else "")


def pieces_of(embedder: Embedder, text: str) -> int:
    return len(embedder.tokenizer().encode(text, add_special_tokens=False).ids)


def test_a_text_the_positions_hold_is_one_window_embedded_whole(embedder: Embedder) -> None:
    default = Windows.of(embedder, WindowSettings())
    assert (default.size, default.whole, default.last, default.tokens) == (254, 254, 254, 256)
    cutter = Windows.of(embedder, WindowSettings(whole=510))
    text = text_of(embedder, 400)
    assert 254 < pieces_of(embedder, text) <= 510
    assert len(default.cut([text])[0]) == 2
    assert cutter.cut([text]) == [[(0, len(text))]]  # no split: one pass of the whole text
    longer = text_of(embedder, 600)
    spans = cutter.cut([longer])[0]
    assert len(spans) >= 3 and all(pieces_of(embedder, longer[a:b]) <= 254 for a, b in spans)
    whole = embedder.encode_documents([text], limit=cutter.tokens)
    cut = embedder.encode_documents([text])  # the model's configured 256
    assert whole.truncated == 0 and whole.tokens == pieces_of(embedder, text) + 2
    assert cut.truncated == 1 and cut.tokens == 256
    assert float(whole.vectors[0] @ cut.vectors[0]) < 0.9999  # the tail is in the vector


def test_even_windows_and_a_short_tail_joining_the_window_before_it(
        embedder: Embedder) -> None:
    text = text_of(embedder, 600)
    folded = Windows.of(embedder, WindowSettings(last=510)).cut([text])[0]
    plain = Windows.of(embedder, WindowSettings()).cut([text])[0]
    assert len(folded) == 2 < len(plain)
    assert folded[-1][1] == plain[-1][1] == len(text)  # to the last word either way
    assert 254 < pieces_of(embedder, text[slice(*folded[-1])]) <= 510
    three = text_of(embedder, 300)
    even = Windows.of(embedder, WindowSettings(even=True, overlap=0)).cut([three])[0]
    sizes = [pieces_of(embedder, three[a:b]) for a, b in even]
    assert len(sizes) == 2 and max(sizes) < 200  # two of about half, not 254 and a tail


def test_settings_out_of_range_are_refused_by_name(embedder: Embedder) -> None:
    for settings, words in ((WindowSettings(size=600), "over the model's limit of 510"),
                            (WindowSettings(whole=100), "window whole 100 must be from"),
                            (WindowSettings(last=600), "window last 600 must be from")):
        with pytest.raises(Exception, match=words):
            Windows.of(embedder, settings)


def test_a_collection_made_before_the_new_settings_keeps_its_cut(embedder: Embedder,
                                                         tmp_path: Path) -> None:
    """A fingerprint written before ``whole``/``last``/``coverage``/``even`` existed reads back
    as the cut of its time: every text over ``size`` in windows of ``size``; one made with
    ``whole=510`` keeps it on reopening."""
    old = WindowSettings.from_dict({"size": 254, "overlap": 64})
    assert (old.whole, old.last, old.coverage) == (254, 254, "all")
    text = text_of(embedder, 400)
    store = str(tmp_path / "store")
    with Collection("old", embedder, path=store, options=CollectionOptions(windows=old)) as c:
        assert c.upsert([Document(text, id="t")]).windows == 2  # cut, as before
    with Collection("old", path=store) as reopened:
        assert reopened.windows is not None and reopened.windows.whole == 254
        assert reopened.upsert([Document(text, id="t")]).unchanged == 1  # nothing re-embedded
    with Collection("new", embedder, path=store,
                    options=CollectionOptions(windows=WindowSettings(whole=510))) as new:
        report = new.upsert([Document(text, id="t")])
        assert report.windows == 1 and report.windowed == 0 and report.truncated == 0
    with Collection("new", path=store) as reopened:
        assert reopened.windows is not None and reopened.windows.whole == 510


def test_first_window_coverage_embeds_a_plain_stacks_share_and_bm25_reads_the_rest(
        embedder: Embedder, tmp_path: Path) -> None:
    tail = "The zebrafish cardiomyocyte regenerates after cryoinjury."
    text = text_of(embedder, 700, tail)
    settings = WindowSettings(coverage="first-window")
    with Collection("first", embedder, path=str(tmp_path / "s"),
                    options=CollectionOptions(windows=settings)) as col:
        report = col.upsert([Document(text, id="long"),
                             Document("A short note on graphs.", id="short")])
        assert report.windows == 2 and report.windowed == 0
        assert report.truncated == 1  # counted: embedded in part, never silently
        assert report.tokens == 256 + pieces_of(embedder, "A short note on graphs.") + 2
        assert col.windows is not None and col.windows.coverage == "first-window"
        [span] = col.windows.cut([text])[0]
        assert span[0] == 0 and pieces_of(embedder, text[slice(*span)]) == 254
        hits = col.search("zebrafish cardiomyocyte cryoinjury", k=1, mode="sparse")
        assert hits[0].id == "long"  # BM25 holds the whole text: the tail is still found
        assert hits[0].text == text  # the document is stored whole
    with Collection("first", path=str(tmp_path / "s")) as reopened:  # recorded
        assert reopened.windows is not None and reopened.windows.coverage == "first-window"


def test_cli_coverage(embedder: Embedder, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": text_of(embedder, 700)}) + "\n")
    invoke = index_in_process(embedder, monkeypatch, capsys, str(tmp_path / "store"))
    code, out, err = invoke(str(docs), "--coverage", "first-window")
    assert code == 0, err
    assert "embedded by their first window only (--coverage first-window; BM25 holds them " \
        "whole): 1" in out and "windows embedded" not in out
    code, out, err = invoke(str(docs), "--coverage", "all")  # exists: keeps its own
    assert code == 0
    assert "note: --coverage all applies to a new collection; 'documents' keeps its " \
        "coverage first-window" in err
    code, out, err = invoke(str(docs), "--coverage", "everything")
    assert code == 2 and "--coverage must be one of all, first-window, not 'everything'" in err


def test_the_bf16_backend_agrees_with_fp32(embedder: Embedder) -> None:
    texts = [text_of(embedder, n) for n in (20, 120, 300, 500)]
    fast = Embedder("all-MiniLM-L6-v2", backend="torch-bf16")
    ours = fast.encode_documents(texts, limit=512).vectors
    reference = embedder.encode_documents(texts, limit=512).vectors
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.min() > 0.995, cosines
