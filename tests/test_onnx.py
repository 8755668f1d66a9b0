"""The ONNX backends: local export (cached), pre-exported dirs, parity with torch, no torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faults import record

from minilm_qdrant import Collection, Document, Embedder
from minilm_qdrant.backends import token_batches
from minilm_qdrant.backends.onnx_export import INT8_FILE, exported_dir
from minilm_qdrant.errors import IngestError

TEXTS = [
    "a",
    "Insulin resistance in skeletal muscle is driven by lipid accumulation. " * 30,
    "What causes insulin resistance?",
    "HNSW graphs trade memory for recall; quantisation trades a little recall for memory.",
    "Ok",
]


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Export the bundled weights once per session into a temporary cache."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["MINILM_QDRANT_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def exported(onnx_cache: Path, embedder: Embedder) -> Path:
    return exported_dir(embedder.model_path, embedder.spec)


@pytest.fixture(scope="session")
def pre_exported(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory in the layout of rawsh/multi-qa-MiniLM-distill-onnx-L6-cos-v1: no torch."""
    target = tmp_path_factory.mktemp("pre") / "minilm-onnx"
    shutil.copytree(exported, target, ignore=shutil.ignore_patterns("onnx"))
    shutil.copy2(exported / INT8_FILE, target / "model_quantized.onnx")
    return target


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


def test_onnx_fp32_matches_torch_on_padded_batches(embedder: Embedder, exported: Path) -> None:
    ref = embedder.embed_documents(TEXTS)
    onnx = Embedder(embedder.model_name, backend="onnx")
    got = onnx.embed_documents(TEXTS)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert _cosines(got, ref).min() >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert onnx.last_truncated == 1
    assert _cosines(onnx.embed_query(TEXTS[2])[None], ref[2:3]).min() >= 0.9999


def test_onnx_int8_stays_close(embedder: Embedder, exported: Path) -> None:
    ref = embedder.embed_documents(TEXTS)
    got = Embedder(embedder.model_name, backend="onnx-int8").embed_documents(TEXTS)
    assert _cosines(got, ref).mean() >= 0.98


def test_given_int8_vectors_are_taken_and_another_spaces_refused(
        embedder: Embedder, exported: Path, tmp_path: Path) -> None:
    """int8 quantises over the whole batch: a short text's vector from a padded batch is not
    the one it gets alone (cosine ~0.98), and is still this model's; a vector of another space
    is refused in one line, nothing written, and the rerun hint says what to fix."""
    int8 = Embedder(embedder.model_name, backend="onnx-int8")
    short = TEXTS[2]
    neighbour = "Quantisation trades a little recall for memory."  # a length that shares
    batched = int8.embed_documents([short, neighbour])[0]  # its batch (padded)
    assert _cosines(batched[None], int8.embed_documents([short]))[0] < 0.999
    with Collection("given", int8, path=str(tmp_path / "store")) as col:
        assert col.upsert([Document(short, id="a")], vectors={"a": batched}).written == 1
        other = np.roll(batched, 7)  # the same numbers in another space
        with pytest.raises(IngestError, match=r"not all-MiniLM-L6-v2's .*Fix or leave out"):
            col.upsert([Document(TEXTS[3], id="b")], vectors={"b": other})
        assert col.count() == 1 and col.get(["b"]) == []


def test_export_is_cached_and_reused(embedder: Embedder, exported: Path) -> None:
    stamp = (exported / INT8_FILE).stat().st_mtime_ns
    assert exported_dir(embedder.model_path, embedder.spec) == exported
    assert (exported / INT8_FILE).stat().st_mtime_ns == stamp


def test_pre_exported_dir_runs_on_onnx(embedder: Embedder, pre_exported: Path) -> None:
    onnx = Embedder(str(pre_exported), backend="torch")
    assert onnx.spec.weights == "onnx-int8" and onnx.spec.onnx_file == "model_quantized.onnx"
    assert (onnx.spec.pooling, onnx.spec.normalize, onnx.dim) == ("mean", True, 384)
    got = onnx.embed_documents(TEXTS)
    assert _cosines(got, embedder.embed_documents(TEXTS)).mean() >= 0.98


def test_onnx_inference_runs_without_torch(pre_exported: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from minilm_qdrant.embedder import Embedder\n"
        f"v = Embedder({str(pre_exported)!r}).embed_documents(['hello', 'a longer text here'])\n"
        "assert v.shape == (2, 384) and 'torch' not in [m for m in sys.modules if sys.modules[m]]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_token_batches_sort_and_respect_budget() -> None:
    lengths = [5, 300, 7, 40, 40, 3, 256]
    batches = list(token_batches(lengths, budget=512, max_rows=4))
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))
    for rows in batches:
        longest = max(lengths[i] for i in rows)
        assert len(rows) == 1 or len(rows) * longest <= 512
        assert len(rows) <= 4
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)


def test_both_backends_report_the_same_tokens_truncation_and_padding(
    embedder: Embedder, exported: Path
) -> None:
    """One tokenisation pass gives the stats; torch and ONNX batch the same way (torch pads a
    pass to a multiple of `ALIGN`, where its CPU attention is fastest; ONNX to its longest)."""
    from tokenizers import Tokenizer

    from minilm_qdrant.backends.pytorch import ALIGN

    counter = Tokenizer.from_file(str(embedder.model_path / "tokenizer.json"))
    counter.no_truncation()
    counter.no_padding()
    lengths = [len(e.ids) for e in counter.encode_batch(TEXTS)]
    limit = embedder.spec.max_tokens
    assert max(lengths) > limit  # one text is cut
    stats = []
    for backend in ("torch", "onnx"):
        enc = Embedder(embedder.model_name, backend=backend, batch_size=2).encode_documents(
            TEXTS, warn=False)
        assert enc.truncated == 1
        assert enc.tokens == sum(min(n, limit) for n in lengths)
        stats.append((enc.truncated, enc.tokens, enc.padded))
    assert stats[0][:2] == stats[1][:2]
    cut = sorted(min(n, limit) for n in lengths)  # rows of 2, shortest first; 7 and 21 word
    assert cut == [3, 3, 7, 21, 256]  # pieces are more than an eighth apart: batches apart
    assert stats[1][2] == 2 * cut[1] + cut[2] + cut[3] + cut[4]
    aligned = [-(-n // ALIGN) * ALIGN for n in cut]
    assert stats[0][2] == 2 * aligned[1] + aligned[2] + aligned[3] + aligned[4]
    unsorted = [min(n, limit) for n in lengths]
    assert stats[1][2] < 2 * max(unsorted[:2]) + 2 * max(unsorted[2:4]) + unsorted[4]


@pytest.mark.parametrize("module", ["onnxruntime", "onnx"])
def test_a_missing_onnx_extra_is_one_line_naming_it(
        embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    from minilm_qdrant.backends import load_backend
    from minilm_qdrant.errors import MissingDependency

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    monkeypatch.setenv("MINILM_QDRANT_CACHE", str(tmp_path / "cache"))  # nothing exported yet
    extra = 'pip install "minilm-qdrant\\[onnx\\]"'
    with pytest.raises(MissingDependency, match=f"needs {module}, which is not installed: {extra}"):
        load_backend.__wrapped__("onnx-int8", embedder.spec, embedder.model_path, None)
    assert not (tmp_path / "cache").exists()  # refused before any export work
    (tmp_path / "d.jsonl").write_text('{"id": 1, "text": "hello"}\n')
    result = subprocess.run(  # the CLI, as a user without the extra sees it
        [sys.executable, "-c", f"import sys; sys.modules[{module!r}] = None; "
         "from minilm_qdrant.cli import main; main()", "index", "d.jsonl", "--path", "s",
         "--model", "all-MiniLM-L6-v2", "--backend", "onnx-int8"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "MINILM_QDRANT_CACHE": str(tmp_path / "c")})
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: the onnx-int8 backend needs {module}") or \
        result.stderr.startswith(f"error: exporting the model to ONNX needs {module}")
    assert 'pip install "minilm-qdrant[onnx]"' in result.stderr
    record(f"--backend onnx-int8 without {module} installed", "exit 1, one line naming "
           'pip install "minilm-qdrant[onnx]"', 0, 0)
