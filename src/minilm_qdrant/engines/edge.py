"""The Qdrant Edge engine: the real Qdrant engine in-process, one shard per collection.

Layout of a store directory ``DIR``::

    DIR/.minilm-qdrant.lock          flock held while a process has the store open
    DIR/<collection>/collection.json size, distance, metadata (fingerprint), written atomically
    DIR/<collection>/shard/          the Edge shard (segments, WAL)

Every call into ``qdrant_edge`` (pinned: its API moves between releases) lives in this module.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe
from qdrant_client import models

from minilm_qdrant.engines import CollectionInfo, CollectionOptions, Distance, StoredPoint
from minilm_qdrant.errors import InputError, StoreInUse

LOCK_FILE = ".minilm-qdrant.lock"
META_FILE = "collection.json"
SHARD_DIR = "shard"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
_DISTANCE = {"dot": qe.Distance.Dot, "cosine": qe.Distance.Cosine, "euclid": qe.Distance.Euclid}
_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float, "bool": qe.PayloadSchemaType.Bool,
    "text": qe.PayloadSchemaType.Text, "datetime": qe.PayloadSchemaType.Datetime,
    "uuid": qe.PayloadSchemaType.Uuid, "geo": qe.PayloadSchemaType.Geo,
}
_locks: dict[str, tuple[int, int]] = {}  # realpath -> (fd, users in this process)
_locks_guard = threading.Lock()


def is_edge_store(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds (or is ready to hold) an Edge store: not a client local store."""
    return not is_client_local_store(path)


def is_client_local_store(path: str | os.PathLike[str]) -> bool:
    """qdrant-client's local mode writes ``DIR/meta.json`` with a ``collections`` map."""
    meta = Path(path) / "meta.json"
    try:
        return isinstance(json.loads(meta.read_text()).get("collections"), dict)
    except (OSError, ValueError, AttributeError):
        return False


def _acquire(root: Path) -> str:
    key = os.path.realpath(root)
    with _locks_guard:
        if key in _locks:
            fd, users = _locks[key]
            _locks[key] = (fd, users + 1)
            return key
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreInUse(
                f"The embedded store at {root} is in use by another process; close it there "
                "first (the lock is released when that process ends)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _locks[key] = (fd, 1)
        return key


def _release(key: str) -> None:
    with _locks_guard:
        fd, users = _locks.pop(key)
        if users > 1:
            _locks[key] = (fd, users - 1)
            return
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class EdgeEngine:
    """One Edge shard per collection under one directory, locked for this process."""

    def __init__(self, path: str | os.PathLike[str], *, hnsw_ef: int | None = None) -> None:
        self.root = Path(path)
        self.hnsw_ef = hnsw_ef
        self.root.mkdir(parents=True, exist_ok=True)
        self._key: str | None = _acquire(self.root)
        self._shards: dict[str, qe.EdgeShard] = {}

    def __repr__(self) -> str:
        return f"EdgeEngine({str(self.root)!r})"

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name) or name in (".", ".."):
            raise InputError(
                f"collection name {name!r} cannot be a directory of the embedded store: use "
                "letters, digits, '_', '-' or '.' (not first)."
            )
        return self.root / name

    def _meta(self, name: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self._dir(name) / META_FILE).read_text("utf-8"))
        except FileNotFoundError:
            return None
        return data

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
        try:
            if (where / "edge_config.json").exists():
                shard = qe.EdgeShard.load(str(where))
            else:  # created, then interrupted before the shard was made
                shard = qe.EdgeShard.create(str(where), _config(meta))
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
            size=int(meta["size"]), distance=meta["distance"], metadata=meta.get("metadata", {})
        )

    def create(
        self, name: str, size: int, distance: Distance, metadata: dict[str, Any],
        options: CollectionOptions,
    ) -> None:
        folder = self._dir(name)
        if self._meta(name) is not None:
            raise InputError(f"collection {name!r} already exists at {self.root}")
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": 1, "engine": f"qdrant-edge {_edge_version()}", "size": size,
            "distance": distance, "metadata": metadata,
            "options": {k: v for k, v in vars(options).items() if v is not None},
        }
        write_json_atomic(folder / META_FILE, meta)
        self._shard(name)

    def upsert(
        self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None:
        rows = np.asarray(vectors, dtype=np.float32)  # rows go in as they are: no list copy
        points = [qe.Point(i, v, p) for i, v, p in zip(ids, rows, payloads, strict=True)]
        self._shard(name).update(qe.UpdateOperation.upsert_points(points))

    def search(
        self, name: str, vector: np.ndarray, k: int, query_filter: Any | None = None,
        exact: bool = False, hnsw_ef: int | None = None,
    ) -> list[StoredPoint]:
        params = qe.SearchParams(hnsw_ef=hnsw_ef or self.hnsw_ef, exact=exact)
        request = qe.QueryRequest(
            limit=k, query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            filter=to_edge_filter(query_filter), params=params, with_payload=True,
        )
        return [StoredPoint(id=str(p.id), payload=p.payload or {}, score=float(p.score))
                for p in self._shard(name).query(request)]

    def count(self, name: str) -> int:
        return int(self._shard(name).count(qe.CountRequest(exact=True)))

    def delete(self, name: str, ids: list[str]) -> None:
        self._shard(name).update(qe.UpdateOperation.delete_points(list(ids)))

    def create_payload_index(self, name: str, field: str, kind: str) -> None:
        if kind not in _SCHEMA:
            raise InputError(f"payload index type {kind!r} is not one of {sorted(_SCHEMA)}")
        self._shard(name).update(qe.UpdateOperation.create_field_index(field, _SCHEMA[kind]))

    def payload_indexes(self, name: str) -> dict[str, str]:
        schema = self._shard(name).info().payload_schema
        return {k: str(v.data_type).rpartition(".")[2].lower() for k, v in schema.items()}

    def optimize(self, name: str) -> None:
        """Merge segments and build the HNSW index of large ones (blocks until done)."""
        shard = self._shard(name)
        shard.optimize()
        shard.flush()

    def indexed_vectors(self, name: str) -> int:
        return int(self._shard(name).info().indexed_vectors_count)

    def scroll(
        self, name: str, batch: int, with_vectors: bool = True
    ) -> Iterator[list[StoredPoint]]:
        shard = self._shard(name)
        offset: Any = None
        while True:
            records, offset = shard.scroll(qe.ScrollRequest(
                offset=offset, limit=batch, with_payload=True, with_vector=with_vectors))
            yield [
                StoredPoint(
                    id=str(r.id), payload=r.payload or {},
                    vector=np.asarray(r.vector, dtype=np.float32) if with_vectors else None,
                )
                for r in records
            ]
            if offset is None:
                return

    def close(self) -> None:
        shards, self._shards = self._shards, {}
        for shard in shards.values():
            shard.flush()
            shard.close()
        if self._key is not None:
            _release(self._key)
            self._key = None


def _edge_version() -> str:
    from importlib.metadata import version

    return version("qdrant-edge-py")


def _config(meta: dict[str, Any]) -> qe.EdgeConfig:
    opts = meta.get("options", {})
    hnsw = None
    if any(opts.get(k) is not None for k in ("hnsw_m", "hnsw_ef_construct", "full_scan_threshold")):
        hnsw = qe.HnswIndexConfig(
            m=opts.get("hnsw_m") or 16, ef_construct=opts.get("hnsw_ef_construct") or 100,
            full_scan_threshold=opts.get("full_scan_threshold") or 10_000,
        )
    quantization = None
    if opts.get("quantization") == "int8":
        quantization = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True)
    optimizers = None
    if opts.get("full_scan_threshold") is not None:  # index as soon as a scan would be slower
        optimizers = qe.EdgeOptimizersConfig(indexing_threshold=max(1, opts["full_scan_threshold"]))
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(
            size=int(meta["size"]), distance=_DISTANCE[meta["distance"]],
            on_disk=opts.get("on_disk"),
        ),
        on_disk_payload=opts.get("on_disk_payload"),
        hnsw_config=hnsw, quantization_config=quantization, optimizers=optimizers,
    )


# --- qdrant_client.models.Filter -> qdrant_edge.Filter ------------------------------------


def to_edge_filter(flt: Any | None) -> qe.Filter | None:
    """Translate the Filter of the public API (qdrant_client.models) into Edge's types."""
    if flt is None:
        return None
    if isinstance(flt, dict):
        flt = models.Filter.model_validate(flt)
    if not isinstance(flt, models.Filter):
        raise InputError(f"query_filter must be a qdrant_client.models.Filter, not {type(flt)}")
    min_should = None
    if flt.min_should is not None:
        min_should = qe.MinShould(
            [_condition(c) for c in flt.min_should.conditions], flt.min_should.min_count)
    return qe.Filter(
        must=_conditions(flt.must), should=_conditions(flt.should),
        must_not=_conditions(flt.must_not), min_should=min_should,
    )


def _conditions(part: Any) -> list[Any] | None:
    if part is None:
        return None
    return [_condition(c) for c in (part if isinstance(part, list) else [part])]


def _condition(c: Any) -> Any:
    if isinstance(c, models.Filter):
        return to_edge_filter(c)
    if isinstance(c, models.FieldCondition):
        return qe.FieldCondition(
            key=c.key, match=_match(c.match), range=_range(c.range),
            values_count=None if c.values_count is None else qe.ValuesCount(
                lt=c.values_count.lt, gt=c.values_count.gt,
                lte=c.values_count.lte, gte=c.values_count.gte),
            is_empty=c.is_empty, is_null=c.is_null,
        )
    if isinstance(c, models.IsEmptyCondition):
        return qe.IsEmptyCondition(c.is_empty.key)
    if isinstance(c, models.IsNullCondition):
        return qe.IsNullCondition(c.is_null.key)
    if isinstance(c, models.HasIdCondition):
        return qe.HasIdCondition({str(i) if not isinstance(i, int) else i for i in c.has_id})
    if isinstance(c, models.NestedCondition):
        nested = to_edge_filter(c.nested.filter)
        assert nested is not None
        return qe.NestedCondition(c.nested.key, nested)
    raise InputError(f"filter condition {type(c).__name__} is not supported by the embedded store")


def _match(m: Any) -> Any:
    if m is None:
        return None
    table: dict[type, Any] = {
        models.MatchValue: lambda: qe.MatchValue(m.value),
        models.MatchAny: lambda: qe.MatchAny(list(m.any)),
        models.MatchExcept: lambda: qe.MatchExcept(list(m.except_)),
        models.MatchText: lambda: qe.MatchText(m.text),
        models.MatchTextAny: lambda: qe.MatchTextAny(m.text_any),
        models.MatchPhrase: lambda: qe.MatchPhrase(m.phrase),
    }
    build = table.get(type(m))
    if build is None:
        raise InputError(f"match {type(m).__name__} is not supported by the embedded store")
    return build()


def _range(r: Any) -> Any:
    if r is None:
        return None
    if isinstance(r, models.DatetimeRange):
        iso = [None if v is None else (v if isinstance(v, str) else v.isoformat())
               for v in (r.gte, r.gt, r.lte, r.lt)]
        return qe.RangeDateTime(gte=iso[0], gt=iso[1], lte=iso[2], lt=iso[3])
    return qe.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)
