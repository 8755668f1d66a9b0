"""Training through sentence-transformers' own trainer and loss (no loop of ours).

MultipleNegativesRankingLoss (in-batch negatives plus the rows' hard negative), no duplicate
texts in a batch (they would be false negatives), bf16 autocast on CPUs with native bf16,
CUDA when present. Checkpoints are written every epoch and at least once a minute (by
default), so Ctrl-C loses at most that and a rerun resumes from the last one.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minilm_qdrant.backends import native_bf16
from minilm_qdrant.errors import MiniLMQdrantError
from minilm_qdrant.errors import require as require_extra


@dataclass(frozen=True)
class Settings:
    """Hyper-parameters of a tuning (recorded in the model card)."""

    epochs: int = 3
    lr: float = 3e-5
    batch_size: int = 32
    seed: int = 42
    hard_negatives: bool = True
    """One BM25 hard negative per (query, positive) pair, besides the in-batch negatives."""
    cached: bool = False
    """CachedMultipleNegativesRankingLoss: large batches in bounded memory (GradCache)."""
    warmup_ratio: float = 0.1
    checkpoint_seconds: float = 60.0
    """A checkpoint at least this often (and after each epoch): what Ctrl-C can lose."""
    """Share of the steps over which the learning rate rises to ``lr``."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or not 0 < self.lr < 1:
            raise MiniLMQdrantError(
                f"bad tuning settings (epochs {self.epochs}, batch size {self.batch_size}, lr "
                f"{self.lr}): epochs >= 1, batch size >= 2 and 0 < lr < 1")


def require() -> None:
    """Refuse at once, in one line, where the 'tune' extra is missing (before any work)."""
    require_extra("accelerate", "datasets", message="tuning needs the 'tune' extra ({module} "
                  'is missing): pip install "minilm-qdrant[tune]"')


def train(
    base: Path, rows: list[dict[str, str]], checkpoints: Path, out: Path, settings: Settings,
) -> tuple[float, bool]:
    """Train from the model folder ``base`` on ``rows`` (anchor, positive[, negative]) and save
    the model to ``out``; resumes from the last checkpoint under ``checkpoints``. Returns the
    training seconds and whether it resumed."""
    require()
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )
    from transformers import PrinterCallback, TrainerCallback

    if not rows:
        raise MiniLMQdrantError("no training pairs: every labelled query was held out")
    cuda = torch.cuda.is_available()
    model = SentenceTransformer(str(base), device="cuda" if cuda else "cpu")
    loss: Any = (CachedMultipleNegativesRankingLoss(model, mini_batch_size=16) if settings.cached
                 else MultipleNegativesRankingLoss(model))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size, learning_rate=settings.lr,
        warmup_steps=settings.warmup_ratio, seed=settings.seed, data_seed=settings.seed,
        bf16=cuda or native_bf16(), use_cpu=not cuda,
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="epoch", save_total_limit=1,
        logging_strategy="no", report_to="none", disable_tqdm=not sys.stderr.isatty(),
        dataloader_num_workers=0,
    )

    class EveryMinute(TrainerCallback):
        """Checkpoint at least every ``checkpoint_seconds`` (epochs can be long)."""

        last = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.monotonic() - self.last >= settings.checkpoint_seconds:
                control.should_save = True
                self.last = time.monotonic()
            return control

    # Its model card draws a "Computing widget examples" bar on any stream: a terminal only.
    shown = contextlib.nullcontext() if sys.stderr.isatty() else \
        contextlib.redirect_stderr(io.StringIO())
    with shown:
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), loss=loss,
            callbacks=[EveryMinute()],
        )
    trainer.remove_callback(PrinterCallback)  # figures are ours to report
    last = last_complete(checkpoints)
    began = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - began
    model.save(str(out))
    return seconds, last is not None


def last_complete(checkpoints: Path) -> str | None:
    """The newest checkpoint written to the end (the trainer writes its state file last; a
    Ctrl-C can land mid-save); newer, half-written ones are removed."""
    def step(p: Path) -> int:
        tail = p.name.rpartition("-")[2]
        return int(tail) if tail.isdigit() else -1

    for folder in sorted(checkpoints.glob("checkpoint-*"), key=step, reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
            return str(folder)
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)
    return None
