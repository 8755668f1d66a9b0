"""Files and folders -> `Document`s that know where they came from.

A folder is walked recursively (hidden files and folders skipped; ``include`` / ``exclude``
patterns); each file in a document format (`formats.FILE_SUFFIXES`) is one document whose id
is its path relative to the folder given (stable across machines and checkouts; a name that is
not UTF-8 keeps its bytes as ``\\xNN`` escapes), with metadata ``source`` (that path),
``folder`` (the folder's name), ``title``, ``modified``, ``bytes`` and, for a PDF, ``pages``
(where each page begins in the text), and the reserved mark of the folder sync that owns it
(`documents.ORIGIN_KEY`, set here alone). A file given alone is one document too, its id
relative to its own folder; JSONL and CSV files given alone hold many (`records`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from minilm_qdrant.documents import FOLDER_KEY, SOURCE_KEY, Document, origin_of
from minilm_qdrant.errors import InputError
from minilm_qdrant.inputs.formats import FILE_SUFFIXES, HTML_SUFFIXES, extract
from minilm_qdrant.inputs.records import read_documents

MAX_FILE_BYTES = 64 << 20
"""Files above this size are refused (``max_bytes``): a bound, not a format limit."""
MANY_DOCUMENT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv")
"""Files given alone that hold many documents (`readers.read_documents`)."""


@dataclass(frozen=True)
class SourceFile:
    """A file to read as one document: where it is, its id, its folder's name, its size and
    when it was last modified (ISO 8601, UTC)."""

    path: Path
    id: str
    folder: str
    size: int
    modified: str

    @property
    def origin(self) -> str:
        """The reserved mark of the folder sync that owns its document."""
        return origin_of(self.folder)


def printable(path: str | os.PathLike[str]) -> str:
    """``path`` as one printable line: bytes that are not UTF-8 (an old disk's Latin-1 name)
    and control characters as ``\\xNN`` escapes; stable, so it serves as an id too."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class FolderStats:
    """What a walk found besides documents."""

    files: int = 0
    """Document files found."""
    skipped: list[str] = field(default_factory=list)
    """Bad files and folders skipped (``skip_invalid``), each with why."""
    passed_over: list[str] = field(default_factory=list)
    """Files not in a document format (JSONL/CSV inside a folder included: index them by
    name), left out."""
    escaped: list[str] = field(default_factory=list)
    """Files whose name is not UTF-8, read under an id that keeps its bytes escaped."""


def files(path: str | Path, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
          skip_invalid: bool = False, stats: FolderStats | None = None) -> Iterator[SourceFile]:
    """The document files under ``path`` (a folder, walked in name order) or ``path`` itself
    (a file). Patterns match the path relative to the folder (``fnmatch``; one without ``/``
    also matches the name alone); ``exclude`` also prunes folders. Without ``include`` a
    folder's files in a document format are read; with it, the files it names (as plain text
    where the format is not known). Symlink loops, broken links and special files are refused
    by name (with ``skip_invalid``: skipped and counted in ``stats``)."""
    root = Path(path)
    stats = stats if stats is not None else FolderStats()
    if not root.exists():
        raise InputError(f"{printable(root)}: no such file or folder")
    if not root.is_dir():
        found = _source(root, printable(root.name), root.parent.resolve().name)
        stats.files += 1
        yield found
        return
    folder = root.resolve().name

    def matches(rel: str, patterns: Sequence[str]) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return any(fnmatch(rel, p) or ("/" not in p and fnmatch(name, p)) for p in patterns)

    def refuse(rel: str, why: str) -> None:
        if not skip_invalid:
            raise InputError(f"{printable(root / rel)}: {why}")
        stats.skipped.append(f"{printable(root / rel)}: {why}")

    def walk(directory: Path, rel: str, ancestors: frozenset[tuple[int, int]]
             ) -> Iterator[SourceFile]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            refuse(rel or ".", f"cannot read the folder ({exc.strerror or exc})")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden: .git, .venv, editors' files
            child = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat()  # follows a symlink
            except OSError:
                refuse(child, "a broken symlink (its target does not exist)" if
                       entry.is_symlink() else "cannot be read (stat failed)")
                continue
            if stat.S_ISDIR(st.st_mode):
                if exclude and matches(child, exclude):
                    continue
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    refuse(child, "a symlink loop (it leads back to a folder above it)")
                    continue
                yield from walk(Path(entry.path), child, ancestors | {key})
                continue
            if exclude and matches(child, exclude):
                continue
            chosen = matches(child, include) if include else \
                entry.name.lower().endswith(FILE_SUFFIXES)
            if not chosen:
                if not include:
                    stats.passed_over.append(printable(child))
                continue
            if not stat.S_ISREG(st.st_mode):
                refuse(child, "not a regular file (a FIFO, socket or device); leave it out "
                       "with --exclude")
                continue
            stats.files += 1
            doc_id = printable(child)
            if doc_id != child:
                stats.escaped.append(doc_id)
            yield SourceFile(Path(entry.path), doc_id, folder, st.st_size, _iso(st.st_mtime))

    top = root.stat()
    yield from walk(root, "", frozenset({(top.st_dev, top.st_ino)}))


def read_file(source: SourceFile, max_bytes: int = MAX_FILE_BYTES) -> Document:
    """The document of one file, or `InputError` naming the file and why it gives no text."""
    shown = printable(source.path)
    if source.size > max_bytes:
        raise InputError(f"{shown}: {source.size:,} bytes, over the bound of "
                         f"{max_bytes:,} (raise it with --max-bytes)")
    try:
        data = source.path.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise InputError(f"{shown}: the file is empty (0 bytes)")
    try:
        found = extract(source.path, data)
    except InputError as exc:
        raise InputError(f"{shown}: {exc}") from None
    if not found.text.strip():
        raise InputError(f"{shown}: no text ({_why_no_text(source.path, data)})")
    metadata: dict[str, object] = {SOURCE_KEY: source.id, FOLDER_KEY: source.folder}
    if found.title:
        metadata["title"] = found.title
    metadata.update(modified=source.modified, bytes=source.size)
    if found.pages is not None:
        metadata["pages"] = found.pages
    return Document(found.text, metadata, source.id, origin=source.origin)


def _why_no_text(path: Path, data: bytes) -> str:
    if not data.strip():
        return f"{len(data):,} bytes of whitespace only"
    if path.suffix.lower() in HTML_SUFFIXES:
        return "HTML with no visible text: only markup, scripts or styles"
    return "nothing but whitespace once read"


def read_path(path: str | Path, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
              skip_invalid: bool = False, stats: FolderStats | None = None,
              max_bytes: int = MAX_FILE_BYTES) -> Iterator[Document]:
    """The documents of a file or a folder (see the module): a JSONL or CSV file given alone
    yields its documents, any other file or a folder's files one document each. A bad file
    raises `InputError` naming it; with ``skip_invalid`` it is skipped and listed in
    ``stats.skipped``."""
    stats = stats if stats is not None else FolderStats()
    if Path(path).exists() and not Path(path).is_dir() and str(path).lower().endswith(
            MANY_DOCUMENT_SUFFIXES):  # a pipe streams documents like a file
        yield from read_documents(path, skip_invalid=skip_invalid)
        return
    for source in files(path, include=include, exclude=exclude, skip_invalid=skip_invalid,
                        stats=stats):
        try:
            yield read_file(source, max_bytes)
        except InputError as exc:
            if not skip_invalid:
                raise
            stats.skipped.append(str(exc))


def _source(path: Path, rel: str, folder: str) -> SourceFile:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{printable(path)}: not a regular file (a FIFO, socket or device)")
    return SourceFile(path, str(PurePosixPath(rel)), folder, st.st_size, _iso(st.st_mtime))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()
