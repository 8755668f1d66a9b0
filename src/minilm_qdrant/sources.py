"""Files and folders -> `Document`s that know where they came from, and `sync`, which makes a
collection hold a folder's documents as they are now.

A folder is walked recursively (hidden files and folders skipped; ``include`` / ``exclude``
patterns); each file in a document format (`formats.FILE_SUFFIXES`) is one document whose id
is its path relative to the folder given (stable across machines and checkouts), with metadata
``source`` (that path), ``folder`` (the folder's name), ``title``, ``modified``, ``bytes`` and,
for a PDF, ``pages`` (where each page begins in the text). A file given alone is one document
too, its id relative to its own folder; JSONL and CSV files given alone hold many (`readers`).

Knows nothing of engines or the embedder: `sync` works through `Collection`'s public methods.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from qdrant_client import models

from minilm_qdrant.documents import Document
from minilm_qdrant.errors import InputError
from minilm_qdrant.formats import FILE_SUFFIXES, extract, require

if TYPE_CHECKING:
    from minilm_qdrant.collection import Collection
    from minilm_qdrant.ingest import UpsertReport

SOURCE_KEY, FOLDER_KEY = "source", "folder"
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
        raise InputError(f"{root}: no such file or folder")
    if not root.is_dir():
        found = _source(root, root.name, root.parent.resolve().name)
        stats.files += 1
        yield found
        return
    folder = root.resolve().name

    def matches(rel: str, patterns: Sequence[str]) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return any(fnmatch(rel, p) or ("/" not in p and fnmatch(name, p)) for p in patterns)

    def refuse(rel: str, why: str) -> None:
        if not skip_invalid:
            raise InputError(f"{root / rel}: {why}")
        stats.skipped.append(f"{root / rel}: {why}")

    def walk(directory: Path, rel: str, ancestors: frozenset[tuple[int, int]]
             ) -> Iterator[SourceFile]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
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
                    stats.passed_over.append(child)
                continue
            if not stat.S_ISREG(st.st_mode):
                refuse(child, "not a regular file (a FIFO, socket or device); leave it out "
                       "with --exclude")
                continue
            stats.files += 1
            yield SourceFile(Path(entry.path), child, folder, st.st_size, _iso(st.st_mtime))

    top = root.stat()
    yield from walk(root, "", frozenset({(top.st_dev, top.st_ino)}))


def read_file(source: SourceFile, max_bytes: int = MAX_FILE_BYTES) -> Document:
    """The document of one file, or `InputError` naming the file and why it gives no text."""
    if source.size > max_bytes:
        raise InputError(f"{source.path}: {source.size:,} bytes, over the bound of "
                         f"{max_bytes:,} (raise it with --max-bytes)")
    try:
        data = source.path.read_bytes()
    except OSError as exc:
        raise InputError(f"{source.path}: cannot be read ({exc.strerror or exc})") from None
    try:
        found = extract(source.path, data)
    except InputError as exc:
        raise InputError(f"{source.path}: {exc}") from None
    if not found.text.strip():
        raise InputError(f"{source.path}: no text (the file is empty)")
    metadata: dict[str, object] = {SOURCE_KEY: source.id, FOLDER_KEY: source.folder}
    if found.title:
        metadata["title"] = found.title
    metadata.update(modified=source.modified, bytes=source.size)
    if found.pages is not None:
        metadata["pages"] = found.pages
    return Document(found.text, metadata, source.id)


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
    """What `sync` did: documents added, updated (embedded again, or metadata rewritten),
    unchanged (skipped: same size and time, or same text), deleted (their file is gone)."""

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
    changed ones embedded again, unchanged ones skipped without being read (same size and
    modification time as stored; ``force`` reads and embeds every one), and with ``delete``
    (a folder) the documents of this folder whose file is gone deleted. Only this folder's
    documents are ever changed: an id already stored from elsewhere (another folder, a file,
    the API) is refused. Deletions come last, once every write is acknowledged: a sync
    stopped half-way deletes nothing, and rerunning it finishes."""
    if Path(path).exists() and not Path(path).is_dir() and str(path).lower().endswith(
            MANY_DOCUMENT_SUFFIXES):  # a pipe streams documents like a file
        raise InputError(f"{path}: a JSONL or CSV file holds many documents with their own "
                         "ids; index it with Collection.upsert(read_path(...)) (sync takes a "
                         "folder or a file that is one document)")
    start = time.monotonic()
    report = SyncReport()
    stats = report.stats
    found = list(files(path, include=include, exclude=exclude, skip_invalid=skip_invalid,
                       stats=stats))
    require({f.path.suffix.lower() for f in found})
    if on_total:
        on_total(len(found))
    stored = {d.id: d.metadata for d in _get(collection, [f.id for f in found])}
    todo: list[SourceFile] = []
    for source in found:
        before = stored.get(source.id)
        if before is not None and before.get(FOLDER_KEY) != source.folder:
            where = f"folder {before[FOLDER_KEY]!r}" if before.get(FOLDER_KEY) else \
                "not from a folder"
            why = (f"{source.path}: id {source.id!r} is already stored in "
                   f"{collection.name!r} ({where}); ids are paths relative to the folder "
                   "given: index this folder into another collection, or delete that "
                   "document first")
            if not skip_invalid:
                raise InputError(why)
            stats.skipped.append(why)
        elif before is not None and not force and before.get("modified") == source.modified \
                and before.get("bytes") == source.size:
            report.unchanged += 1
        else:
            todo.append(source)
    if on_progress and report.unchanged:
        on_progress(report.unchanged)

    def documents() -> Iterator[Document]:
        for source in todo:
            try:
                doc = read_file(source, max_bytes)
            except InputError as exc:
                if not skip_invalid:
                    raise
                stats.skipped.append(str(exc))
                continue
            report.added += doc.id not in stored
            yield doc

    written = collection.upsert(documents(), on_progress=on_progress, skip_unchanged=not force)
    report.upsert = written
    report.updated = written.written - report.added
    report.unchanged += written.unchanged
    root = Path(path)
    if delete and root.is_dir():
        mine = collection.find(models.Filter(must=[models.FieldCondition(
            key=f"metadata.{FOLDER_KEY}", match=models.MatchValue(value=root.resolve().name))]))
        gone = [d.id for d in mine if d.id is not None and _gone(root / str(d.id))]
        report.deleted = collection.delete(gone) if gone else 0
    report.seconds = time.monotonic() - start
    return report


def _get(collection: Collection, ids: list[str], batch: int = 1024) -> Iterator[Document]:
    for at in range(0, len(ids), batch):
        yield from collection.get(ids[at:at + batch])


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
        raise InputError(f"{path}: not a regular file (a FIFO, socket or device)")
    return SourceFile(path, str(PurePosixPath(rel)), folder, st.st_size, _iso(st.st_mtime))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()
