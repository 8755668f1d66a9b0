"""Input files -> `Document`s: JSONL, CSV (a ``text`` column) or plain text (one per line).

Documents stream (nothing holds the whole file). A bad line is named by file and line number;
with ``skip_invalid`` it is skipped and counted instead. A leaf: files and folders of documents
(one a file: text, Markdown, HTML, PDF) are `files.read_path`'s.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minilm_qdrant.documents import Document, metadata_problem
from minilm_qdrant.errors import InputError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
ID_FIELDS = ("id", "_id")


@dataclass
class ReadStats:
    lines: int = 0
    documents: int = 0
    skipped: int = 0
    empty: list[str | int] = field(default_factory=list)
    """Ids of documents with no text, passed over (``skip_empty``)."""


class EmptyText(InputError):
    """A document with no text (nothing to embed)."""

    def __init__(self, message: str, doc_id: str | int | None) -> None:
        super().__init__(message)
        self.doc_id = doc_id


def read_documents(
    path: str | Path, *, skip_invalid: bool = False, stats: ReadStats | None = None,
    skip_empty: bool = False,
) -> Iterator[Document]:
    """Documents of a JSONL, CSV or text file (or a pipe: ``<(zcat big.jsonl.gz)``), in order.
    With ``skip_empty``, a document without text is passed over and its id recorded in
    ``stats.empty`` (a corpus that publishes empty documents, as IRLeD 2017 does)."""
    path = Path(path)
    if not path.exists() or path.is_dir():
        raise InputError(f"{path}: no such file")
    stats = stats if stats is not None else ReadStats()
    suffix = path.suffix.lower()
    rows = _csv_rows(path) if suffix == ".csv" else _lines(path)
    parse = (
        _from_json if suffix in JSONL_SUFFIXES else _from_csv if suffix == ".csv" else _from_text
    )
    for lineno, raw in rows:
        stats.lines += 1
        try:
            doc = parse(raw)
        except EmptyText as exc:
            if skip_empty:
                stats.empty.append(exc.doc_id if exc.doc_id is not None else f"line {lineno}")
                continue
            if not skip_invalid:
                raise InputError(f"{path}:{lineno}: {exc}") from None
            stats.skipped += 1
            continue
        except InputError as exc:
            if not skip_invalid:
                raise InputError(f"{path}:{lineno}: {exc}") from None
            stats.skipped += 1
            continue
        if doc is not None:
            stats.documents += 1
            yield doc


def parse_line(raw: bytes, suffix: str) -> Document | None:
    """One line of a JSONL file (``suffix`` .jsonl, .ndjson or .json) or a text file of one
    document a line, as `read_documents` reads it: None for a blank line, `InputError` (or
    `EmptyText`) for a bad one. For readers that split files themselves (Ray's)."""
    return (_from_json if suffix.lower() in JSONL_SUFFIXES else _from_text)(raw)


def from_record(record: dict[str, Any]) -> Document:
    """A document from one record's fields, as a JSONL line's object is read: ``text`` (and
    ``title`` before it), ``id`` or ``_id``, every other field metadata."""
    return _from_fields(record)


def count_lines(path: str | Path) -> int:
    """Lines in a file (for a progress bar's total)."""
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as f:
        yield from enumerate(f, start=1)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start}") from None


def _from_text(raw: bytes) -> Document | None:
    text = _decode(raw)
    return Document(text=text) if text.strip() else None


def _from_json(raw: bytes) -> Document | None:
    line = _decode(raw)
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise InputError("JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}")
    return _from_fields(obj)


def _from_fields(obj: dict[str, Any]) -> Document:
    text = obj.get("text")
    if text is None:
        raise InputError("missing 'text' field")
    if not isinstance(text, str):
        raise InputError(f"'text' is {type(text).__name__}, not a string")
    title = obj.get("title")
    if title is not None and not isinstance(title, str):
        raise InputError(f"'title' is {type(title).__name__}, not a string")
    full = f"{title.strip()} {text}".strip() if title and title.strip() else text
    if not full.strip():
        doc_id = next((obj[k] for k in ID_FIELDS if isinstance(obj.get(k), (str, int))), None)
        raise EmptyText("'text' is empty", doc_id)
    try:
        full.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"text has an unpaired surrogate at character {exc.start}") from None
    doc_id = next((obj[k] for k in ID_FIELDS if obj.get(k) is not None), None)
    if doc_id is not None and (not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool)):
        raise InputError(f"id must be a string or integer, got {type(doc_id).__name__}")
    metadata = {k: v for k, v in obj.items() if k not in ("text", *ID_FIELDS)}
    bad = metadata_problem(metadata)
    if bad:
        raise InputError(bad)
    return Document(text=full, metadata=metadata, id=doc_id)


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as f:
        try:
            text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
            reader = csv.DictReader(text, strict=True)  # a stray quote is an error, not text
            if reader.fieldnames is None or "text" not in reader.fieldnames:
                raise InputError(f"{path}: CSV needs a 'text' column, has {reader.fieldnames}")
            while True:
                begins = reader.line_num + 1  # the row's first line (a quoted field may span)
                try:
                    row: Any = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:  # a stray or unclosed quote, a field over the limit
                    yield begins, exc
                    continue
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: invalid UTF-8 at byte {exc.start}") from None


def _from_csv(row: dict[str | None, Any] | csv.Error) -> Document:
    if isinstance(row, csv.Error):
        if "unexpected end of data" in str(row):
            raise InputError("bad CSV row: a quoted field opens here and is never closed (the "
                             "file ends inside it)")
        raise InputError(f"bad CSV row: {row}")
    if None in row:
        raise InputError("more fields than the header has")
    fields = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
    fields.setdefault("text", "")
    return _from_fields(fields)
