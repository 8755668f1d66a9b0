"""Folders of files: formats, the walk, bad files and `sync`, on real files (PDFs written here
by fpdf2, a real symlink loop, a FIFO, a file the kernel will not read) and real engines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import engine_path
from faults import record
from fpdf import FPDF

from minilm_qdrant import Collection, CollectionMismatch, Document, Embedder, InputError
from minilm_qdrant.errors import IngestError, PermanentError
from minilm_qdrant.inputs import FolderStats, read_path, sync
from minilm_qdrant.inputs.formats import extract

GARDEN = ["Water tomatoes every morning in the summer heat, at the roots, never the leaves.",
          "Prune roses in early spring, before the buds open, just above an outward bud.",
          "Compost kitchen scraps with dry leaves; turn the heap every two weeks."]


def pdf(path: Path, pages: list[str], title: str | None = None, encrypt: bool = False) -> Path:
    doc = FPDF()
    if title:
        doc.set_title(title)
    for text in pages:
        doc.add_page()
        if text:
            doc.set_font("helvetica", size=11)
            doc.multi_cell(0, 6, text)
        else:
            doc.rect(10, 10, 50, 50)  # a page with no text (a scan, to a text extractor)
    if encrypt:
        doc.set_encryption(owner_password="owner", user_password="secret")
    doc.output(str(path))
    return path


def folder(root: Path) -> Path:
    """A small folder of notes in every format, with things a walk must leave out."""
    (root / "guide").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "guide" / "setup.md").write_text(
        "---\ntitle: Setting up\n---\n# Install\n\nRun the server in docker, port 6333.\n")
    (root / "guide" / "eval.rst").write_text(
        "Evaluation\n==========\n\nMeasure NDCG@10 and recall on judged queries.\n")
    (root / "notes.txt").write_text("Shopping: flour, eggs, butter.\nCall the plumber.\n")
    (root / "cook.html").write_text(
        "<html><head><title>Pasta</title><style>p {}</style></head><body><h1>Boil</h1><p>Boil "
        "pasta for ten minutes.</p><script>track()</script></body></html>")
    pdf(root / "garden.pdf", GARDEN, title="Gardening guide")
    (root / ".git" / "HEAD.txt").write_text("ref: main")
    (root / "data.jsonl").write_text('{"text": "x"}\n')
    (root / "photo.png").write_bytes(b"\x89PNG\r\n")
    (root / "app.log").write_text("started\n")
    return root


def test_formats_give_text_and_title(tmp_path: Path) -> None:
    md = extract(Path("a.md"), b"Intro line\n\nSub title\n---------\n\n# Later\n")
    assert md.title == "Sub title" and md.text.startswith("Intro line")
    assert extract(Path("a.md"), b"---\ntitle: 'Front'\n---\n# H\n").title == "Front"
    assert extract(Path("a.md"), "# Caf\u00e9 menu ##\n".encode()).title == "Caf\u00e9 menu"
    assert extract(Path("a.txt"), b"# not a heading in text\n").title is None
    assert extract(Path("a.rst"), b"Title\n=====\n\nBody.\n").title == "Title"
    page = extract(Path("a.html"), b"<title> T </title><p>Seen</p><script>hidden()</script>")
    assert page.title == "T" and "Seen" in page.text and "hidden" not in page.text
    got = extract(Path("g.pdf"), pdf(tmp_path / "g.pdf", GARDEN, "Guide").read_bytes())
    assert got.title == "Guide" and got.pages is not None and len(got.pages) == 3
    for number, start in enumerate(got.pages):  # each page's text begins where it says
        assert got.text[start:].startswith(GARDEN[number][:20])


def test_the_walk_reads_documents_and_leaves_out_the_rest(tmp_path: Path) -> None:
    root = folder(tmp_path / "notes")
    stats = FolderStats()
    docs = {d.id: d for d in read_path(root, stats=stats)}
    assert sorted(docs) == ["cook.html", "garden.pdf", "guide/eval.rst", "guide/setup.md",
                            "notes.txt"]
    assert sorted(stats.passed_over) == ["app.log", "data.jsonl", "photo.png"]  # not read
    setup = docs["guide/setup.md"]
    assert setup.metadata["source"] == "guide/setup.md" and setup.metadata["folder"] == "notes"
    assert setup.metadata["title"] == "Setting up"
    assert setup.metadata["bytes"] == (root / "guide" / "setup.md").stat().st_size
    assert docs["notes.txt"].text.count("\n") == 2  # a text file is one document
    assert docs["cook.html"].metadata["title"] == "Pasta"
    assert len(docs["garden.pdf"].metadata["pages"]) == 3
    only = [d.id for d in read_path(root, include=["*.md", "*.rst"], exclude=["eval*"])]
    assert only == ["guide/setup.md"]
    assert [d.id for d in read_path(root, exclude=["guide"])] == [
        "cook.html", "garden.pdf", "notes.txt"]
    assert [d.text for d in read_path(root, include=["*.log"])] == ["started\n"]  # as text
    with pytest.raises(InputError, match=r"photo.png: not UTF-8"):  # chosen, yet not text
        list(read_path(root, include=["*.png"]))
    alone = list(read_path(root / "guide" / "setup.md"))
    assert [(d.id, d.metadata["folder"]) for d in alone] == [("setup.md", "guide")]


@pytest.mark.parametrize("case", ["loop", "broken link", "fifo", "unreadable", "binary",
                                  "latin-1", "encrypted pdf", "scanned pdf", "over the bound"])
def test_a_bad_file_is_named_in_one_line_and_skipped_when_asked(tmp_path: Path, case: str
                                                                ) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.md").write_text("# Fine\n\nA good note.\n")
    bad = root / "bad.txt"
    if case == "loop":
        bad = root / "sub"
        bad.mkdir()
        (bad / "up").symlink_to(root, target_is_directory=True)
        bad = bad / "up"
    elif case == "broken link":
        bad.symlink_to(root / "missing.txt")
    elif case == "fifo":
        os.mkfifo(bad)
    elif case == "unreadable":
        bad.symlink_to("/proc/self/mem")  # a regular file to stat; read() fails (EIO)
    elif case == "binary":
        bad.write_bytes(b"text\x00\x01\x02")
    elif case == "latin-1":
        bad.write_bytes("caf\u00e9".encode("latin-1"))
    elif case in ("encrypted pdf", "scanned pdf"):
        bad = pdf(root / "bad.pdf", ["secret"] if case == "encrypted pdf" else [""],
                  encrypt=case == "encrypted pdf")
    else:
        bad.write_text("x" * 2000)
    why = {"loop": "symlink loop", "broken link": "broken symlink", "fifo": "not a regular file",
           "unreadable": "cannot be read", "binary": "binary file", "latin-1": "not UTF-8",
           "encrypted pdf": "encrypted PDF", "scanned pdf": "without a text layer",
           "over the bound": "over the bound of 1,000"}[case]
    bound = 1000 if case == "over the bound" else 1 << 20
    with pytest.raises(InputError) as raised:
        list(read_path(root, max_bytes=bound))
    message = str(raised.value)
    assert str(bad) in message and why in message and "\n" not in message
    stats = FolderStats()
    docs = [d.id for d in read_path(root, skip_invalid=True, stats=stats, max_bytes=bound)]
    assert docs == ["good.md"] and len(stats.skipped) == 1 and why in stats.skipped[0]
    record(f"folder with a bad file: {case}", "one line naming it; --skip-invalid skips and "
           "counts it, the good file read", 1, len(docs))


@pytest.fixture(params=["edge", "local-path"])
def col(request: pytest.FixtureRequest, embedder: Embedder, tmp_path: Path):
    with Collection("docs", embedder, path=engine_path(request.param, tmp_path)) as c:
        yield c


def test_sync_keeps_the_collection_equal_to_the_folder(col: Collection, tmp_path: Path) -> None:
    root = folder(tmp_path / "notes")
    other = tmp_path / "elsewhere" / "notes2"
    other.mkdir(parents=True)
    (other / "keep.md").write_text("# Another folder\n\nIts notes stay.\n")
    sync(col, other)
    col.upsert([Document("From the API.", id="api-1")])
    first = sync(col, root)
    assert (first.added, first.updated, first.unchanged, first.deleted) == (5, 0, 0, 0)
    again = sync(col, root)  # nothing read, nothing embedded
    assert (again.added, again.updated, again.unchanged) == (0, 0, 5)
    assert again.upsert is not None and again.upsert.tokens == 0
    (root / "notes.txt").write_text("Shopping: flour, eggs, butter, milk.\n")
    (root / "guide" / "eval.rst").unlink()
    (root / "new.md").write_text("# New\n\nA new note about tomatoes.\n")
    (root / "guide" / "setup.md").touch()  # same text, new time: metadata only
    changed = sync(col, root)
    assert (changed.added, changed.updated, changed.unchanged, changed.deleted) == (1, 2, 2, 1)
    assert changed.upsert is not None and changed.upsert.windows == 2  # two texts embedded
    held = {d.id: d.text for d in col.find()}
    expected = {d.id: d.text for d in read_path(root)}
    assert {k: v for k, v in held.items() if k in expected} == expected
    assert set(held) - set(expected) == {"keep.md", "api-1"}  # others untouched
    hits = col.search("when do I prune roses", 1)
    assert hits[0].id == "garden.pdf" and hits[0].pages is not None
    record("sync after an edit, a touch, a new file and a deletion", "added 1, updated 2, "
           "unchanged 2, deleted 1; other folders and API documents untouched",
           len(expected) + 2, len(held))


def test_an_id_stored_from_elsewhere_is_refused_before_any_write(col: Collection,
                                                                  tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.md").write_text("# A\n\nNote a.\n")
    (root / "readme.md").write_text("# Readme\n\nThis folder's readme.\n")
    col.upsert([Document("The API's own readme.", id="readme.md")])
    with pytest.raises(InputError, match=r"id 'readme.md' is already stored .*not from a folder"):
        sync(col, root)
    assert col.count() == 1 and col.get(["readme.md"])[0].text == "The API's own readme."
    done = sync(col, root, skip_invalid=True)
    assert done.added == 1 and len(done.stats.skipped) == 1
    assert col.get(["readme.md"])[0].text == "The API's own readme."


def test_a_sync_stopped_half_way_deletes_nothing_and_a_rerun_finishes(
        embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    for i in range(6):
        (root / f"n{i}.md").write_text(f"# Note {i}\n\nThe text of note {i}.\n")
    with Collection("docs", embedder, path=str(tmp_path / "store"), batch_size=2) as col:
        sync(col, root)
        (root / "n0.md").unlink()
        for i in range(1, 6):
            (root / f"n{i}.md").write_text(f"# Note {i}\n\nNote {i}, edited.\n")
        real, calls = col.engine.upsert, []

        def failing(*args, **kwargs):  # the second batch fails for good
            calls.append(1)
            if len(calls) == 2:
                raise PermanentError("injected: the store refused the batch")
            return real(*args, **kwargs)

        monkeypatch.setattr(col.engine, "upsert", failing)
        with pytest.raises(IngestError):
            sync(col, root)
        assert col.get(["n0.md"]), "a stopped sync deleted a document"
        monkeypatch.setattr(col.engine, "upsert", real)
        done = sync(col, root)
        assert done.deleted == 1 and sorted(d.id for d in col.find()) == [
            f"n{i}.md" for i in range(1, 6)]
        assert all("edited" in d.text for d in col.find())
        left = col.count()
    record("sync stopped by a failed batch, then rerun", "nothing deleted while stopped; the "
           "rerun writes the rest and deletes the gone file's document", 5, left)


def test_an_empty_collection_takes_the_model_first_given(embedder: Embedder, tmp_path: Path
                                                          ) -> None:
    store = str(tmp_path / "store")
    cls = Embedder("all-MiniLM-L6-v2", pooling="cls", backend="torch")
    Collection("c", cls, path=store).close()  # made for one model, nothing stored
    with Collection("c", embedder, path=store) as col:  # another: it takes this one
        assert col.embedder.fingerprint == embedder.fingerprint
        col.upsert([Document("stored now", id=1)])
    with pytest.raises(CollectionMismatch), Collection("c", cls, path=store):
        pass  # not empty: models are never mixed
    with Collection("c", path=store) as col:
        assert col.count() == 1 and col.embedder.fingerprint == embedder.fingerprint


def test_a_pdf_hit_names_the_page_its_passage_is_on(embedder: Embedder, tmp_path: Path) -> None:
    topics = ["Tomato plants need deep watering at the roots every morning in hot weather. ",
              "Invoices are due thirty days after delivery; late payment adds two percent. ",
              "The telescope's mirror must cool to the night air before observing stars. "]
    root = tmp_path / "docs"
    root.mkdir()
    pdf(root / "mixed.pdf", [t * 30 for t in topics])  # ~1,400 word pieces: windows
    with Collection("docs", embedder, path=str(tmp_path / "store")) as col:
        report = sync(col, root)
        assert report.upsert is not None and report.upsert.windowed == 1
        for page, query in ((1, "watering tomatoes"), (2, "late invoice payment"),
                            (3, "cooling a telescope mirror")):
            hit = col.search(query, 1)[0]
            assert hit.passage is not None and hit.pages is not None, query
            assert page in hit.pages and len(hit.pages) <= 2, (query, hit.pages)  # not all 3
            starts = hit.metadata["pages"]
            assert [p for p in (1, 2, 3) if starts[p - 1] < hit.passage.end and (
                p == 3 or starts[p] > hit.passage.start)] == hit.pages
            assert hit.as_dict()["passage"]["pages"] == hit.pages


def test_a_missing_files_extra_is_named_before_anything_is_read(
        col: Collection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.md").write_text("# A\n\nA note read before the PDF.\n")
    pdf(root / "b.pdf", ["A page of text."])
    monkeypatch.setitem(__import__("sys").modules, "pypdf", None)  # not installed
    from minilm_qdrant.errors import MissingDependency

    with pytest.raises(MissingDependency, match=r"pypdf: pip install \"minilm-qdrant\[files\]\""):
        sync(col, root)
    assert col.count() == 0  # refused before the Markdown note was embedded
    record("folder with a PDF, pypdf not installed", "refused before any write, one line "
           "naming the extra", 0, col.count())
