"""What runs on a Ray worker: `Recipe` (the collection's write path, rebuilt without the
driver's engine or loaded model), `Stager` (the Ray Data actor: rows in, `Done` batches out)
and `Done` (one write batch: staged for the writer, or already stored by the worker).

A `Stager` runs the write path's own steps (`WritePath.items`: checks, windows cut on the
model's tokenizer, byte-bounded batches; `Run.stage`: dedupe, triage, embed, pool, BM25) and,
where the collection lives on a server, `Run.store` too (acknowledged, retried writes, straight
from the worker). An embedded store is locked to the driver's process: there the worker
triages against the driver's `Snapshot` of it and hands the staged batch back to be stored.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, cast

import numpy as np

from minilm_qdrant.collection.known import Snapshot
from minilm_qdrant.collection.parts import Parts
from minilm_qdrant.collection.report import UpsertReport
from minilm_qdrant.collection.run import Item, Staged
from minilm_qdrant.collection.write import WritePath
from minilm_qdrant.documents import Document
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import Engine
from minilm_qdrant.engines.location import Location
from minilm_qdrant.errors import CollectionMismatch, InputError, MiniLMQdrantError
from minilm_qdrant.inputs.records import from_record, parse_line
from minilm_qdrant.retry import RetryPolicy
from minilm_qdrant.sparse import Bm25Encoder, Bm25Settings
from minilm_qdrant.tenancy import Scope
from minilm_qdrant.windows import Windows, WindowSettings

Probe = Callable[[str], None]
"""Called in the worker at named points of a batch: ``"staged"`` (embedded, not yet handed
back or stored) and ``"stored"`` (written by the worker, not yet reported). For fault tests:
a probe that kills its process shows what a worker lost mid-batch costs."""
LINE, PATH, LINENO = "minilm_qdrant:line", "minilm_qdrant:path", "minilm_qdrant:lineno"
"""The columns of a dataset of files read a line a row (`lines.Lines`): names no dataset of
records has."""


@dataclass(frozen=True)
class SparseValues:
    """A BM25 vector as plain lists: Edge's own type does not pickle."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class Recipe:
    """What a worker needs to rebuild the write path of the collection the driver opened
    (and validated against its fingerprint): picklable, no engine, no loaded model."""

    name: str
    where: str
    model: str
    pooling: Any
    normalize: bool
    max_tokens: int
    fingerprint: dict[str, Any]
    backend: str
    device: str | None
    sparse: Bm25Settings | None
    windows: WindowSettings | None
    scope: Scope
    retry_policy: RetryPolicy
    batch_size: int
    origins: bool
    max_batch_bytes: int | None
    server: Location | None
    """Where the workers write (a Qdrant server or cluster); None: they stage batches and the
    driver stores them (an embedded store, locked to its process)."""
    threads: int
    """Threads a worker's model runs on (its CPUs)."""
    skip_unchanged: bool = True
    skip_invalid: bool = False

    @classmethod
    def of(cls, parts: Parts, *, max_batch_bytes: int | None, server: Location | None,
           threads: int, skip_unchanged: bool, skip_invalid: bool) -> Recipe:
        embedder = parts.embedder
        spec = embedder.spec
        return cls(parts.name, parts.where, embedder.model_name, spec.pooling, spec.normalize,
                   spec.max_tokens, embedder.fingerprint, embedder.backend_name,
                   embedder.device, parts.sparse.settings if parts.sparse else None,
                   parts.windows.settings if parts.windows else None, parts.scope,
                   parts.retry_policy, parts.batch_size, parts.origins, max_batch_bytes,
                   server, threads, skip_unchanged, skip_invalid)

    def parts(self, engine: Engine) -> Parts:
        """The collection's parts in this process, on ``engine``."""
        embedder = Embedder(self.model, backend=self.backend, device=self.device,
                            pooling=self.pooling, normalize=self.normalize,
                            max_tokens=self.max_tokens)
        if embedder.fingerprint != self.fingerprint:
            raise CollectionMismatch(
                f"this worker resolves model {self.model!r} to {embedder.fingerprint}, not the "
                f"collection's {self.fingerprint}: give the workers the driver's model files")
        return Parts(engine, self.name, self.where, embedder,
                     Bm25Encoder(self.sparse) if self.sparse is not None else None,
                     Windows.of(embedder, self.windows) if self.windows is not None else None,
                     self.scope, self.retry_policy, self.batch_size, self.origins)

    def use_threads(self) -> None:
        """Run the model on this worker's CPUs only (torch and onnxruntime)."""
        os.environ["MINILM_QDRANT_THREADS"] = str(self.threads)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import torch

            torch.set_num_threads(self.threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass


class Detached:
    """The engine of a worker that stages for the driver: it reaches no store (triage reads
    the driver's snapshot), so any call on it is a bug, said as one."""

    in_process = True

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a staging worker reaches no store (engine.{name} was called)")


@dataclass
class Done:
    """One write batch of a worker, as the driver receives it."""

    documents: int
    """Documents read into it (the progress)."""
    counted: UpsertReport
    """What the worker counted of it (written: where it stored the batch itself)."""
    staged: Staged | None = None
    """The staged batch, for the driver to store (None: the worker stored it)."""
    skipped: int = 0
    """Bad lines skipped (``skip_invalid``)."""
    refused: list[str] = field(default_factory=list)
    """Documents refused and skipped, each with why (``skip_invalid``)."""
    failure: MiniLMQdrantError | None = None
    """Why the worker stopped here (the rows after it were not read)."""
    items: list[Item] = field(default_factory=list)
    """The batch that failed, where one did."""


class Stager:
    """A Ray Data actor (one a worker): a batch of rows (pyarrow) in, a column ``done`` of
    pickled `Done` out, one a write batch, in order; a failure ends the batch's column."""

    def __init__(self, recipe: Recipe, snapshot: Any = None, probe: Probe | None = None
                 ) -> None:
        recipe.use_threads()
        if snapshot is not None and not isinstance(snapshot, Snapshot):  # an ObjectRef
            import ray

            snapshot = ray.get(snapshot)
        self.recipe, self.probe = recipe, probe
        engine = recipe.server.open() if recipe.server else cast(Engine, Detached())
        self.parts = recipe.parts(engine)
        self.writer = WritePath(self.parts, recipe.max_batch_bytes)
        self.refused: list[str] = []
        self.run = self.writer.run(
            skip_unchanged=recipe.skip_unchanged,
            on_refused=(lambda _, why: self.refused.append(why)) if recipe.skip_invalid
            else None,
            lookup=snapshot.lookup if snapshot is not None else None)
        self.parts.embedder.load()

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        rows: list[dict[str, Any]] = batch.to_pylist()
        self.run.seen.clear()  # ids are deterministic: a repeat in another batch overwrites
        self.skipped, done = 0, list[Done]()
        current: list[Item] = []
        try:
            for current in self.writer.items(self.documents(rows), self.run.on_refused):
                staged = self.run.stage(current)
                self.poke("staged")
                if self.recipe.server is not None:
                    self.run.store(staged)
                    self.poke("stored")
                    done.append(self.done(len(current)))
                else:
                    staged.counted, staged.sparse = self.run.report, plain(staged.sparse)
                    done.append(self.done(len(current), staged))
                current = []
        except MiniLMQdrantError as exc:
            failed = self.done(0)
            failed.failure, failed.items = exc, current
            done.append(failed)
        if self.skipped or self.refused:  # after the last batch
            done.append(self.done(0))
        return {"done": np.array([pickle.dumps(d, protocol=5) for d in done], dtype=object)}

    def done(self, documents: int, staged: Staged | None = None) -> Done:
        found = Done(documents, self.run.report, staged, self.skipped, self.refused)
        self.run.report, self.skipped, self.refused = UpsertReport(), 0, []
        return found

    def documents(self, rows: list[dict[str, Any]]) -> Iterator[Document]:
        """The rows as documents: lines of files (read as `read_documents` reads them), or
        records (fields as a JSONL line's; empty ones left out). A bad one raises, naming
        it, unless ``skip_invalid`` (then it is counted)."""
        for row in rows:
            try:
                if LINE in row and PATH in row:
                    doc = parse_line(row[LINE], PurePath(row[PATH]).suffix)
                else:
                    doc = from_record({k: v for k, v in row.items() if v is not None})
            except InputError as exc:
                if self.recipe.skip_invalid:
                    self.skipped += 1
                    continue
                where = f"{row[PATH]}:{row[LINENO]}" if LINENO in row else "a record"
                raise InputError(f"{where}: {exc}") from None
            if doc is not None:
                yield doc

    def poke(self, point: str) -> None:
        if self.probe is not None:
            self.probe(point)


def plain(sparse: list[Any] | None) -> list[Any] | None:
    """BM25 vectors as `SparseValues` (picklable)."""
    if sparse is None:
        return None
    return [SparseValues(list(v.indices), list(v.values)) for v in sparse]
