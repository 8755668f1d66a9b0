"""Files and folders -> `Document`s that know where they came from, and `sync`, which makes a
collection hold a folder's documents as they are now.

A folder is walked recursively (hidden files and folders skipped; ``include`` / ``exclude``
patterns); each file in a document format (`formats.FILE_SUFFIXES`) is one document whose id
is its path relative to the folder given (stable across machines and checkouts; a name that is
not UTF-8 keeps its bytes as ``\\xNN`` escapes), with metadata ``source`` (that path),
``folder`` (the folder's name), ``title``, ``modified``, ``bytes`` and, for a PDF, ``pages``
(where each page begins in the text). A file given alone is one document too, its id relative
to its own folder; JSONL and CSV files given alone hold many (`readers`).

What a sync owns is recorded outside the metadata, under the reserved payload key
`documents.ORIGIN_KEY` (``folder:NAME``), which only `read_file` sets: a document written
from anywhere else (a file of records, the API, a framework), whatever its metadata says, is
never deleted or replaced by a sync. Keys a user sets on a file's document (`set_metadata`)
are kept when the file is read again; the file's own keys (`FILE_KEYS`) are refreshed.

Knows nothing of engines or the embedder: `sync` works through `Collection`'s public methods.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from qdrant_client import models

from minilm_qdrant.documents import ORIGIN_KEY, Document
from minilm_qdrant.errors import InputError
from minilm_qdrant.formats import FILE_SUFFIXES, HTML_SUFFIXES, extract, require

if TYPE_CHECKING:
    from minilm_qdrant.collection import Collection
    from minilm_qdrant.ingest import UpsertReport

SOURCE_KEY, FOLDER_KEY = "source", "folder"
FILE_KEYS = (SOURCE_KEY, FOLDER_KEY, "title", "modified", "bytes", "pages")
"""The metadata a file gives its document (refreshed on every read; a user's other keys kept)."""
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


def origin_of(folder: str) -> str:
    """The `documents.ORIGIN_KEY` value of a folder's documents."""
    return f"folder:{folder}"


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
        from minilm_qdrant.readers import read_documents

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


@dataclass
class SyncReport:
    """What `sync` did to the folder's own documents: added, updated (embedded again, or
    metadata rewritten), unchanged (skipped: same size and time, or same text), deleted (their
    file is gone)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    stats: FolderStats = field(default_factory=FolderStats)
    upsert: UpsertReport | None = None
    seconds: float = 0.0


def sync(collection: Collection, path: str | Path, *, delete: bool = True,
         include: Sequence[str] = (), exclude: Sequence[str] = (), skip_invalid: bool = False,
         max_bytes: int = MAX_FILE_BYTES, force: bool = False,
         on_progress: Callable[[int], None] | None = None,
         on_total: Callable[[int], None] | None = None) -> SyncReport:
    """Make ``collection`` hold the documents of ``path`` as they are now: new files added,
    changed ones embedded again (keys a user set on them kept), unchanged ones skipped without
    being read (same size and modification time as stored; ``force`` reads and embeds every
    one), and with ``delete`` (a folder) the documents this folder's syncs wrote whose file is
    gone deleted. Only documents a sync of this folder wrote are ever changed (the reserved
    origin mark, not metadata): an id stored from anywhere else is refused in one line naming
    both. A bad file is named in one line; with ``skip_invalid`` it is skipped and counted and
    the rest is indexed (and deletions applied). Deletions come last, once every write is
    acknowledged: a sync stopped half-way deletes nothing, and rerunning it finishes."""
    if Path(path).exists() and not Path(path).is_dir() and str(path).lower().endswith(
            MANY_DOCUMENT_SUFFIXES):  # a pipe streams documents like a file
        raise InputError(f"{printable(path)}: a JSONL or CSV file holds many documents with "
                         "their own ids; index it with Collection.upsert(read_path(...)) (sync "
                         "takes a folder or a file that is one document)")
    start = time.monotonic()
    report = SyncReport()
    stats = report.stats
    found = list(files(path, include=include, exclude=exclude, skip_invalid=skip_invalid,
                       stats=stats))
    require({f.path.suffix.lower() for f in found})
    if on_total:
        on_total(len(found))
    stored = {d.id: d for d in _get(collection, [f.id for f in found])}
    todo: list[SourceFile] = []
    for source in found:
        before = stored.get(source.id)
        if before is not None and not _owned(before, source.folder, collection.origins):
            why = (f"{printable(source.path)}: id {source.id!r} is already stored in "
                   f"{collection.name!r} from {_source_of(before)}; a sync of folder "
                   f"{source.folder!r} never replaces it: index this folder into another "
                   "collection, or delete that document first")
            if not skip_invalid:
                raise InputError(why)
            stats.skipped.append(why)
        elif before is not None and not force and before.origin is not None \
                and before.metadata.get("modified") == source.modified \
                and before.metadata.get("bytes") == source.size:
            report.unchanged += 1
        else:
            todo.append(source)
    if on_progress and report.unchanged:
        on_progress(report.unchanged)
    refused: set[str | int | None] = set()

    def documents() -> Iterator[Document]:
        for source in todo:
            try:
                doc = read_file(source, max_bytes)
            except InputError as exc:
                if not skip_invalid:
                    raise
                stats.skipped.append(str(exc))
                continue
            before = stored.get(doc.id)
            if before is not None:  # the user's keys kept, the file's own refreshed
                kept = {k: v for k, v in before.metadata.items() if k not in FILE_KEYS}
                doc = Document(doc.text, {**kept, **doc.metadata}, doc.id, origin=doc.origin)
            report.added += before is None
            yield doc

    def skip(doc: Document, why: str) -> None:
        refused.add(doc.id)
        report.added -= doc.id not in stored
        stats.skipped.append(f"{doc.metadata.get(SOURCE_KEY, doc.id)}: {why}")

    written = collection.upsert(documents(), on_progress=on_progress, skip_unchanged=not force,
                                on_refused=skip if skip_invalid else None)
    report.upsert = written
    report.updated = written.written - report.added
    report.unchanged += written.unchanged
    root = Path(path)
    if delete and root.is_dir():
        folder = root.resolve().name
        walked = {f.id for f in found} | refused
        gone = [d.id for d in _mine(collection, folder) if d.id is not None
                and d.id not in walked and _gone(root / _unescaped(str(d.id)))]
        report.deleted = collection.delete(gone) if gone else 0
    report.seconds = time.monotonic() - start
    return report


def _owned(doc: Document, folder: str, marked: bool) -> bool:
    """Whether a sync of ``folder`` wrote ``doc``: its origin mark; in a collection made
    before the mark (not ``marked``), a document without one whose file fields name this
    folder and this path (as syncs recognised them then; marked once synced again)."""
    if doc.origin is not None or marked:
        return doc.origin == origin_of(folder)
    meta = doc.metadata
    return meta.get(FOLDER_KEY) == folder and meta.get(SOURCE_KEY) == doc.id \
        and "modified" in meta and "bytes" in meta


def legacy_marked(doc: Document) -> Document:
    """``doc`` marked as its folder's where a sync wrote it before the mark existed (as
    `_owned` recognises it); any other document as it is. ``reembed`` moves old collections
    with it, so the new one needs no metadata to know what a sync owns."""
    folder = doc.metadata.get(FOLDER_KEY)
    if doc.origin is None and isinstance(folder, str) and _owned(doc, folder, False):
        return replace(doc, origin=origin_of(folder))
    return doc


def _source_of(doc: Document) -> str:
    if doc.origin is not None:
        return f"a sync of {doc.origin.replace(':', ' ', 1)!r}"
    return "another source, not from a folder (a file of records, the API or a framework; " \
        "metadata does not make it a folder's)"


def _mine(collection: Collection, folder: str) -> Iterator[Document]:
    """The documents a sync of ``folder`` wrote (marked, or from before the mark)."""
    yield from collection.find(models.Filter(must=[models.FieldCondition(
        key=ORIGIN_KEY, match=models.MatchValue(value=origin_of(folder)))]))
    if collection.origins:
        return
    for doc in collection.find(models.Filter(must=[models.FieldCondition(
            key=f"metadata.{FOLDER_KEY}", match=models.MatchValue(value=folder))])):
        if doc.origin is None and _owned(doc, folder, False):
            yield doc


def _get(collection: Collection, ids: list[str], batch: int = 1024) -> Iterator[Document]:
    for at in range(0, len(ids), batch):
        yield from collection.get(ids[at:at + batch])


def _unescaped(doc_id: str) -> str:
    """The path an id names (`printable`'s escapes back to the bytes they stand for)."""
    if "\\x" not in doc_id:
        return doc_id
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 doc_id.encode("utf-8"))
    return os.fsdecode(raw)


def _gone(path: Path) -> bool:
    """True only when the file is certainly not there (a folder that cannot be read keeps
    its documents)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _source(path: Path, rel: str, folder: str) -> SourceFile:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{printable(path)}: not a regular file (a FIFO, socket or device)")
    return SourceFile(path, str(PurePosixPath(rel)), folder, st.st_size, _iso(st.st_mtime))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()
