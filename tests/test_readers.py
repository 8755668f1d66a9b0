"""Input files -> documents, with bad lines named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import record

from minilm_qdrant import InputError
from minilm_qdrant.inputs import ReadStats, read_documents


def test_jsonl_title_id_and_metadata(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"_id": "7", "title": "Title", "text": "Body.", "year": 2020}\n\n'
                 '{"id": 8, "text": "Other"}\n', encoding="utf-8")
    docs = list(read_documents(f))
    assert [(d.id, d.text) for d in docs] == [("7", "Title Body."), (8, "Other")]
    assert docs[0].metadata == {"title": "Title", "year": 2020}


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "ok"}\n{"text": broken}\n{"text": "ok too"}\n')
    with pytest.raises(InputError, match=r"d\.jsonl:2: not valid JSON"):
        list(read_documents(f))
    stats = ReadStats()
    assert len(list(read_documents(f, skip_invalid=True, stats=stats))) == 2
    assert stats.skipped == 1


@pytest.mark.parametrize("line, problem", [
    ('{"title": "x"}', "missing 'text'"), ('{"text": 5}', "not a string"),
    ('{"text": "  "}', "empty"), ("[1, 2]", "JSON object"), ('{"text": "a", "id": [1]}', "id"),
])
def test_bad_fields(tmp_path: Path, line: str, problem: str) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(InputError, match=problem):
        list(read_documents(f))


def test_invalid_utf8_is_named(tmp_path: Path) -> None:
    f = tmp_path / "d.txt"
    f.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(InputError, match=r"d\.txt:2: invalid UTF-8"):
        list(read_documents(f))


def test_csv_and_text(tmp_path: Path) -> None:
    c = tmp_path / "d.csv"
    c.write_text("id,text,lang\na,Hello there,en\nb,Bonjour,fr\n", encoding="utf-8")
    assert [(d.id, d.text, d.metadata) for d in read_documents(c)] == [
        ("a", "Hello there", {"lang": "en"}), ("b", "Bonjour", {"lang": "fr"})]
    t = tmp_path / "d.txt"
    t.write_text("one\n\ntwo\n")
    assert [d.text for d in read_documents(t)] == ["one", "two"]


def test_csv_without_text_column(tmp_path: Path) -> None:
    c = tmp_path / "d.csv"
    c.write_text("body\nx\n")
    with pytest.raises(InputError, match="'text' column"):
        list(read_documents(c))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_documents(tmp_path / "nope.jsonl"))


def test_csv_is_parsed_strictly_and_names_the_line(tmp_path: Path) -> None:
    c = tmp_path / "d.csv"
    c.write_text('id,text\na,fine\nb,"never closed\nc,more\nd,again\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"d\.csv:3: bad CSV row: a quoted field opens here "
                       r"and is never closed"):
        list(read_documents(c))
    stats = ReadStats()
    assert [d.id for d in read_documents(c, skip_invalid=True, stats=stats)] == ["a"]
    assert stats.skipped == 1  # the rest of the file is inside the quote: no row is made of it
    c.write_text('id,text\na,fine\nb,"stray" quote\nc,ok\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"d\.csv:3: bad CSV row: ',' expected after '\"'"):
        list(read_documents(c))
    kept = [d.id for d in read_documents(c, skip_invalid=True)]
    assert kept == ["a", "c"]
    record("CSV: an unclosed quote (line 3), a stray quote (line 3)", "InputError naming "
           "d.csv:3 for each; --skip-invalid skips the row", 2, len(kept))
