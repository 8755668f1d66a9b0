"""Embedding on Ray (the extra ``ray``): `index_on_ray` runs the collection's own write path
in a Ray Data actor pool, one model a worker (CPUs, or ``gpus_per_worker`` a worker).

The driver (this process) opens the collection where it lives (created, or validated against
its fingerprint: models are never mixed) and hands each worker a `worker.Recipe` of it. Ray
Data reads the input (JSONL files, or text files of one document a line: `lines.Lines`; or any
`ray.data.Dataset` of records) and streams batches through the pool; each worker checks its
documents, cuts their windows, triages them against what is stored, embeds and BM25-encodes
what is new (`WritePath.items`, `Run.stage`: the steps `index` runs, not a copy of them). Then:

- **a Qdrant server or cluster** (``url=``): every worker writes its batches straight there
  (`Run.store`: bounded, acknowledged, retried), and triages against the server itself;
- **the embedded store** (``path=``): it is locked to one process, so the driver is the one
  writer: workers triage against a `known.Snapshot` of it taken before they start and hand
  their staged batches back, which the driver stores in input order
  (`WritePath.write_staged`).

Point ids are deterministic (the caller's ids, else the text), and nothing counts as done
before its write is acknowledged: a Ray task retried after its worker died (Ray Data restarts
a dead worker and runs its batch again; its defaults set no bound on that), a killed driver
rerun, or a rerun of the whole ingest loses nothing and duplicates nothing, and a rerun embeds
only what is not stored yet (the triage). A repeated id within one ingest is one point: which
copy wins follows the order batches are stored in (input order, for the embedded store).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import ModuleType
from typing import Any

from minilm_qdrant import retry
from minilm_qdrant.collection import DEFAULT_COLLECTION, Collection, CollectionOptions
from minilm_qdrant.collection.known import Snapshot
from minilm_qdrant.collection.report import UpsertReport
from minilm_qdrant.collection.run import Item, Staged
from minilm_qdrant.collection.staging import StageError
from minilm_qdrant.distributed.worker import Done, Probe, Recipe, Stager
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines.location import Location
from minilm_qdrant.errors import InputError, MissingDependency
from minilm_qdrant.inputs.records import JSONL_SUFFIXES, count_lines

__all__ = ["INSTALL", "RayReport", "index_on_ray", "require_ray"]
INSTALL = 'pip install "minilm-qdrant[ray]"'
PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_HUB_CACHE",
              "SENTENCE_TRANSFORMERS_HOME", "MINILM_QDRANT_CACHE")
"""The driver's settings a worker needs to find the model as the driver did (offline too)."""
logger = logging.getLogger("minilm_qdrant")


@dataclass
class RayReport:
    """What `index_on_ray` did."""

    upsert: UpsertReport
    """The write path's report, every worker's counts added."""
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    ray: str
    """The Ray it ran on: ``local`` (started for this ingest) or the address."""
    direct: bool
    """Workers wrote straight to a server (else the driver stored what they staged)."""
    lines: int | None = None
    """Lines of the input files (None: a dataset, or files not on this machine)."""
    skipped: int = 0
    """Bad lines skipped (``skip_invalid``)."""
    refused: list[str] = field(default_factory=list)
    """Documents refused and skipped (``skip_invalid``), each with why."""
    points: int = 0
    """Points in the collection afterwards (in the tenant's scope)."""
    snapshot: int = 0
    """Points the workers triaged against from the driver's snapshot (embedded store)."""


def require_ray() -> ModuleType:
    """The ``ray`` module with Ray Data, else `MissingDependency` in one line."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependency(f"Embedding on Ray needs Ray Data: {INSTALL}") from None
    return ray


def index_on_ray(
    source: Any,
    *,
    collection: str = DEFAULT_COLLECTION,
    location: Location | None = None,
    embedder: Embedder | None = None,
    options: CollectionOptions | None = None,
    tenant: str | None = None,
    address: str | None = None,
    workers: int = 2,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float = 0.0,
    batch_size: int = 256,
    max_batch_bytes: int | None = None,
    retry_policy: retry.RetryPolicy | None = None,
    backend: str = "auto",
    skip_unchanged: bool = True,
    skip_invalid: bool = False,
    lines: bool = False,
    optimize: bool = True,
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    probe: Probe | None = None,
) -> RayReport:
    """Embed ``source`` on Ray workers into collection ``collection`` at ``location``.

    Args:
        source: JSONL files (a path or several; ``lines``: text files of one document a
            line), read by Ray (local paths, or any filesystem Ray reads: ``s3://...``); or a
            ``ray.data.Dataset`` of records (``text``, optional ``title``, ``id`` or ``_id``,
            every other column metadata; empty values left out).
        location: where the collection lives: a Qdrant server or cluster (``url``: the
            workers write to it) or an embedded store (``path``: the driver writes it);
            default ``:memory:`` (the driver's, gone afterwards). Not a caller's client:
            workers cannot be handed one.
        embedder: the model (default: the collection's own, else the default model); each
            worker loads its own copy with the same settings.
        address: the Ray cluster (``ray://HOST:10001``, ``HOST:6379``, ``auto``); default: the
            Ray this process already joined, else a new local one, shut down afterwards.
        workers: actors in the pool (each loads the model once).
        cpus_per_worker: CPUs (and model threads) of each; default: the cluster's CPUs shared
            among the workers (1 with GPUs).
        gpus_per_worker: GPUs of each (e.g. 1, or 0.5 for two workers a GPU).
        batch_size / max_batch_bytes / retry_policy / backend / skip_unchanged / skip_invalid:
            as for `Collection` and ``index``.
        on_progress / on_total: documents done (called with each batch's count) / the input's
            lines, where they can be counted.
        probe: a fault test's hook, called in the worker at named points (`worker.Probe`).

    Returns a `RayReport`; raises `IngestError` (carrying the report) where a batch fails for
    good, after storing what came before it.
    """
    ray = require_ray()
    if workers < 1 or batch_size < 1 or gpus_per_worker < 0 or \
            (cpus_per_worker is not None and cpus_per_worker <= 0):
        raise InputError("workers and batch_size must be at least 1, and cpus_per_worker and "
                         "gpus_per_worker positive")
    location = location or Location()
    if location.client is not None:
        raise InputError("index_on_ray needs where the collection lives as url= or path= "
                         "(Location): workers cannot be handed a client")
    paths, total = _paths(source, ray, lines)
    if total is not None and on_total:
        on_total(total)
    quiet, started = _quiet(), False
    try:
        started = _connect(ray, address)
        with Collection(collection, embedder, location=location, options=options,
                        tenant=tenant, batch_size=batch_size, max_batch_bytes=max_batch_bytes,
                        retry_policy=retry_policy, backend=backend) as col:
            direct = not col.engine.in_process  # a server: the workers write to it
            snapshot = Snapshot.take(col.parts) if skip_unchanged and not direct else None
            cpus = _fitted(ray, workers, cpus_per_worker, gpus_per_worker, strict=started)
            recipe = Recipe.of(col.parts, max_batch_bytes=col.max_batch_bytes,
                               server=location if direct else None,
                               threads=max(1, int(cpus)), skip_unchanged=skip_unchanged,
                               skip_invalid=skip_invalid)
            report = RayReport(UpsertReport(), workers, cpus, gpus_per_worker,
                               address or ("local" if started else "joined"), direct, total,
                               snapshot=len(snapshot) if snapshot is not None else 0)
            dataset = _dataset(ray, source, paths, batch_size, total)
            stream = dataset.map_batches(
                Stager, fn_constructor_kwargs={
                    "recipe": recipe, "probe": probe,
                    "snapshot": ray.put(snapshot) if snapshot is not None else None},
                # files: a block a call (read a batch a block); a dataset's blocks: in batches
                batch_size=None if paths else batch_size, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                num_cpus=cpus, num_gpus=gpus_per_worker or None,
                # a Ray started (or joined) here carries the environment for the whole job
                runtime_env=None if started else {"env_vars": _worker_env()})
            context = stream.context
            context.execution_options.preserve_order = not direct  # the driver stores in order
            context.enable_progress_bars = False  # the caller shows one (documents)
            dones = _received(stream, report)
            if direct:
                report.upsert = _tallied(dones, col, on_progress, optimize)
            else:
                report.upsert = col.writer().write_staged(
                    _staged(dones), on_progress=on_progress, optimize=optimize)
            report.points = col.count()
            return report
    finally:
        if started:
            ray.shutdown()
        quiet()


def _paths(source: Any, ray: ModuleType, lines: bool) -> tuple[list[str], int | None]:
    """The input files (none for a dataset) and their lines, counted where they are local."""
    if isinstance(source, ray.data.Dataset):
        return [], None
    given = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths = [os.fspath(p) for p in given]
    if not paths:
        raise InputError("no input files given")
    for path in paths:
        suffix = PurePath(path).suffix.lower()
        if suffix not in JSONL_SUFFIXES and (not lines or suffix == ".csv"):
            raise InputError(
                f"{path}: on Ray, give JSONL files (.jsonl, .ndjson, .json: one document a line) "
                "or, with lines=True (--lines), text files of one document a line; index CSV "
                "files and folders without Ray")
    local = [Path(p) for p in paths if "://" not in p]
    for path in local:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    return paths, sum(count_lines(p) for p in local) if len(local) == len(paths) else None


def _dataset(ray: ModuleType, source: Any, paths: list[str], batch_size: int,
             lines: int | None) -> Any:
    """The rows: a dataset as given, or the files' lines in blocks of at most a batch (Ray
    merges what a read yields into big blocks, and a worker's results of one block come
    back together: a batch a block keeps them flowing, a write a batch)."""
    if not paths:
        return source
    from minilm_qdrant.distributed.lines import Lines

    # reading costs next to nothing: it takes no CPU of the workers' (none is left them)
    return ray.data.read_datasource(
        Lines(paths, batch_size), num_cpus=0,
        override_num_blocks=-(-lines // batch_size) if lines else None)


def _fitted(ray: ModuleType, workers: int, cpus: float | None, gpus: float, *, strict: bool
            ) -> float:
    """Each worker's CPUs: ``cpus``, else the cluster's shared out (1 beside a GPU). A pool
    that this Ray cannot hold is refused where Ray was started here (a cluster may scale)."""
    have = ray.cluster_resources()
    cpu, gpu = float(have.get("CPU", 0)), float(have.get("GPU", 0))
    chosen = cpus or (1.0 if gpus else max(cpu, 1.0) / workers)
    if strict and (chosen * workers > cpu + 1e-6 or gpus * workers > gpu + 1e-6):
        raise InputError(
            f"this Ray has {cpu:g} CPUs and {gpu:g} GPUs: {workers} workers of {chosen:g} CPUs "
            f"and {gpus:g} GPUs do not fit; ask for fewer workers or less of each")
    if chosen * workers > cpu or gpus * workers > gpu:
        logger.warning("the Ray cluster has %g CPUs and %g GPUs now; %d workers of %g CPUs "
                       "and %g GPUs wait for more", cpu, gpu, workers, chosen, gpus)
    return chosen


def _connect(ray: ModuleType, address: str | None) -> bool:
    """Join Ray: the one this process joined already, the cluster at ``address``, or a new
    local one (``address`` None). Whether it was started here (shut down at the end)."""
    if ray.is_initialized():
        return False
    chatty = logger.isEnabledFor(logging.INFO)
    ray.init(address=address or "local", include_dashboard=False, log_to_driver=chatty,
             logging_level=logging.INFO if chatty else logging.ERROR,
             runtime_env={"env_vars": _worker_env()})
    return True


def _quiet() -> Callable[[], None]:
    """Ray Data's progress lines and notices off (the caller shows its own progress) unless
    this package logs at INFO (``-v``); returns what puts them back."""
    if logger.isEnabledFor(logging.INFO):
        return lambda: None
    loggers = [logging.getLogger(name) for name in ("ray", "ray.data")]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.ERROR)

    def restore() -> None:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)

    return restore


def _worker_env() -> dict[str, str]:
    return {"TOKENIZERS_PARALLELISM": "false",
            **{k: os.environ[k] for k in PASSED_ENV if k in os.environ}}


def _received(stream: Any, report: RayReport) -> Iterator[Done]:
    """The workers' batches as they arrive (in input order for the embedded store), their
    skipped lines and refused documents counted into ``report``."""
    for batch in stream.iter_batches(batch_size=None, batch_format="numpy"):
        for blob in batch["done"]:
            done: Done = pickle.loads(blob)
            report.skipped += done.skipped
            report.refused.extend(done.refused)
            yield done


def _staged(dones: Iterable[Done]) -> Generator[tuple[list[Item], Staged], None, None]:
    """`WritePath.write_staged`'s input: each staged batch, or `StageError` where a worker
    stopped (what came before it is stored first)."""
    for done in dones:
        if done.failure is not None:
            raise StageError(done.items, done.failure) from done.failure
        if done.staged is not None:
            yield done.staged.items, done.staged


def _tallied(dones: Iterable[Done], col: Collection, on_progress: Callable[[int], None] | None,
             optimize: bool) -> UpsertReport:
    """The workers wrote to the server: add up their reports; a worker's failure becomes the
    `IngestError` an ingest raises (`Run.stopped`)."""
    run = col.writer().run()
    for done in dones:
        run.report.add(done.counted)
        if done.failure is not None:
            stage_error = StageError(done.items, done.failure)
            stage_error.__cause__ = done.failure
            error = run.stopped(stage_error, [])
            raise error from (None if error is done.failure else done.failure)
        if on_progress and done.documents:
            on_progress(done.documents)
    if optimize and run.report.written:
        col.optimize()
    return run.report


def describe(report: RayReport) -> str:
    """One line: where it ran and on what."""
    gpus = f", {report.gpus_per_worker:g} GPU" if report.gpus_per_worker else ""
    return (f"Ray ({report.ray}): {report.workers} workers x {report.cpus_per_worker:g} CPU"
            f"{gpus}; " + ("workers wrote to the server" if report.direct
                           else "the driver wrote what they embedded"))
