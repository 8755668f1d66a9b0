"""`sync`: make a collection hold a folder's documents as they are now.

What a sync owns is recorded outside the metadata, under the reserved payload key
`documents.ORIGIN_KEY` (``folder:NAME``), which only the folder reader sets: a document
written from anywhere else (a file of records, the API, a framework), whatever its metadata
says, is never deleted or replaced by a sync. Keys a user sets on a file's document
(`set_metadata`) are kept when the file is read again; the file's own keys
(`documents.FILE_KEYS`) are refreshed. Works through `Collection`'s public methods only.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qdrant_client import models

from minilm_qdrant.documents import (
    FILE_KEYS,
    FOLDER_KEY,
    ORIGIN_KEY,
    SOURCE_KEY,
    Document,
    origin_of,
    owned,
)
from minilm_qdrant.errors import InputError
from minilm_qdrant.inputs.files import (
    MANY_DOCUMENT_SUFFIXES,
    MAX_FILE_BYTES,
    FolderStats,
    SourceFile,
    files,
    printable,
    read_file,
)
from minilm_qdrant.inputs.formats import require

if TYPE_CHECKING:
    from minilm_qdrant.collection import Collection, UpsertReport


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
        if before is not None and not owned(before, source.folder, collection.origins):
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
        if doc.origin is None and owned(doc, folder, False):
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


