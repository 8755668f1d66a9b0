"""Secrets never leak, keys never cross the network in clear, weights never run code.

For the LangChain / LlamaIndex adapters: reuse `assert_no_secret` on your objects (repr, str,
``model_dump``/``to_json`` and errors raised through them) with ``api_key=KEY``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest
from faults import FAST, LoopbackFaults, closed_port, record
from qdrant_client import QdrantClient

from minilm_qdrant import Collection, Document, Embedder, IngestError, InputError
from minilm_qdrant.engines.client import ClientEngine, connect
from minilm_qdrant.errors import MiniLMQdrantError, ModelNotFound, QdrantError

KEY = "sk-SECRET-7f3a9c1e-do-not-leak"


def assert_no_secret(*objects: Any, key: str = KEY) -> None:
    """``key`` appears in no repr, str, pickle or JSON of the objects, nor their causes."""
    for obj in objects:
        texts = [repr(obj), str(obj)]
        if isinstance(obj, BaseException):
            cause = obj.__cause__ or obj.__context__
            while cause is not None:  # what a traceback would print
                texts += [repr(cause), str(cause)]
                cause = cause.__cause__ or cause.__context__
            texts.append(repr(pickle.loads(pickle.dumps(obj))))
            report = getattr(obj, "report", None)
            if report is not None:
                texts.append(json.dumps(dataclasses.asdict(report), default=str))
        for text in texts:
            assert key not in text, f"secret leaked in {type(obj).__name__}: {text[:200]}"


def test_api_key_is_sent_but_never_shown(
    embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = LoopbackFaults([("status", 401), ("status", 503)] * 4)
    with server.running(), pytest.warns(UserWarning, match="insecure"):
        col = Collection("docs", embedder, url=server.url, api_key=KEY, retry_policy=FAST)
        assert server.sent[0].headers.get("api-key") == KEY  # it was really used
        with pytest.raises(IngestError) as permanent:
            col.upsert([Document("first", id=1)])
        with pytest.raises(IngestError) as transient:
            col.upsert([Document("second", id=2)])
        assert_no_secret(col, col.engine, permanent.value, transient.value,
                         permanent.value.report)
    assert isinstance(permanent.value.__cause__, QdrantError)
    assert KEY not in caplog.text and KEY not in json.dumps(col.where)
    record("API key on 401 / 503-exhausted errors, repr, logs, pickle",
           "key sent in the header, shown nowhere", 0, len(server.acked))


def test_key_not_in_connection_errors() -> None:
    with pytest.raises(MiniLMQdrantError) as err:
        Collection("docs", Embedder("all-MiniLM-L6-v2"),
                   url=f"http://127.0.0.1:{closed_port()}", api_key=KEY, retry_policy=FAST)
    assert_no_secret(err.value)


def test_credentials_in_the_url_are_redacted(embedder: Embedder) -> None:
    col = Collection("docs", embedder, url=f"https://user:{KEY}@db.example:6333/?api_key={KEY}",
                     engine=ClientEngine(QdrantClient(location=":memory:")))
    assert col.where == "https://db.example:6333/"
    assert_no_secret(col, col.engine)


@pytest.mark.parametrize("url", [
    "http://10.0.0.5:6333", "http://db.example.com:6333", "db.example.com:6333",
    "http://localhost.evil.example:6333", "http://[2001:db8::1]:6333",
])
def test_key_over_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(InputError, match="Refusing to send an API key over plain http") as err:
        connect(url=url, api_key=KEY)
    assert_no_secret(err.value)
    with warnings.catch_warnings():  # explicitly allowed: built, nothing sent yet
        warnings.simplefilter("ignore")
        connect(url=url, api_key=KEY, allow_insecure=True, check_compatibility=False).close()
    record(f"API key over {url}", "refused (InputError) unless allow_insecure", 0, 0)


@pytest.mark.parametrize("url", ["https://db.example.com:6333", "http://127.0.0.1:6333",
                                 "http://localhost:6333", "http://[::1]:6333"])
def test_key_over_https_or_loopback_is_allowed(url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        connect(url=url, api_key=KEY, check_compatibility=False).close()


def test_weights_load_without_remote_code_and_from_safetensors(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the torch backend reads, captured at the call: a plain BERT's weights from its
    safetensors file alone (no code of the model's); any other model through transformers
    with ``use_safetensors`` and without remote code."""
    import json
    import shutil

    import safetensors.torch
    import transformers

    from minilm_qdrant.backends.pytorch import TorchBackend

    read: list[str] = []
    real = safetensors.torch.load_file
    monkeypatch.setattr(safetensors.torch, "load_file",
                        lambda file, *a, **k: read.append(str(file)) or real(file, *a, **k))
    seen: dict[str, Any] = {}

    def spy(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    TorchBackend(embedder.spec, embedder.model_path)  # a plain BERT: transformers not asked
    assert read == [str(embedder.model_path / "model.safetensors")] and not seen
    other = tmp_path / "other"
    shutil.copytree(embedder.model_path, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_new"}))
    with pytest.raises(RuntimeError, match="stop here"):
        TorchBackend(embedder.spec, other)
    assert seen["use_safetensors"] is True and seen["trust_remote_code"] is False


def test_pickle_weights_are_refused(embedder: Embedder, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from minilm_qdrant.backends.pytorch import TorchBackend

    monkeypatch.delenv("MINILM_QDRANT_ALLOW_PICKLE", raising=False)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelNotFound, match=r"no \.safetensors weights"):
        TorchBackend(embedder.spec, tmp_path)
    record("model folder with only pickle .bin weights", "refused before loading", 0, 0)
