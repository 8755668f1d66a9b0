"""The embedder on the real bundled weights, against the model card's reference recipe."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from minilm_qdrant import Embedder, InputError
from minilm_qdrant.models import locate

TEXTS = [
    "A short one.",
    "Qdrant stores vectors and searches them with HNSW graphs; payloads carry metadata.",
    "Sentence embeddings map text to points so that similar meanings land close together, "
    "which is what retrieval-augmented generation relies on. " * 3,
]


def reference(texts: list[str], pooling: str, normalize: bool) -> np.ndarray:
    """The model card's recipe: AutoModel + attention-masked pooling (+ L2 normalisation)."""
    path = locate("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**batch).last_hidden_state
    if pooling == "mean":
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    else:
        pooled = tokens[:, 0]
    if normalize:
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return pooled.numpy()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_mean_pooling_matches_reference(embedder: Embedder) -> None:
    ours = embedder.embed_documents(TEXTS)
    assert ours.dtype == np.float32 and ours.shape == (3, 384)
    assert cosines(ours, reference(TEXTS, "mean", True)).min() >= 0.9999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_cls_pooling_without_normalisation_matches_reference() -> None:
    cls = Embedder("all-MiniLM-L6-v2", pooling="cls", normalize=False, backend="torch")
    ours = cls.embed_documents(TEXTS)
    ref = reference(TEXTS, "cls", False)
    assert cosines(ours, ref).min() >= 0.9999
    assert np.allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(ref, axis=1), rtol=1e-3)
    assert cls.fingerprint != Embedder("all-MiniLM-L6-v2").fingerprint


def test_query_is_one_vector_equal_to_its_document_embedding(embedder: Embedder) -> None:
    q = embedder.embed_query(TEXTS[1])
    assert q.shape == (384,) and q.dtype == np.float32
    assert float(q @ embedder.embed_documents([TEXTS[1]])[0]) > 0.9999


def test_batching_does_not_change_vectors(embedder: Embedder) -> None:
    small = Embedder("all-MiniLM-L6-v2", batch_size=1)
    assert cosines(small.embed_documents(TEXTS), embedder.embed_documents(TEXTS)).min() > 0.9999


def test_long_texts_are_truncated_and_counted_once(
    embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    long = "word " * 400
    with caplog.at_level(logging.WARNING, logger="minilm_qdrant"):
        vectors = embedder.embed_documents([long, long, "short"])
    assert embedder.last_truncated == 2
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 3" in warnings[0].getMessage()
    # Truncation keeps the first 256 word pieces: the same as embedding them alone.
    assert float(vectors[0] @ embedder.embed_documents(["word " * 254])[0]) > 0.9999


@pytest.mark.parametrize("bad", [None, 3, "", "   \n"])
def test_bad_texts_are_named(embedder: Embedder, bad: object) -> None:
    with pytest.raises(InputError, match="text #1"):
        embedder.embed_documents(["fine", bad])  # type: ignore[list-item]


def test_empty_list_gives_empty_array(embedder: Embedder) -> None:
    assert embedder.embed_documents([]).shape == (0, 384)


def test_auto_chooses_per_kind_of_call() -> None:
    """`auto` (the default) runs batches and single queries each on the fastest lossless
    backend here, and the two agree: vectors of one model, never another."""
    from minilm_qdrant.backends import choose

    auto = Embedder("all-MiniLM-L6-v2")
    assert auto.backend_name == "auto"
    assert auto.resolved("batch") == choose(None, "batch") != "onnx-int8"
    assert auto.resolved("query") == choose(None, "query") in ("onnx", "torch")
    text = "HNSW graphs trade memory for recall."
    doc, query = auto.embed_documents([text])[0], auto.embed_query(text)
    assert float(doc @ query) >= 0.999  # normalised vectors of the same text
    reference = Embedder("all-MiniLM-L6-v2", backend="torch").embed_documents([text])[0]
    assert float(doc @ reference) >= 0.999 and float(query @ reference) >= 0.999


def test_the_minilm_family_runs_without_importing_transformers(tmp_path) -> None:
    """A plain BERT (all-MiniLM-L6-v2) runs on `backends.bert`, read from its safetensors:
    transformers' modelling code (~2.6 s of every ingest process) is never imported."""
    import subprocess
    import sys

    code = ("import sys; from minilm_qdrant import Embedder; "
            "v = Embedder('all-MiniLM-L6-v2', backend='torch').embed_documents(['a cat']); "
            "print(v.shape, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert out.strip() == "(1, 384) False"


def test_another_architecture_falls_back_to_transformers(tmp_path) -> None:
    """A configuration `backends.bert` does not implement (here: the tanh GELU) is run by
    transformers, and says which it ran: the vectors follow that model, not ours."""
    import json
    import shutil

    from minilm_qdrant.backends.bert import load_bert
    from minilm_qdrant.backends.pytorch import TorchBackend

    source = locate("all-MiniLM-L6-v2")
    folder = tmp_path / "gelu-new"
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_new"}))
    assert load_bert(folder) is None and load_bert(source) is not None
    spec = Embedder("all-MiniLM-L6-v2").spec
    other = TorchBackend(spec, folder)
    ours = TorchBackend(spec, source)
    assert other._hf and not ours._hf
    a = other.encode(TEXTS, 8).vectors
    b = ours.encode(TEXTS, 8).vectors
    assert float(np.min(np.sum(a * b, axis=1))) > 0.999  # close (tanh GELU),
    assert float(np.abs(a - b).max()) > 1e-4  # and not the same: transformers ran its config
