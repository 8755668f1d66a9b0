"""Bad input through the CLI: one clear line naming file and line, nothing stored is lost.

The CLI runs in-process through its real entry point (`main`), with the session's weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import index_in_process
from faults import record

from minilm_qdrant import Collection, Embedder, cli


@pytest.fixture
def run(embedder: Embedder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path):
    store = str(tmp_path / "store")
    invoke = index_in_process(embedder, monkeypatch, capsys, store)

    def count() -> int:
        with Collection("documents", embedder, path=store) as col:
            return col.count()

    invoke.count = count  # type: ignore[attr-defined]
    return invoke


def jsonl(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_lines_stop_or_are_skipped_and_nothing_stored_is_lost(run, tmp_path: Path) -> None:
    good = jsonl(tmp_path / "good.jsonl",
                 *[json.dumps({"id": f"g{i}", "text": f"Good document {i}."}).encode()
                   for i in range(3)])
    code, out, _ = run(str(good))
    assert code == 0 and "holds 3 points" in out
    bad = jsonl(
        tmp_path / "bad.jsonl",
        b'{"id": "d4", "text": "Fourth document."}',
        b"not json at all",
        b'{"id": "x", "title": "no text field"}',
        b'{"id": "y", "text": "bad \xff byte"}',
        b'{"id": "z", "text": "   "}',
        b'{"id": "w", "text": 12}',
        b'{"id": "d4", "text": "Fourth document, corrected."}',
        b'{"id": "d5", "text": "Fifth document."}',
    )
    code, out, err = run(str(bad))
    assert code == 1 and "bad.jsonl:2: not valid JSON" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert run.count() == 4  # the 3 before + d4 (the line before the bad one)
    record("JSONL line 2 not JSON (CLI, default)", "exit 1, 'bad.jsonl:2: not valid JSON', "
           "lines before it written", 4, run.count())

    assert "Rerun the same ingest" not in err  # a rerun cannot fix a bad line
    assert "Fix or leave out the document at fault" in err

    code, out, err = run(str(bad), "--skip-invalid")
    assert code == 0, err
    assert "skipped invalid lines: 5" in out and "duplicate ids (last kept): 1" in out
    assert "holds 5 points" in out  # g0-g2, d4 (last kept), d5
    record("not JSON, no text, invalid UTF-8, whitespace text, text=12; duplicate id "
           "(--skip-invalid)", "exit 0; 5 skipped and 1 duplicate counted, last d4 kept",
           5, run.count())
    with Collection("documents", path=str(Path(tmp_path / "store"))) as col:
        assert col.search("Fourth document, corrected.", 1)[0].text.endswith("corrected.")


@pytest.mark.parametrize("skip", [False, True])
def test_twenty_megabyte_document_is_refused_before_sending(
        run, tmp_path: Path, skip: bool) -> None:
    """Over a request bound (a server's 30 MiB, given here to the embedded store, which has
    none of its own): refused by name before sending; with --skip-invalid skipped, counted."""
    good = jsonl(tmp_path / "good.jsonl", b'{"id": "a", "text": "A small document."}')
    assert run(str(good))[0] == 0
    big = jsonl(tmp_path / "big.jsonl", b'{"id": "b", "text": "Before the big one."}',
                json.dumps({"id": "big", "text": "word " * (4 * 1024 * 1024)}).encode(),
                b'{"id": "c", "text": "After the big one."}')
    code, out, err = run(str(big), "--max-request-bytes", str(30 * 1024 * 1024),
                         *(["--skip-invalid"] if skip else []))
    assert "Traceback" not in err
    if skip:
        assert code == 0 and "documents refused, skipped: 1" in out and "'big' needs" in out
        assert run.count() == 3  # a, b and c; the big one never sent
    else:
        assert code == 1 and "'big' needs about" in err and "request bound" in err
        assert "--max-request-bytes" in err and len(err.strip().splitlines()) == 1
        assert run.count() == 2  # a and b; nothing lost, the big one never sent
    record(f"a 20 MB document over --max-request-bytes 30 MiB (CLI"
           f"{', --skip-invalid' if skip else ''})",
           "exit 0, refused by name, skipped and counted, the rest written" if skip else
           "exit 1 naming 'big' and --max-request-bytes, refused before sending",
           3 if skip else 2, run.count())


def test_metadata_the_store_cannot_hold_is_named(embedder: Embedder, tmp_path) -> None:
    """NaN / Infinity (which Python's json accepts) and over-64-bit integers: one line naming
    the file and line (or the document) and the field; earlier documents are written."""
    from minilm_qdrant import Document, IngestError, InputError
    from minilm_qdrant.inputs import ReadStats, read_documents

    bad = tmp_path / "nan.jsonl"
    bad.write_text('{"text": "fine", "id": "a"}\n{"text": "x", "score": NaN}\n'
                   '{"text": "y", "n": {"deep": Infinity}}\n'
                   '{"text": "z", "big": 99999999999999999999}\n')
    with pytest.raises(InputError, match=r"nan.jsonl:2: metadata field 'score' is nan"):
        list(read_documents(bad))
    stats = ReadStats()
    assert [d.id for d in read_documents(bad, skip_invalid=True, stats=stats)] == ["a"]
    assert stats.skipped == 3
    with Collection("m", embedder, path=str(tmp_path / "s")) as col:
        docs = [Document("fine", id="a"), Document("bad", {"x": float("nan")}, id="b")]
        with pytest.raises(IngestError, match="document 'b': metadata field 'x' is nan"):
            col.upsert(docs)
        assert col.count() == 1
        record("NaN / Infinity / 2**66 in metadata (JSONL; API)", "one line naming file:line "
               "or document and field; skipped and counted with --skip-invalid", 1, col.count())


def test_csv_with_an_unclosed_quote_is_named_and_the_rows_before_it_are_stored(
        run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('id,text\na,First row.\nb,Second row.\nc,"never closed\nd,Fourth row.\n')
    code, _, err = run(str(bad))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "bad.csv:4: bad CSV row: a quoted field opens here and is never closed" in err
    assert run.count() == 2
    record("CSV with an unclosed quote on line 4 (CLI)", "exit 1, one line naming bad.csv:4; "
           "the rows before it written", 2, run.count())


def test_a_missing_path_is_refused_before_any_store_exists(run, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    given = tmp_path / "nope.jsonl"
    code, _, err = run(str(tmp_path / "docs"), str(given))
    assert code == 1 and f"{given}: no such file or folder" in err
    assert len(err.strip().splitlines()) == 1 and "Rerun" not in err and "Traceback" not in err
    assert not (tmp_path / "store").exists()  # nothing created: the retry is clean
    record("index of a missing path beside a folder (CLI)", "exit 1, one line naming it; no "
           "store created, no 'rerun' advice", 0, 0)


def test_files_and_folders_through_the_cli(run, tmp_path: Path, monkeypatch, capsys) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "eval.md").write_text("# Evaluating retrieval\n\nNDCG and recall on "
                                          "judged queries tell if the right documents come "
                                          "back.\n")
    (docs / "cook.txt").write_text("Boil pasta for ten minutes.\nSalt the water.\n")
    (docs / "bin.txt").write_bytes(b"\x00\x01")
    code, _, err = run(str(docs))
    assert code == 1 and "bin.txt: a binary file" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(str(docs), "--skip-invalid")
    assert code == 0 and "2 added, 0 updated, 0 unchanged" in out and "bad files skipped: 1" in out
    monkeypatch.setattr(sys, "argv", ["minilm-qdrant", "search", "how do I evaluate retrieval",
                                      "-k", "1", "--path", str(tmp_path / "store")])
    with pytest.raises(SystemExit):
        cli.main()
    shown = capsys.readouterr().out  # the source and the title of the hit
    assert shown.lstrip().startswith('1. [') and 'sub/eval.md "Evaluating retrieval"' in shown
    (docs / "sub" / "eval.md").unlink()
    code, out, _ = run(str(docs), "--skip-invalid", "--sync")
    assert code == 0 and "0 added, 0 updated, 1 unchanged, 1 deleted" in out
    notes = tmp_path / "notes.txt"
    notes.write_text("First line.\nSecond line.\n")
    code, out, _ = run(str(notes))  # a text file given alone is one document
    assert code == 0 and "1 added" in out
    code, out, _ = run(str(notes), "--lines")  # or one per line
    assert code == 0 and "Indexed 2 documents from" in out
    assert run.count() == 4

