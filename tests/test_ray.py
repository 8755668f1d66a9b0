"""Embedding on Ray (`minilm_qdrant.distributed`) on a real local Ray of 2 CPUs, real weights
and real stores; faults are real too: a SIGKILLed driver, a worker that SIGKILLs itself
mid-batch, and a server's faults at the HTTP transport (`faults.LoopbackFaults`).

Small on purpose (tens of short documents, batches of 4): the whole module runs in a few
minutes, most of it starting Ray workers and loading the model in each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason='the Ray tests need pip install "minilm-qdrant[ray]"')

from conftest import index_in_process  # noqa: E402
from faults import FAST, LoopbackFaults, interrupt_when, record  # noqa: E402

from minilm_qdrant import Collection, Embedder, Location  # noqa: E402
from minilm_qdrant.collection.known import Known, Snapshot  # noqa: E402
from minilm_qdrant.distributed import INSTALL, index_on_ray, require_ray  # noqa: E402
from minilm_qdrant.documents import point_id  # noqa: E402
from minilm_qdrant.errors import MissingDependency  # noqa: E402

CHILD = Path(__file__).with_name("ray_child.py")
SUBJECTS = ["volcanoes erupt basalt lava", "violin concertos by baroque composers",
            "sourdough bread fermentation", "migratory birds crossing the Sahara",
            "tax law for small businesses", "protein folding in the cell",
            "chess endgames with rooks", "solar panels on rooftops"]
QUERIES = ["how does lava form", "baking bread with wild yeast", "bird migration routes",
           "renewable energy at home"]
N = 40


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A real local Ray of 2 CPUs for the module; its address (a child driver joins it)."""
    # test modules are not importable on the workers: the probes below travel by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def document(i: int) -> dict[str, object]:
    """Every seventh document is long (several windows); each names its subject and number."""
    subject = SUBJECTS[i % len(SUBJECTS)]
    text = f"Record {i} is a note on {subject}; detail number {i * 7 % 13} of the series."
    if i % 7 == 0:
        text = " ".join([text] * 40)
    return {"id": f"r{i}", "text": text, "subject": subject.split()[0]}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(document(i)) + "\n" for i in range(N)))
    return path


def expected_ids(n: int = N) -> set[str]:
    return {point_id(f"r{i}") for i in range(n)}


def stored(path: str) -> tuple[set[str], list[str]]:
    """The point ids an embedded store holds, and its document ids (repeats would show)."""
    with Collection(path=path, create=False) as col:
        points = [p for batch in col.engine.scroll(col.name, 64, with_vectors=False)
                  for p in batch]
    return {p.id for p in points}, [p.payload["doc_id"] for p in points]


def kill_once(marker: Path, at: str):  # -> Probe, defined here to travel by value
    """A probe that SIGKILLs the worker running it at point ``at``, once in the whole run
    (the marker file, made exclusively, says it happened)."""
    def probe(point: str) -> None:
        if point != at:
            return
        try:
            marker.open("x").close()
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    return probe


# --- without a cluster -------------------------------------------------------------------


def test_a_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, docs: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(MissingDependency, match="minilm-qdrant\\[ray\\]"):
        require_ray()
    from minilm_qdrant import cli

    monkeypatch.setattr(sys, "argv", ["minilm-qdrant", "index", str(docs), "--ray",
                                      "--path", str(docs.parent / "s")])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.strip().count("\n") == 0 and INSTALL in err


def test_the_snapshot_knows_what_the_store_says(embedder: Embedder, tmp_path: Path) -> None:
    from minilm_qdrant import Document

    with Collection("docs", embedder, path=str(tmp_path / "s"), batch_size=8) as col:
        col.upsert([Document(str(d["text"]), {"s": d["subject"]}, d["id"])  # type: ignore[arg-type]
                    for d in map(document, range(12))])
        col.upsert([Document("an integer id", id=7)])
        snapshot = Snapshot.take(col.parts)
        ids = [p.id for batch in col.engine.scroll(col.name, 64, with_vectors=False)
               for p in batch]
        truth = {p.id: Known.of(p.payload) for p in col.engine.retrieve(col.name, ids)}
    assert len(snapshot) == 13 and snapshot.lookup([*ids, point_id("absent")]) == truth


# --- on a real local Ray of 2 CPUs --------------------------------------------------------


def test_ray_ingest_equals_a_plain_index(cluster: str, embedder: Embedder, docs: Path,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    plain, on_ray = str(tmp_path / "plain"), str(tmp_path / "ray")
    code, out, err = index_in_process(embedder, monkeypatch, capsys, plain)(
        str(docs), "--batch-size", "4")
    assert code == 0, err
    code, out, err = index_in_process(embedder, monkeypatch, capsys, on_ray)(
        str(docs), "--ray", "--workers", "2", "--batch-size", "4")
    assert code == 0, err
    assert f"Indexed {N} documents" in out and "2 workers x 1 CPU" in out, out
    ids_plain, _ = stored(plain)
    ids_ray, docs_ray = stored(on_ray)
    assert ids_ray == ids_plain == expected_ids() and len(docs_ray) == len(set(docs_ray)) == N
    with Collection(embedder=embedder, path=plain, create=False) as a, \
            Collection(embedder=embedder, path=on_ray, create=False) as b:
        for query in QUERIES:
            ha, hb = a.search(query, 10), b.search(query, 10)
            assert [h.id for h in ha] == [h.id for h in hb], query
            assert all(abs(x.score - y.score) < 1e-4 for x, y in zip(ha, hb, strict=True))
            assert [h.metadata for h in ha] == [h.metadata for h in hb]
    code, out, err = index_in_process(embedder, monkeypatch, capsys, on_ray)(
        str(docs), "--ray", "--workers", "2", "--batch-size", "4")
    assert code == 0 and "Indexed 0 documents" in out and f"unchanged (already stored, " \
        f"skipped): {N}" in out, out
    record("index --ray --workers 2 (embedded store) against a plain index",
           f"same ids and top-10 for {len(QUERIES)} queries; rerun embeds nothing", N,
           len(ids_ray))


def test_driver_sigkilled_mid_ingest_then_rerun(cluster: str, embedder: Embedder, docs: Path,
                                                tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, str(CHILD), cluster, str(docs), store], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    interrupt_when(proc, signal.SIGKILL,
                   started=lambda: sum(line.startswith("stored") for line in lines) >= 2,
                   unfinished=lambda: not any(line.startswith("done") for line in lines))
    proc.wait(timeout=60)
    reader.join(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    before = int(next(x for x in reversed(lines) if x.startswith("stored")).split()[1])
    assert 0 < before < N
    report = index_on_ray(str(docs), location=Location(path=store), embedder=embedder,
                          workers=2, batch_size=4)
    ids, doc_ids = stored(store)
    assert ids == expected_ids() and len(doc_ids) == len(set(doc_ids)) == N
    assert report.upsert.unchanged >= before and report.upsert.written == N - \
        report.upsert.unchanged and report.snapshot >= before
    record("SIGKILL of the Ray driver (the embedded store's writer) mid-ingest, then rerun",
           f"{before} stored before the kill skipped by the rerun, the rest written", N,
           len(ids))


def test_a_worker_killed_mid_batch_leaves_no_duplicate(cluster: str, embedder: Embedder,
                                                       tmp_path: Path) -> None:
    store, marker = str(tmp_path / "store"), tmp_path / "killed"
    records = ray.data.from_items([document(i) for i in range(N)], override_num_blocks=10)
    report = index_on_ray(records, location=Location(path=store), embedder=embedder,
                          workers=2, batch_size=4, probe=kill_once(marker, "staged"))
    ids, doc_ids = stored(store)
    assert marker.exists()  # a worker died with a staged batch: Ray restarted it, ran it again
    assert ids == expected_ids() and len(doc_ids) == len(set(doc_ids)) == N
    assert report.upsert.written == N and report.points == N
    record("a Ray worker SIGKILLed mid-batch (embedded store: staged, not handed back)",
           "Ray restarted it and ran the batch again; stored once", N, len(ids))


def test_a_bad_line_stops_it_after_what_came_before(cluster: str, embedder: Embedder,
                                                    docs: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lines = docs.read_text().splitlines(keepends=True)[:20]
    bad = 14  # its line number
    lines.insert(bad - 1, "{not json\n")
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(lines))
    store = str(tmp_path / "store")
    invoke = index_in_process(embedder, monkeypatch, capsys, store)
    code, _, err = invoke(str(path), "--ray", "--batch-size", "4")
    assert code == 1 and f"bad.jsonl:{bad}: not valid JSON" in err, err
    assert err.strip().count("\n") == 0 and "Rerun" not in err  # fix the line, then rerun
    ids, _ = stored(store)
    assert ids == {point_id(f"r{i}") for i in range(bad - 1)}  # exactly what came before it
    code, out, err = invoke(str(path), "--ray", "--batch-size", "4", "--skip-invalid")
    assert code == 0 and "skipped invalid lines: 1" in out, out
    assert f"Indexed {20 - (bad - 1)} documents" in out, out
    ids, _ = stored(store)
    assert ids == expected_ids(20)
    record("index --ray: a bad JSONL line at line 14 of 20", "one line naming FILE:14; the "
           "13 before it stored, no more; --skip-invalid then stores the rest", 13 + 7, len(ids))


def test_workers_write_to_a_server_through_faults(cluster: str, embedder: Embedder,
                                                  docs: Path, tmp_path: Path) -> None:
    server = LoopbackFaults([("status", 503), ("drop",), ("status", 502)])
    marker = tmp_path / "killed"
    with server.running():
        report = index_on_ray(str(docs), location=Location(url=server.url), embedder=embedder,
                              workers=2, batch_size=4, retry_policy=FAST,
                              probe=kill_once(marker, "stored"))
    expected = expected_ids()
    upserts = [s.ids for s in server.upserts]
    assert marker.exists() and report.direct
    assert set(server.acked) == expected and all(set(ids) <= expected for ids in upserts)
    # a refused or dropped write is sent again with the same ids
    failed = upserts[:3]
    assert all(any(later == ids for later in upserts[3:]) for ids in failed)
    # the worker killed after its write: Ray ran its batch again, the same ids written twice
    twice = [pid for pid, n in Counter(server.acked).items() if n > 1]
    assert twice
    record("Ray workers writing to a server: 503, dropped connection, 502, and a worker "
           "SIGKILLed after its write", "retried with the same ids; the killed worker's batch "
           f"written again under the same {len(twice)} ids", N, len(set(server.acked)))


def test_the_ray_door_refuses_what_it_cannot_read(docs: Path, tmp_path: Path,
                                                  embedder: Embedder,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    invoke = index_in_process(embedder, monkeypatch, capsys, str(tmp_path / "s"))
    csv = tmp_path / "d.csv"
    csv.write_text("text\nhello\n")
    for args, says in (([str(tmp_path)], "is a folder"), ([str(csv)], "JSONL files"),
                       ([str(docs), "--sync"], "without --ray")):
        code, _, err = invoke(*args, "--ray")
        assert code == 1 and says in err and err.strip().count("\n") == 0, err
