"""What a folder sync owns and what no file can do to a folder: the reserved origin mark, file
names that are not UTF-8, a book-sized file, the user's metadata across a re-read, and the
smaller one-line answers; on real files and both real engines (Edge and local mode)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from conftest import engine_path, index_in_process
from faults import record
from test_sources import pdf

from minilm_qdrant import Collection, Document, Embedder, InputError
from minilm_qdrant.documents import ORIGIN_KEY
from minilm_qdrant.errors import IngestError
from minilm_qdrant.fingerprint import FINGERPRINT_KEY
from minilm_qdrant.inputs import FolderStats, read_path, sync
from minilm_qdrant.inputs.formats import extract

ENGINES = ["edge", "local-path"]


@pytest.fixture(params=ENGINES)
def col(request: pytest.FixtureRequest, embedder: Embedder, tmp_path: Path):
    with Collection("docs", embedder, path=engine_path(request.param, tmp_path)) as c:
        c.kind = request.param  # type: ignore[attr-defined]
        yield c


@pytest.fixture(params=ENGINES)
def index(request: pytest.FixtureRequest, embedder: Embedder, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """``minilm-qdrant index ARGS --path STORE`` in this process, on the loaded weights, into
    an Edge store or a qdrant-client local one (a directory that holds one stays one)."""
    store = engine_path(request.param, tmp_path)
    invoke = index_in_process(embedder, monkeypatch, capsys, store)
    invoke.store = store  # type: ignore[attr-defined]
    invoke.kind = request.param  # type: ignore[attr-defined]
    return invoke


def test_a_sync_never_deletes_what_it_did_not_write(index, embedder: Embedder, tmp_path: Path
                                                    ) -> None:
    """The issue's reproduction: a JSONL document and an API document that say
    ``folder: notes`` in their metadata survive a sync of a folder named notes."""
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"id": "crm-1", "text": "Customer invoices.", "folder": "notes"}\n')
    assert index(str(extra))[0] == 0
    with Collection("documents", embedder, path=index.store) as col:
        col.upsert([Document("Quarterly targets.", {"folder": "notes", "source": "api-7"},
                             id="api-7")])
    notes = tmp_path / "c" / "notes"
    notes.mkdir(parents=True)
    (notes / "trains.md").write_text("Gamma note.\n")
    code, out, err = index(str(notes), "--sync")
    assert code == 0, err
    assert "1 added, 0 updated, 0 unchanged, 0 deleted" in out
    with Collection("documents", embedder, path=index.store) as col:
        held = {d.id: d for d in col.find()}
    assert set(held) == {"crm-1", "api-7", "trains.md"}
    assert held["crm-1"].origin is None and held["trains.md"].origin == "folder:notes"
    record("sync of folder 'notes' beside a JSONL and an API document with metadata "
           f"folder=notes (CLI, {index.kind})", "both kept; the report counts the folder's 1 "
           "added, 0 deleted", 3, len(held))


def test_ownership_is_the_reserved_mark_on_both_engines(col: Collection, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\nThe first note.\n")
    (notes / "clash.md").write_text("# Clash\n\nA file whose id the API already uses.\n")
    col.upsert([Document("Invoices of March.", {"folder": "notes", "source": "crm-1",
                                                 "modified": "x", "bytes": 1}, id="crm-1"),
                Document("The API's own clash.", {"folder": "notes"}, id="clash.md")])
    with pytest.raises(InputError) as raised:
        sync(col, notes)
    message = str(raised.value)
    assert "clash.md" in message and "not from a folder" in message and "'notes'" in message
    assert "\n" not in message
    done = sync(col, notes, skip_invalid=True)
    assert (done.added, done.deleted) == (1, 0) and len(done.stats.skipped) == 1
    (notes / "a.md").unlink()
    gone = sync(col, notes, skip_invalid=True)
    assert gone.deleted == 1
    held = {d.id: d.text for d in col.find()}
    assert held == {"crm-1": "Invoices of March.", "clash.md": "The API's own clash."}
    record(f"sync with an API id clash and a forged folder/source/modified/bytes ({col.kind})",
           "clash named in one line (both sources); with --skip-invalid skipped; only the "
           "folder's own document deleted", 2, len(held))


def test_a_collection_synced_before_the_mark_keeps_syncing(embedder: Embedder, tmp_path: Path
                                                           ) -> None:
    """A collection made by an earlier version (no mark in its fingerprint or its points)
    keeps syncing: its file documents are known by every field a file gives and marked on
    the next sync; a reembed moves it to a marked collection."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "old.md").write_text("# Old\n\nWritten by an earlier version.\n")
    (notes / "gone.md").write_text("# Gone\n\nSoon deleted.\n")
    (notes / "kept.md").write_text("# Kept\n\nStays as it was.\n")
    path = str(tmp_path / "store")
    with Collection("docs", embedder, path=path) as col:
        col.upsert([Document(d.text, d.metadata, d.id) for d in read_path(notes)])  # no mark
        col.upsert([Document("From the API.", {"folder": "notes"}, id="api-1")])
        info = col.engine.info("docs")
        assert info is not None
        record_ = {k: v for k, v in info.metadata[FINGERPRINT_KEY].items() if k != "origins"}
        col.engine.set_metadata("docs", {FINGERPRINT_KEY: record_})  # as an old version made
    (notes / "gone.md").unlink()
    with Collection("docs", path=path) as col:
        assert not col.origins
        done = sync(col, notes)
        assert (done.added, done.updated, done.deleted) == (0, 2, 1)  # marked: a payload write
        assert done.upsert is not None and done.upsert.tokens == 0  # marked, not embedded
        assert col.get(["old.md"])[0].origin == "folder:notes"
        assert sorted(d.id for d in col.find()) == ["api-1", "kept.md", "old.md"]
        report = col.reembed(Embedder("all-MiniLM-L6-v2", pooling="cls"), to_collection="moved")
        assert report.points == 3
    with Collection("moved", path=path) as moved:
        assert moved.origins
        assert {d.id: d.origin for d in moved.find()} == {
            "api-1": None, "kept.md": "folder:notes", "old.md": "folder:notes"}


def test_a_file_name_that_is_not_utf8_is_read_under_a_stable_id(index, embedder: Embedder,
                                                               tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    (root / "normal.md").write_text("# Normal\n\nA note with a plain name.\n")
    latin = os.fsdecode(bytes(root) + b"/caf\xe9.md")
    with open(latin, "w", encoding="utf-8") as f:
        f.write("# Menu\n\nEspresso, latte and croissants.\n")
    for flags in ([], ["--skip-invalid"]):
        code, out, err = index(str(root), "--sync", *flags)
        assert code == 0 and err == "", err
        assert "caf\\xe9.md" in out and "UnicodeEncodeError" not in out + err
    assert "0 added, 0 updated, 2 unchanged" in out  # the same id both times
    with Collection("documents", embedder, path=index.store) as col:
        assert sorted(d.id for d in col.find()) == ["caf\\xe9.md", "normal.md"]
        assert col.search("croissants", 1)[0].id == "caf\\xe9.md"
        os.unlink(latin)
        assert sync(col, root).deleted == 1  # the escaped id finds its file gone
        left = col.count()
    record("folder with normal.md and caf\\xe9.md (a Latin-1 name), with and without "
           f"--skip-invalid (CLI, {index.kind})", "exit 0 both times, no codec error; stored as "
           "'caf\\xe9.md' (its bytes escaped), named in one line; deleted when the file goes",
           1, left)


def test_a_bad_file_is_named_printably_and_skipped(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.md").write_text("# Good\n\nA good note.\n")
    bad = os.fsdecode(bytes(root) + b"/bin\xff\n.txt")
    with open(bad, "wb") as f:
        f.write(b"\x00\x01 binary")
    with pytest.raises(IngestError) as raised:  # the file's error, after what came before
        sync(col, root)
    message = str(raised.value)
    assert "bin\\xff\\x0a.txt: a binary file" in message and "\n" not in message
    message.encode("utf-8")  # printable: no surrogate reaches a terminal
    done = sync(col, root, skip_invalid=True)
    assert done.added == 1 and len(done.stats.skipped) == 1
    record(f"a binary file named 'bin\\xff\\n.txt' in a folder ({col.kind})", "one printable "
           "line naming it; --skip-invalid skips it, the good file indexed", 1, col.count())


def test_engines_in_this_process_have_no_request_bound(col: Collection, embedder: Embedder
                                                       ) -> None:
    """Edge and local mode take a point of any size (no wire between); a server keeps Qdrant's
    request bound unless told otherwise."""
    from faults import FaultInjector

    from minilm_qdrant.collection.batching import MAX_BATCH_BYTES

    assert col.max_batch_bytes is None and col.engine.in_process
    server = FaultInjector().collection(embedder)  # a server, at its HTTP transport
    assert server.max_batch_bytes == MAX_BATCH_BYTES and not server.engine.in_process


def test_a_book_sized_file_is_one_document_with_every_window(embedder: Embedder,
                                                             tmp_path: Path) -> None:
    """A text whose point is over a server's 30 MiB request bound reaches the embedded store
    whole: every window stored, a passage from its middle found. (Local mode takes the same
    path, see above; the book is read once here: ~1 minute of embedding.)"""
    from minilm_qdrant.backends import native_bf16
    from minilm_qdrant.collection.batching import MAX_BATCH_BYTES, estimated_bytes

    if native_bf16():  # what is tested is the store; bf16 embeds the book ~3x faster
        embedder = Embedder(embedder.model_name, backend="torch-bf16")
    col = Collection("docs", embedder, path=str(tmp_path / "store"))
    col.kind = "edge"  # type: ignore[attr-defined]
    root = tmp_path / "shelf"
    root.mkdir()
    paragraphs = [f"Chapter {i}: lighthouse keeper documented international maritime "
                  "correspondence, meteorological observations, navigational responsibilities, "
                  "environmental considerations and administrative arrangements."
                  for i in range(19_000)]  # long words: few windows for the bytes
    paragraphs[9_500] = ("Midway through the book, a cartographer named Ilse redraws the "
                          "coastline of Vesterhavn after the great flood.")
    (root / "book.txt").write_text("\n\n".join(paragraphs))
    (root / "note.md").write_text("# Note\n\nBuy stamps.\n")
    assert col.windows is not None
    text = (root / "book.txt").read_text()
    windows = len(col.windows.cut([text])[0])
    assert estimated_bytes(Document(text), 384, True, windows) > MAX_BATCH_BYTES
    done = sync(col, root)
    assert done.added == 2 and done.upsert is not None and done.upsert.windowed == 1
    hits = col.search("a cartographer redraws the coastline of Vesterhavn after the flood", 3)
    assert hits[0].id == "book.txt" and hits[0].passage is not None
    assert "Vesterhavn" in hits[0].text[hits[0].passage.start:hits[0].passage.end]
    record(f"a {len(text) / 1e6:.1f} MB text file ({windows:,} windows, over the 30 MiB "
           f"request bound) beside a note ({col.kind})", "exit 0: one document, every window "
           "stored; a phrase from its middle finds it first, with that passage", 2, col.count())
    col.close()


def test_a_document_over_a_servers_request_bound_names_options_that_exist(
        col: Collection) -> None:
    col.max_batch_bytes = 200_000  # as a server's bound
    big = Document("The harbour master's log. " * 8_000, id="log")
    with pytest.raises(IngestError) as raised:
        col.upsert([Document("Before it.", id="a"), big])
    assert "--max-request-bytes" in str(raised.value) and "max_batch_bytes=" in str(raised.value)
    skipped: list[str] = []
    col.upsert([big, Document("After it.", id="b")], on_refused=lambda d, why: skipped.append(
        f"{d.id}: {why}"))
    assert len(skipped) == 1 and skipped[0].startswith("log: ")
    assert sorted(d.id for d in col.find()) == ["a", "b"]


def test_metadata_a_user_set_survives_the_file_being_read_again(col: Collection, tmp_path: Path
                                                                ) -> None:
    root = tmp_path / "vault"
    root.mkdir()
    (root / "keys.md").write_text("# Keys\n\nThe spare key is under the mat.\n")
    sync(col, root)
    assert col.set_metadata(["keys.md"], {"owner": "alice", "title": "mine"}) == 1
    (root / "keys.md").write_text("# Keys, moved\n\nThe spare key is with the neighbour.\n")
    os.utime(root / "keys.md", (1_700_000_000, 1_700_000_000))
    done = sync(col, root)
    assert done.updated == 1
    [doc] = col.get(["keys.md"])
    assert doc.metadata["owner"] == "alice"  # the user's key kept
    assert doc.metadata["title"] == "Keys, moved"  # the file's own fields refreshed
    assert "neighbour" in doc.text and doc.metadata["modified"].startswith("2023-11-14")
    record(f"set_metadata owner=alice on keys.md, then the file edited and synced ({col.kind})",
           "owner kept; the file's title, modified and bytes refreshed", "alice",
           doc.metadata["owner"])


def test_integer_and_string_ids_that_are_one_point_are_refused(col: Collection) -> None:
    col.upsert([Document("The integer one.", id=1)])
    with pytest.raises(IngestError, match=r"id '1' \(str\) and id 1 \(int\)"):
        col.upsert([Document("The string one.", id="1")])
    with pytest.raises(IngestError, match=r"id 2 \(int\) and id '2' \(str\)"):
        col.upsert([Document("a", id="2"), Document("b", id=2)])
    assert [d.text for d in col.get([1])] == ["The integer one."]
    record(f"integer id 1 stored, then string id '1' ({col.kind})", "refused, naming both "
           "ids and their types; the stored one kept", "The integer one.", col.get([1])[0].text)


def test_empty_files_say_why_and_utf16_is_read(tmp_path: Path) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    (root / "blank.txt").write_text("   \n\t\n")
    (root / "empty.md").write_bytes(b"")
    (root / "tags.html").write_text("<html><head><script>x()</script></head><body></body></html>")
    (root / "windows.txt").write_bytes("Notes saved by Notepad as Unicode.".encode("utf-16"))
    stats = FolderStats()
    docs = list(read_path(root, skip_invalid=True, stats=stats))
    assert [d.text for d in docs] == ["Notes saved by Notepad as Unicode."]
    why = " | ".join(sorted(stats.skipped))
    assert "blank.txt: no text (6 bytes of whitespace only)" in why
    assert "empty.md: the file is empty (0 bytes)" in why
    assert "tags.html: no text (HTML with no visible text" in why
    with pytest.raises(InputError, match="UTF-16 text without a byte order mark"):
        extract(Path("w.txt"), "no BOM".encode("utf-16-le"))


def test_pypdf_repair_notes_do_not_reach_stderr(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    data = bytearray(pdf(tmp_path / "g.pdf", ["A page about gardens."]).read_bytes())
    at = data.rindex(b"startxref")
    data[at:] = b"startxref\n999999\n%%EOF\n"  # a wrong xref offset: pypdf repairs it, logging
    with caplog.at_level(logging.WARNING):
        found = extract(Path("g.pdf"), bytes(data))
    assert "gardens" in found.text
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]


def test_langchain_checks_the_model_with_a_tenant_too(embedder: Embedder, tmp_path: Path) -> None:
    pytest.importorskip("langchain_minilm")
    from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore

    from minilm_qdrant import CollectionMismatch

    with Collection("lc", embedder, path=str(tmp_path / "s"), tenant="acme") as col:
        other = MiniLMEmbeddings.from_embedder(Embedder("all-MiniLM-L6-v2", pooling="cls"))
        with pytest.raises(CollectionMismatch, match="pooling 'cls' against 'mean'"):
            MiniLMVectorStore(other, collection=col, tenant="beta")
        store = MiniLMVectorStore(collection=col, tenant="beta")
        assert store.delete(["never-stored"]) is False
        store.add_texts(["A tenant's text."], ids=["t1"])
        assert store.delete(["t1"]) is True


def test_the_mark_round_trips_through_a_payload() -> None:
    """The mark is a plain string at the top of the payload (filterable on every engine)."""
    doc = Document("x", origin="folder:notes")
    assert json.loads(json.dumps(doc.payload()))[ORIGIN_KEY] == "folder:notes"
    assert Document.from_payload(doc.payload()).origin == "folder:notes"
