"""`push`: embedded Edge store -> a qdrant-client store (the same code path as a server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from faults import ack
from qdrant_client import QdrantClient, models

from minilm_qdrant import Collection, CollectionMismatch, Document, Embedder
from minilm_qdrant.engines.client import ClientEngine
from minilm_qdrant.push import push

DOCS = [Document(f"Document number {i} about {topic}.", {"topic": topic, "i": i}, f"d{i}")
        for i, topic in enumerate(["cats", "stocks", "football", "dogs", "rain", "chess"] * 3)]


@pytest.fixture
def source(embedder: Embedder, tmp_path: Path) -> str:
    path = str(tmp_path / "edge")
    with Collection("docs", embedder, path=path) as col:
        col.upsert(DOCS)
    return path


def test_push_copies_points_and_fingerprint_without_reembedding(
    source: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "target")
    report = push(path=source, collection="docs", to_path=target, batch_size=5)
    assert (report.copied, report.batches, report.created) == (18, 4, True)
    assert (report.source_count, report.target_count, report.ok) == (18, 18, True)
    with Collection("docs", path=source) as a, Collection("docs", path=target) as b:
        assert isinstance(b.engine, ClientEngine)  # detected as a qdrant-client store
        assert a.embedder.fingerprint == b.embedder.fingerprint
        ours = [(h.id, round(h.score, 4), h.metadata) for h in a.search("pets", k=5)]
        theirs = [(h.id, round(h.score, 4), h.metadata) for h in b.search("pets", k=5)]
        assert ours == theirs


def test_rerun_after_an_interruption_has_no_duplicates(source: str, tmp_path: Path) -> None:
    target = str(tmp_path / "target")

    def stop(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        push(path=source, collection="docs", to_path=target, batch_size=4, on_progress=stop)
    client = QdrantClient(path=target)
    assert client.count("docs").count == 4
    client.close()
    report = push(path=source, collection="docs", to_path=target, batch_size=4)
    assert (report.created, report.source_count, report.target_count) == (False, 18, 18)


def test_a_target_made_for_another_model_is_refused(source: str, tmp_path: Path) -> None:
    target = str(tmp_path / "target")
    client = QdrantClient(path=target)
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=384, distance=models.Distance.DOT), metadata={"minilm_qdrant_fingerprint": {
            "model": "other", "dim": 384, "pooling": "mean", "normalize": True,
            "distance": "dot"}})
    client.close()
    with pytest.raises(CollectionMismatch, match="another --to-collection"):
        push(path=source, collection="docs", to_path=target)
    report = push(path=source, collection="docs", to_path=target, to_collection="copy")
    assert report.created and report.target_count == 18


def test_cli_push_ends_comparing_counts(source: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", "push",
         "--path", source, "--collection", "docs", "--to-path", str(tmp_path / "t")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "Pushed 18 points" in result.stdout
    assert "Counts: source 18, target 18: match." in result.stdout


def test_payload_indexes_are_created_on_the_target_before_the_points(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a server receives, captured at the HTTP transport (local mode keeps no indexes)."""
    with Collection("docs", path=source) as col:
        col.index_metadata("topic")
        col.index_metadata("i", "integer")
        assert col.engine.payload_indexes("docs") == {
            "metadata.topic": "keyword", "metadata.i": "integer"}
    sent: list[tuple[str, str, dict]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        sent.append((request.method, request.url.path, body))
        if request.url.path.endswith("/points/count"):
            return httpx.Response(200, json={"result": {"count": 18}, "status": "ok"})
        if request.url.path.endswith("/index"):
            return httpx.Response(200, json=ack("PUT", "/points"))  # an UpdateResult
        return httpx.Response(200, json=ack(request.method, request.url.path))

    def connect(**_: object) -> QdrantClient:
        return QdrantClient(url="http://127.0.0.1:6333", transport=httpx.MockTransport(handler),
                            check_compatibility=False)

    monkeypatch.setattr("minilm_qdrant.engines.location.connect", connect)
    report = push(path=source, collection="docs", url="http://qdrant.example:6333")
    assert sorted(report.indexes) == ["metadata.i", "metadata.topic"]
    indexed = {b["field_name"]: b["field_schema"] for m, p, b in sent if p.endswith("/index")}
    assert indexed == {"metadata.topic": "keyword", "metadata.i": "integer"}
    first_points = next(i for i, (m, p, _) in enumerate(sent) if p.endswith("/points"))
    assert max(i for i, (m, p, _) in enumerate(sent) if p.endswith("/index")) < first_points
