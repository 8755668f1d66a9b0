"""`tune`: sentence-transformers' trainer on labelled queries behind a held-out gate; the tuned
model is first-class (every backend, the adapters, a card, its weights in the fingerprint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faults import as_from_a_terminal, interrupt_when, record

from minilm_qdrant import Collection, CollectionMismatch, Document, Embedder, MiniLMQdrantError
from minilm_qdrant.evaluation.labelled import load_labelled
from minilm_qdrant.evaluation.tune import CARD_FILE, Settings, TuneRefused, tune

pytest.importorskip("datasets", reason="the tune extra is not installed")
MODEL = "all-MiniLM-L6-v2"
PROGRAMME = Path(__file__).resolve().parents[1] / "examples" / "conference.jsonl"
FAST = Settings(epochs=1, batch_size=8)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def programme_beir(root: Path) -> Path:
    """A BEIR set from the demo programme: each session's title is a query, its abstract the
    one relevant document (36 documents, 36 judged queries)."""
    rows = [json.loads(line) for line in PROGRAMME.read_text().splitlines()]
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    (root / "queries.jsonl").write_text("".join(
        json.dumps({"_id": "q" + r["id"], "text": r["title"]}) + "\n" for r in rows))
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{r['id']}\t{r['id']}\t1\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return programme_beir(tmp_path_factory.mktemp("beir") / "programme")


@pytest.fixture(scope="module")
def tuned(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tuned") / "model"
    result = tune(data, out, model=MODEL, settings=FAST, dev_fraction=0.25)
    assert result.out == out and not result.worse
    return out


def test_held_out_queries_are_never_trained_on(data: Path, tmp_path: Path) -> None:
    labelled = load_labelled(data, dev_fraction=0.25, seed=42, workdir=tmp_path)
    assert len(labelled.dev.queries) == 9 and len(labelled.train.queries) == 27
    assert not set(labelled.dev.queries) & set(labelled.train.queries)
    again = load_labelled(data, dev_fraction=0.25, seed=42, workdir=tmp_path)
    assert again.dev.queries == labelled.dev.queries  # the draw is fixed by the seed


def test_the_tuned_model_is_first_class(tuned: Path) -> None:
    card = json.loads((tuned / CARD_FILE).read_text())
    assert card["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert card["dev_queries"] == 9 and card["train_queries"] == 27
    assert set(card["dev_ndcg@10"]["before"]) == {"dense", "hybrid"}
    assert card["settings"]["epochs"] == 1 and len(card["data_fingerprint"]) == 16
    assert "Tuned with minilm-qdrant" in (tuned / "README.md").read_text()
    assert not (tuned / ".checkpoints").exists() and not (tuned / ".staging").exists()
    texts = ["How to make vector search fast", "Prompt injection defences"]
    torch_vecs = Embedder(str(tuned), backend="torch").embed_documents(texts)
    base_vecs = Embedder(MODEL, backend="torch").embed_documents(texts)
    assert not np.allclose(torch_vecs, base_vecs, atol=1e-3)  # it did learn something
    onnx_vecs = Embedder(str(tuned), backend="onnx").embed_documents(texts)
    assert np.min(np.sum(torch_vecs * onnx_vecs, axis=1)) > 0.999
    assert "weights" in Embedder(str(tuned)).fingerprint

    from langchain_minilm import MiniLMEmbeddings
    from llama_index.embeddings.minilm import MiniLMEmbedding

    lc = MiniLMEmbeddings(model=str(tuned), backend="torch").embed_documents(texts)
    li = MiniLMEmbedding(model_name=str(tuned), backend="torch").get_text_embedding(texts[0])
    assert np.allclose(lc, torch_vecs, atol=1e-5) and np.allclose(li, torch_vecs[0], atol=1e-5)


def test_a_collection_refuses_another_tuning_in_the_same_folder(
    tuned: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    tune(data, out, model=MODEL, settings=FAST, dev_fraction=0.25)
    with Collection("talks", Embedder(str(out), backend="torch"), path=str(tmp_path / "s")) as c:
        c.upsert([Document("Vector search at scale.", {}, "a")])
    tune(data, out, model=MODEL, settings=Settings(epochs=1, batch_size=8, seed=7),
         dev_fraction=0.25, force=True)  # another tuning written to the same folder
    with pytest.raises(CollectionMismatch, match="weights="):
        Collection("talks", path=str(tmp_path / "s"))


def test_the_gate_refuses_a_worse_model_and_keeps_the_checkpoint(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    wrecked = Settings(epochs=2, batch_size=8, lr=0.5)  # a learning rate that ruins the model
    with pytest.raises(TuneRefused, match="worse than all-MiniLM-L6-v2 on the 9 held-out"):
        tune(data, out, model=MODEL, settings=wrecked, dev_fraction=0.25)
    assert not (out / "model.safetensors").exists()  # nothing written
    assert list((out / ".checkpoints").glob("*/checkpoint-*"))
    forced = tune(data, out, model=MODEL, settings=wrecked, dev_fraction=0.25, force=True)
    assert forced.resumed and forced.worse and (out / "model.safetensors").exists()


def test_jsonl_pairs_with_and_without_negatives(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in PROGRAMME.read_text().splitlines()]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(
        {"query": r["title"], "positive": r["text"],
         **({"negative": rows[(i + 1) % len(rows)]["text"]} if i % 2 else {})}) + "\n"
        for i, r in enumerate(rows)))
    result = tune(pairs, tmp_path / "out", model=MODEL, settings=FAST, dev_fraction=0.25,
                  force=True)
    assert (result.train_queries, result.dev_queries, result.pairs) == (27, 9, 27)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "positive": "p"}\n{"query": "q2"}\n')
    with pytest.raises(Exception, match=r"bad.jsonl:2: expected an object with 'query' and"):
        tune(bad, tmp_path / "out2", model=MODEL, settings=FAST)
    with pytest.raises(Exception, match="holds files that are not a tuned model"):
        tune(pairs, tmp_path, model=MODEL, settings=FAST)  # never overwrite a user's folder
    assert pairs.exists()


def test_ctrl_c_keeps_the_last_checkpoint_and_a_rerun_resumes(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    args = [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", "tune",
            str(data), "--out", str(out), "--model", MODEL, "--epochs", "3", "--batch-size",
            "4", "--dev-fraction", "0.25", "--checkpoint-seconds", "5", "--force"]
    proc = subprocess.Popen(args, env=ENV, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_from_a_terminal)

    def epochs_done() -> float:  # of the complete checkpoints (the next may be half-written)
        done = 0.0
        for state in out.glob(".checkpoints/*/checkpoint-*/trainer_state.json"):
            try:
                done = max(done, float(json.loads(state.read_text())["epoch"]))
            except (OSError, ValueError, KeyError):
                continue
        return done

    # a checkpoint is complete and training has epochs to go, checked while the child is frozen
    interrupt_when(proc, signal.SIGINT, lambda: epochs_done() > 0, lambda: epochs_done() < 3)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped by Ctrl-C: the last complete checkpoint is kept" in err.splitlines()[-1]
    assert not (out / "model.safetensors").exists()
    done = subprocess.run([*args, "--json"], env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Computing widget examples" not in done.stderr  # no progress bar off a terminal
    assert json.loads(done.stdout.splitlines()[-1])["resumed"] is True
    assert (out / "model.safetensors").exists()
    record("SIGINT during tune (after a complete checkpoint); rerun",
           "exit 130, one line, checkpoint kept; the rerun resumed from it and wrote the model",
           "resumed", "resumed")


def test_reembed_into_the_tuned_model_then_search_without_model(tuned: Path, tmp_path: Path
                                                                ) -> None:
    store = str(tmp_path / "store")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", *args,
             "--path", store], env=ENV, capture_output=True, text=True, timeout=600)

    assert cli("index", str(PROGRAMME), "--model", MODEL).returncode == 0
    done = cli("reembed", "--model", str(tuned))
    assert done.returncode == 0, done.stderr
    assert "Re-embedded 36 documents" in done.stdout and "still answers" in done.stdout
    with Collection("documents", path=store) as old:  # the old collection, untouched
        assert old.embedder.spec.name == MODEL and old.count() == 36
    swapped = cli("reembed", "--model", str(tuned), "--swap")  # a rerun: all already there
    assert swapped.returncode == 0, swapped.stderr
    assert "(0 embedded, 36 already there)" in swapped.stdout and "Swapped" in swapped.stdout
    hits = cli("search", "prompt injection attacks on LLM apps", "-k", "1", "--json")
    assert hits.returncode == 0, hits.stderr
    with Collection("documents", path=store) as new:
        assert new.embedder.fingerprint == Embedder(str(tuned)).fingerprint
        assert new.count() == 36
    assert json.loads(hits.stdout)[0]["metadata"]["track"]


def test_a_missing_extra_is_named_before_any_work(data: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "accelerate", None)  # as if the extra were not installed
    with pytest.raises(MiniLMQdrantError, match=r"the .tune. extra \(accelerate is missing\)"):
        tune(data, tmp_path / "out", model=MODEL, path=str(tmp_path / "base"))
    assert not (tmp_path / "base").exists() and not (tmp_path / "out").exists()  # nothing done
    record("tune without the 'tune' extra", "refused at once, one line naming it; nothing "
           "indexed, nothing written", 0, 0)
