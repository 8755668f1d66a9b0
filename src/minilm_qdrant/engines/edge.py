"""The Qdrant Edge engine: the real Qdrant engine in-process, one shard per collection.

Layout of a store directory ``DIR``::

    DIR/.minilm-qdrant.lock          flock held while a process has the store open
    DIR/<collection>/collection.json size, distance, sparse vectors, metadata (fingerprint),
                                     options; written atomically
    DIR/<collection>/shard/          the Edge shard (segments, WAL)

Points carry the unnamed dense vector and, in collections made with sparse vectors, the named
BM25 sparse vector ``bm25`` (IDF modifier), written together in one update.

Every call into ``qdrant_edge`` (pinned: its API moves between releases) lives in this module.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from minilm_qdrant.documents import Distance
from minilm_qdrant.engines import (
    SPARSE_NAME,
    WINDOWS_NAME,
    CollectionInfo,
    ScaleOptions,
    SearchRequest,
    Sparse,
    StoredPoint,
)
from minilm_qdrant.engines.diskspace import check_open
from minilm_qdrant.engines.edge_files import (
    LOCK_FILE,
    acquire,
    engine_faults,
    exchange,
    read_meta,
    release,
    sole_user,
    write_json_atomic,
)
from minilm_qdrant.engines.edge_requests import (
    to_edge_config,
    to_edge_filter,
    to_edge_query,
    to_edge_sparse,
)
from minilm_qdrant.errors import CollectionNotFound, InputError, StoreInUse

META_FILE = "collection.json"
SHARD_DIR = "shard"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_NAME = 255
"""Bytes in a directory name on common filesystems (ext4, xfs, btrfs, APFS, NTFS)."""
_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float, "bool": qe.PayloadSchemaType.Bool,
    "text": qe.PayloadSchemaType.Text, "datetime": qe.PayloadSchemaType.Datetime,
    "uuid": qe.PayloadSchemaType.Uuid, "geo": qe.PayloadSchemaType.Geo,
}
class EdgeEngine:
    """One Edge shard per collection under one directory, locked for this process."""

    in_process = True

    def __init__(
        self, path: str | os.PathLike[str], *, hnsw_ef: int | None = None, create: bool = True
    ) -> None:
        """Open (``create``: or make) the store at ``path``; a read never creates one."""
        self.root = Path(path)
        self.hnsw_ef = hnsw_ef
        if not create and not self.root.is_dir():
            raise CollectionNotFound(
                f"there is no embedded store at {self.root}; index documents into it first "
                "(minilm-qdrant index FILE --path DIR), or give the right --path."
            )
        self._made = not self.root.exists()
        """This engine made the store directory (a failed first run removes it: `close`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._key: str | None = acquire(self.root)
        self._shards: dict[str, qe.EdgeShard] = {}

    def __repr__(self) -> str:
        return f"EdgeEngine({str(self.root)!r})"

    @property
    def disk_root(self) -> Path:
        """Where the store writes (for free-space checks)."""
        return self.root

    def _dir(self, name: str) -> Path:
        if len(name.encode("utf-8")) > MAX_NAME:
            raise InputError(
                f"collection name is {len(name.encode('utf-8'))} bytes long; the embedded store "
                f"keeps each collection in a directory, whose name is limited to {MAX_NAME} "
                "bytes: choose a shorter name."
            )
        if not _NAME.match(name) or name in (".", ".."):
            raise InputError(
                f"collection name {name!r} cannot be a directory of the embedded store: use "
                "letters, digits, '_', '-' or '.' (not first)."
            )
        return self.root / name

    def _meta(self, name: str) -> dict[str, Any] | None:
        return read_meta(self._dir(name) / META_FILE, ("size", "distance"))

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        if self._key is None:
            raise InputError(f"the embedded store at {self.root} is closed")
        meta = self._meta(name)
        if meta is None:
            raise InputError(f"collection {name!r} does not exist at {self.root}")
        where = self._dir(name) / SHARD_DIR
        check_open(self.root)  # a shard opened on a full disk dies of SIGBUS, even to read
        try:
            with engine_faults(where, "opening"):
                if (where / "edge_config.json").exists():
                    shard = qe.EdgeShard.load(str(where))
                else:  # created, then interrupted before the shard was made
                    shard = qe.EdgeShard.create(str(where), to_edge_config(meta))
        except Exception as exc:
            if "WouldBlock" in str(exc):
                raise StoreInUse(
                    f"Collection {name!r} at {self.root} is already open in this process; "
                    "close the other Collection first."
                ) from None
            raise
        self._shards[name] = shard
        return shard

    def info(self, name: str) -> CollectionInfo | None:
        meta = self._meta(name)
        if meta is None:
            return None
        return CollectionInfo(
            size=int(meta["size"]), distance=meta["distance"], metadata=meta.get("metadata", {}),
            sparse=SPARSE_NAME in meta.get("sparse_vectors", []),
            windows=WINDOWS_NAME in meta.get("multivectors", []),
        )

    def create(
        self, name: str, size: int, distance: Distance, metadata: dict[str, Any],
        options: ScaleOptions, *, sparse: bool, windows: bool,
    ) -> None:
        folder = self._dir(name)
        if self._meta(name) is not None:
            raise InputError(f"collection {name!r} already exists at {self.root}")
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": 1, "engine": f"qdrant-edge {_edge_version()}", "size": size,
            "distance": distance, "metadata": metadata,
            "sparse_vectors": [SPARSE_NAME] if sparse else [],
            "multivectors": [WINDOWS_NAME] if windows else [],
            "options": {f.name: getattr(options, f.name) for f in fields(ScaleOptions)
                        if getattr(options, f.name) is not None
                        and (f.name != "window_datatype" or windows)},
        }
        write_json_atomic(folder / META_FILE, meta)
        self._shard(name)

    def upsert(
        self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]],
        sparse: list[Sparse] | None = None, windows: list[np.ndarray] | None = None,
    ) -> None:
        rows = np.asarray(vectors, dtype=np.float32)  # rows go in as they are: no list copy
        if sparse is None and windows is None:
            points = [qe.Point(i, v, p) for i, v, p in zip(ids, rows, payloads, strict=True)]
        else:
            named: list[dict[str, Any]] = [{"": v.tolist()} for v in rows]
            for each, s in zip(named, sparse or [], strict=sparse is not None):
                each[SPARSE_NAME] = to_edge_sparse(s)
            for each, w in zip(named, windows or [], strict=windows is not None):
                each[WINDOWS_NAME] = np.asarray(w, dtype=np.float32).tolist()
            points = [qe.Point(i, v, p) for i, v, p in zip(ids, named, payloads, strict=True)]
        shard = self._shard(name)
        with engine_faults(self._dir(name) / SHARD_DIR, "writing"):
            shard.update(qe.UpdateOperation.upsert_points(points))

    def search(self, name: str, request: SearchRequest) -> list[StoredPoint]:
        query = to_edge_query(request, self.hnsw_ef)
        shard = self._shard(name)
        with engine_faults(self._dir(name) / SHARD_DIR, "searching"):
            found = shard.query(query)
        return [StoredPoint.from_record(p, with_vectors=False) for p in found]

    def add_sparse(self, name: str) -> None:
        meta = self._meta(name)
        if meta is None:
            raise InputError(f"collection {name!r} does not exist at {self.root}")
        if SPARSE_NAME not in self._sparse_names(name):  # else: a rerun after an interruption
            shard = self._shard(name)
            shard.update(qe.UpdateOperation.create_sparse_vector(
                SPARSE_NAME, modifier=qe.Modifier.Idf))
            shard.flush()

    def upsert_sparse(self, name: str, ids: list[str], sparse: list[Sparse]) -> None:
        points = [qe.PointVectors(i, {SPARSE_NAME: to_edge_sparse(s)})
                  for i, s in zip(ids, sparse, strict=True)]
        self._shard(name).update(qe.UpdateOperation.update_vectors(points))

    def set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        meta = self._meta(name)
        if meta is None:
            raise InputError(f"collection {name!r} does not exist at {self.root}")
        self._shard(name).flush()  # the vectors are durable before the metadata says so
        has = [SPARSE_NAME] if SPARSE_NAME in self._sparse_names(name) else []
        write_json_atomic(self._dir(name) / META_FILE,
                          {**meta, "metadata": metadata, "sparse_vectors": has})

    def _sparse_names(self, name: str) -> list[str]:
        config = read_meta(self._dir(name) / SHARD_DIR / "edge_config.json", ()) or {}
        return list(config.get("sparse_vectors") or {})

    def retrieve(self, name: str, ids: list[str], windows: bool = False) -> list[StoredPoint]:
        shard = self._shard(name)
        with engine_faults(self._dir(name) / SHARD_DIR, "reading"):
            records = shard.retrieve(list(ids), with_payload=True,
                                     with_vector=[WINDOWS_NAME] if windows else False)
        return [StoredPoint.from_record(r, with_vectors=False) for r in records]

    def count(self, name: str, query_filter: Any | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=to_edge_filter(query_filter))
        shard = self._shard(name)
        with engine_faults(self._dir(name) / SHARD_DIR, "counting"):
            return int(shard.count(request))

    def delete(self, name: str, ids: list[str]) -> None:
        self._shard(name).update(qe.UpdateOperation.delete_points(list(ids)))

    def delete_by_filter(self, name: str, query_filter: Any) -> None:
        flt = to_edge_filter(query_filter)
        if flt is None:
            raise InputError("delete_by_filter needs a filter")
        self._shard(name).update(qe.UpdateOperation.delete_points_by_filter(flt))

    def set_payload(
        self, name: str, values: dict[str, Any], key: str | None, *,
        ids: list[str] | None = None, query_filter: Any | None = None,
    ) -> None:
        if ids is not None:
            op = qe.UpdateOperation.set_payload(list(ids), values, key=key)
        else:
            flt = to_edge_filter(query_filter)
            if flt is None:
                raise InputError("set_payload needs ids or a filter")
            op = qe.UpdateOperation.set_payload_by_filter(flt, values, key=key)
        self._shard(name).update(op)

    def drop(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        folder = self._dir(name)
        (folder / META_FILE).unlink(missing_ok=True)  # first: a half-dropped one is gone
        shutil.rmtree(folder, ignore_errors=True)

    def create_payload_index(self, name: str, field: str, kind: str) -> None:
        schema: Any = qe.KeywordIndexParams(is_tenant=True) if kind == "tenant" \
            else _SCHEMA.get(kind)
        if schema is None:
            raise InputError(f"payload index type {kind!r} is not one of {sorted(_SCHEMA)}")
        self._shard(name).update(qe.UpdateOperation.create_field_index(field, schema))

    def payload_indexes(self, name: str) -> dict[str, str]:
        schema = self._shard(name).info().payload_schema
        return {k: "tenant" if getattr(v.params, "is_tenant", None)
                else str(v.data_type).rpartition(".")[2].lower() for k, v in schema.items()}

    def optimize(self, name: str) -> None:
        """Merge segments and build the HNSW index of large ones (blocks until done)."""
        shard = self._shard(name)
        shard.optimize()
        shard.flush()

    def indexed_vectors(self, name: str) -> int:
        return int(self._shard(name).info().indexed_vectors_count)

    def scroll(
        self, name: str, batch: int, with_vectors: bool = True, query_filter: Any | None = None
    ) -> Iterator[list[StoredPoint]]:
        shard = self._shard(name)
        flt = to_edge_filter(query_filter)
        offset: Any = None
        while True:
            with engine_faults(self._dir(name) / SHARD_DIR, "reading"):
                records, offset = shard.scroll(qe.ScrollRequest(
                    offset=offset, limit=batch, filter=flt, with_payload=True,
                    with_vector=with_vectors))
            yield [StoredPoint.from_record(r, with_vectors) for r in records]
            if offset is None:
                return

    def swap(self, name: str, other: str) -> None:
        """Exchange two collections' directories (shards closed first): ``name`` then holds
        ``other``'s points and the reverse."""
        for each in (name, other):
            if self._meta(each) is None:
                raise InputError(f"collection {each!r} does not exist at {self.root}")
            shard = self._shards.pop(each, None)
            if shard is not None:
                shard.flush()
                shard.close()
        exchange(self._dir(name), self._dir(other))

    def close(self, failed: bool = False) -> None:
        """Flush and release the store. ``failed``: a store directory that this engine made
        and that holds nothing but its empty collections is removed (a failed first run leaves
        no store behind); one with a point in it, or made before, is kept."""
        discard = failed and self._made and self._key is not None and sole_user(self._key) \
            and self._holds_nothing()
        shards, self._shards = self._shards, {}
        for shard in shards.values():
            shard.flush()
            shard.close()
        if self._key is not None:
            if discard:  # under the lock, so no other process opens it meanwhile
                shutil.rmtree(self.root, ignore_errors=True)
            release(self._key)
            self._key = None


    def _holds_nothing(self) -> bool:
        """Only the lock file and collections without a point."""
        try:
            return all(entry.name == LOCK_FILE or (
                entry.is_dir() and (self._meta(entry.name) is None or not self.count(entry.name))
            ) for entry in self.root.iterdir())
        except Exception:  # noqa: BLE001 - unsure: keep the store
            return False


def _edge_version() -> str:
    from importlib.metadata import version

    return version("qdrant-edge-py")
