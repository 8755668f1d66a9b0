"""`tune`: adapt a model to a corpus from labelled queries, behind a held-out gate.

The corpus is indexed once with the base model (dense + BM25); hard negatives are mined with
BM25 in Qdrant; sentence-transformers' own trainer runs MultipleNegativesRankingLoss (in-batch
plus one hard negative per pair; bf16 autocast on CPUs with native bf16, CUDA when present),
checkpointing as it goes so that a rerun after Ctrl-C resumes. The held-out queries are scored
before and after through `eval`'s code; a model worse than the base on them is not written
unless ``force``. Needs the ``tune`` extra (``pip install "minilm-qdrant[tune]"``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from minilm_qdrant import evaluation as beir
from minilm_qdrant.collection import Collection
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import Mode
from minilm_qdrant.errors import InputError, MiniLMQdrantError
from minilm_qdrant.evaluation.labelled import Labelled, load_labelled, training_rows
from minilm_qdrant.evaluation.training import Settings, require, train

__all__ = ["Settings", "TuneRefused", "TuneResult", "tune"]
CARD_FILE = "minilm_qdrant_tune.json"


class TuneRefused(MiniLMQdrantError):
    """The tuned model scored worse than the base on the held-out queries (not written)."""



@dataclass
class TuneResult:
    """What a tuning did: where the model went and the held-out figures before and after."""

    out: Path | None
    base_model: str
    train_queries: int
    dev_queries: int
    pairs: int
    seconds: float
    """Training time alone (indexing and scoring excluded)."""
    before: dict[str, float] = field(default_factory=dict)
    """Held-out NDCG@10 of the base model, by mode (``dense``, ``hybrid``)."""
    after: dict[str, float] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    data_fingerprint: str = ""
    resumed: bool = False

    @property
    def worse(self) -> bool:
        """Some mode (dense, hybrid) scores lower on the held-out queries than the base."""
        return any(self.after[m] < self.before[m] for m in self.before)

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["out"] = str(self.out) if self.out else None
        return found


def tune(
    data: str | Path, out: str | Path, *, model: str, settings: Settings | None = None,
    split: str = "train", dev_fraction: float = 0.2, dev_split: str | None = None,
    path: str | None = None, backend: str = "auto", force: bool = False,
    on_index: Callable[[int], None] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> TuneResult:
    """Tune ``model`` on ``data`` (a BEIR directory or JSONL pairs) and write it to ``out``.

    ``path`` keeps the base model's index of the corpus there (reused by a rerun), else a
    temporary store. Raises `TuneRefused` (nothing written; the checkpoints kept, so a rerun
    with ``force`` does not train again) when the held-out figures fall.
    """
    require()  # the extra first: nothing is indexed or scored for a tuning that cannot run
    settings = settings or Settings()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    foreign = [p.name for p in out.iterdir() if p.name not in (".checkpoints", ".staging")] \
        if out.is_dir() and not (out / CARD_FILE).exists() else []
    if foreign:  # never replace files that a tuning did not write
        raise InputError(f"--out {out}: holds files that are not a tuned model ({foreign[0]}, "
                         "...): choose a new or empty folder")
    base = Embedder(model, backend=backend)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        labelled = load_labelled(data, split=split, dev_fraction=dev_fraction,
                                 dev_split=dev_split, seed=settings.seed, workdir=Path(tmp))
        model_key = hashlib.sha256(json.dumps(base.fingerprint, sort_keys=True).encode())
        name = f"tune-{labelled.fingerprint}-{model_key.hexdigest()[:8]}"  # data and base model
        with Collection(name, base, path=path or str(Path(tmp) / "base")) as col:
            log(f"indexing the corpus ({len(labelled.train.doc_ids)} documents) with {model}")
            beir.ensure_indexed(col, labelled.train, on_index)
            rows = training_rows(col, labelled, settings.hard_negatives)
            before = _scores(col, labelled)
        log(f"held-out before: {_show(before)}; training on {len(rows)} pairs from "
            f"{len(labelled.train.queries)} queries")
        key = _run_key(base, labelled, settings)
        checkpoints = out / ".checkpoints" / key
        staging = out / ".staging"
        trained, resumed = train(base.model_path, rows, checkpoints, staging, settings)
        tuned = Embedder(str(staging), backend=backend)
        with Collection(name, tuned, path=str(Path(tmp) / "tuned")) as col:
            log("indexing the corpus with the tuned model")
            beir.ensure_indexed(col, labelled.train, on_index)
            after = _scores(col, labelled)
    result = TuneResult(
        None, base.spec.name, len(labelled.train.queries), len(labelled.dev.queries), len(rows),
        trained, before, after, settings, labelled.fingerprint, resumed)
    log(f"held-out after: {_show(after)} ({time.perf_counter() - began:.0f}s in all)")
    if result.worse and not force:
        shutil.rmtree(staging, ignore_errors=True)
        raise TuneRefused(
            f"the tuned model is worse than {base.spec.name} on the {result.dev_queries} "
            f"held-out queries (NDCG@10 before {_show(before)}, after {_show(after)}); nothing "
            "written. Try other --epochs/--lr or more labelled queries, or --force to write it "
            "anyway (training is not repeated: its checkpoint is kept).")
    _publish(staging, out, result, labelled, base)
    result.out = out
    return result


def _scores(col: Collection, labelled: Labelled) -> dict[str, float]:
    modes: list[Mode] = ["dense", "hybrid"] if col.sparse is not None else ["dense"]
    return {m: round(beir.evaluate(col, labelled.dev, mode=m).scores["ndcg@10"], 4)
            for m in modes}


def _show(scores: dict[str, float]) -> str:
    return ", ".join(f"{m} {v:.4f}" for m, v in scores.items())


def _run_key(base: Embedder, labelled: Labelled, settings: Settings) -> str:
    """Checkpoints belong to one base model, data set and settings: another run never
    resumes from them."""
    shaping = {k: v for k, v in asdict(settings).items() if k != "checkpoint_seconds"}
    blob = json.dumps([base.fingerprint, labelled.fingerprint, shaping], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _publish(staging: Path, out: Path, result: TuneResult, labelled: Labelled,
             base: Embedder) -> None:
    """Move the model into ``out`` (replacing a previous one), add the card, drop the
    checkpoints."""
    card = {
        "base_model": base.spec.hub_id, "base_fingerprint": base.fingerprint,
        "data": str(labelled.train.root), "data_fingerprint": labelled.fingerprint,
        "train_queries": result.train_queries, "dev_queries": result.dev_queries,
        "pairs": result.pairs, "settings": asdict(result.settings),
        "train_seconds": round(result.seconds, 1),
        "dev_ndcg@10": {"before": result.before, "after": result.after},
        "written_by": f"minilm-qdrant tune, python {sys.version.split()[0]}",
    }
    (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    readme = staging / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    readme.write_text(text + _card_markdown(card), encoding="utf-8")
    for old in out.iterdir():
        if old.name not in (".staging", ".checkpoints"):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for new in staging.iterdir():
        new.rename(out / new.name)
    staging.rmdir()
    shutil.rmtree(out / ".checkpoints", ignore_errors=True)


def _card_markdown(card: dict[str, Any]) -> str:
    s = card["settings"]
    rows = "\n".join(f"| {mode} | {card['dev_ndcg@10']['before'][mode]:.4f} | "
                     f"{card['dev_ndcg@10']['after'][mode]:.4f} |"
                     for mode in card["dev_ndcg@10"]["before"])
    return (
        f"\n\n## Tuned with minilm-qdrant\n\nBase model: `{card['base_model']}`. Data: "
        f"`{card['data']}` (fingerprint `{card['data_fingerprint']}`), "
        f"{card['train_queries']} training queries ({card['pairs']} pairs), "
        f"{card['dev_queries']} held out. Settings: {s['epochs']} epochs, lr {s['lr']}, batch "
        f"{s['batch_size']}, seed {s['seed']}, hard negatives: {s['hard_negatives']}. Training "
        f"took {card['train_seconds']} s.\n\nHeld-out NDCG@10:\n\n| search | base | tuned |\n"
        f"|---|---|---|\n{rows}\n"
    )
