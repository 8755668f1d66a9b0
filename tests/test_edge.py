"""The embedded Qdrant Edge store: engine choice, locking, atomic metadata, HNSW."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from faults import record
from qdrant_client import QdrantClient

from minilm_qdrant import Collection, CollectionOptions, Document, Embedder, Location
from minilm_qdrant.engines import SearchRequest
from minilm_qdrant.engines.client import ClientEngine
from minilm_qdrant.engines.edge import EdgeEngine
from minilm_qdrant.engines.edge_files import is_client_local_store

OPEN_ELSEWHERE = """
import sys
from minilm_qdrant import StoreInUse
from minilm_qdrant import Location
try:
    Location(path=sys.argv[1]).open().close()
except StoreInUse as exc:
    print(exc); sys.exit(3)
"""


def _other_process(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", OPEN_ELSEWHERE, path], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_path_opens_edge_and_a_second_process_gets_store_in_use(tmp_path) -> None:
    path = str(tmp_path / "store")
    engine = Location(path=path).open()
    assert isinstance(engine, EdgeEngine)
    busy = _other_process(path)
    assert busy.returncode == 3 and "in use by another process" in busy.stdout
    engine.close()
    assert _other_process(path).returncode == 0  # released on close


def test_a_local_store_from_before_keeps_opening_in_local_mode(
    embedder: Embedder, tmp_path
) -> None:
    path = str(tmp_path / "old")
    with Collection("docs", embedder, client=QdrantClient(path=path)) as col:
        col.upsert([Document("Cats purr on warm laps.", id="cat"),
                    Document("Bonds yield more when rates rise.", id="bond")])
    assert is_client_local_store(path) and (tmp_path / "old" / "meta.json").is_file()
    with Collection("docs", path=path, create=False) as col:
        assert isinstance(col.engine, ClientEngine)
        assert col.search("kitten", k=1)[0].id == "cat"


def test_metadata_is_written_atomically_beside_the_shard(embedder: Embedder, tmp_path) -> None:
    with Collection("docs", embedder, path=str(tmp_path)) as col:
        assert isinstance(col.engine, EdgeEngine)
    meta = json.loads((tmp_path / "docs" / "collection.json").read_text())
    assert (meta["size"], meta["distance"]) == (384, "dot")
    assert meta["metadata"]["minilm_qdrant_fingerprint"]["dim"] == 384
    assert (tmp_path / "docs" / "shard").is_dir()
    assert not [p for p in (tmp_path / "docs").iterdir() if p.name.endswith(".tmp")]


def test_bad_collection_name_is_refused(tmp_path) -> None:
    engine = EdgeEngine(tmp_path)
    try:
        with pytest.raises(Exception, match="cannot be a directory"):
            engine.info("../escape")
    finally:
        engine.close()


def test_optimize_builds_hnsw_with_high_recall(tmp_path) -> None:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((20, 384))
    vectors = (centres[rng.integers(0, 20, 3000)] + 0.6 * rng.standard_normal((3000, 384)))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(len(vectors))]
    engine = EdgeEngine(tmp_path)
    try:
        engine.create("v", 384, "dot", {}, CollectionOptions(full_scan_threshold=100),
                      sparse=False, windows=True)
        for a in range(0, len(ids), 1000):
            engine.upsert("v", ids[a:a + 1000], vectors[a:a + 1000], [{}] * len(ids[a:a + 1000]))
        assert engine.indexed_vectors("v") == 0
        engine.optimize("v")
        assert engine.indexed_vectors("v") == len(ids)
        found = 0
        for q in vectors[:20]:
            exact = {p.id for p in engine.search("v", SearchRequest(10, dense=q, exact=True))}
            approx = engine.search("v", SearchRequest(10, dense=q, hnsw_ef=128))
            found += len(exact & {p.id for p in approx})
        assert found / 200 >= 0.9
    finally:
        engine.close()


def test_a_name_too_long_for_a_directory_is_named_with_its_length(tmp_path) -> None:
    engine = EdgeEngine(tmp_path)
    try:
        with pytest.raises(Exception, match=r"collection name is 300 bytes long; .* limited to "
                           "255 bytes: choose a shorter name"):
            engine.info("a" * 300)
        assert engine.info("a" * 255) is None  # the longest name is fine
        record("collection name of 300 letters (embedded store)", "InputError naming its 300 "
               "bytes and the 255-byte limit", 0, len(list(tmp_path.glob("a*"))))
    finally:
        engine.close()


def test_reads_create_nothing(embedder: Embedder, tmp_path) -> None:
    from minilm_qdrant import CollectionNotFound
    from minilm_qdrant.push import push

    missing = tmp_path / "missing"
    with pytest.raises(CollectionNotFound, match="no embedded store at"):
        Collection("c", path=str(missing), create=False)
    with pytest.raises(CollectionNotFound):
        push(path=str(missing), collection="c", to_path=str(tmp_path / "target"))
    assert not missing.exists() and not (tmp_path / "target").exists()
    with Collection("c", embedder, path=str(tmp_path / "s")):
        pass
    with pytest.raises(CollectionNotFound, match="'other' does not exist"):
        Collection("other", path=str(tmp_path / "s"), create=False)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [".minilm-qdrant.lock", "c"]
    record("reads of a missing store or collection (Collection create=False, push)",
           "CollectionNotFound; no directory created", 0, int(missing.exists()))
