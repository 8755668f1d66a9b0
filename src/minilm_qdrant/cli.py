"""The `minilm-qdrant` command: parsing, progress bars, printing and exit codes (nothing else).

Errors print one line and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from qdrant_client import models
from tqdm import tqdm

from minilm_qdrant import eval as beir
from minilm_qdrant.collection import DEFAULT_COLLECTION, Collection
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import FUSIONS, MODES, CollectionOptions, Fusion, Mode
from minilm_qdrant.errors import MiniLMQdrantError
from minilm_qdrant.models import BUNDLED_MODEL, DEFAULT_MODEL, Pooling
from minilm_qdrant.readers import ReadStats, count_lines, read_documents

app = typer.Typer(  # plain help: rich markup would eat "[...]" and show flags as <bool>
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Embed documents with MiniLM sentence-transformers and search them in Qdrant.",
)
DEFAULT_PATH = "./qdrant_data"
_state = {"debug": False}

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
PathOpt = Annotated[
    str | None, typer.Option("--path", help="Embedded store directory.", show_default=DEFAULT_PATH)
]
UrlOpt = Annotated[
    str | None, typer.Option("--url", envvar="QDRANT_URL", help="Qdrant server or cluster URL.")
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="QDRANT_API_KEY", show_default=False, help="Qdrant API key."),
]
InsecureOpt = Annotated[
    bool, typer.Option("--allow-insecure", help="Allow an API key over plain http.")
]
BackendOpt = Annotated[
    str, typer.Option(help="auto: the fastest lossless backend here, per kind of call (batches: "
                      "torch-bf16 on CPUs with native bf16, else onnx; one query: onnx; CUDA: "
                      "torch); or torch, torch-bf16, onnx, onnx-int8 (lossy). See README.")
]
PoolingOpt = Annotated[
    str | None, typer.Option("--pooling", help="Override the model's pooling (mean or cls).")
]
ModeOpt = Annotated[str | None, typer.Option(
    "--mode", help="hybrid, dense or sparse.",
    show_default="hybrid where the collection has BM25 sparse vectors, else dense")]
FusionOpt = Annotated[str, typer.Option(
    "--fusion", help="How hybrid fuses dense and BM25 in Qdrant: dbsf or rrf.")]
PrefetchOpt = Annotated[int, typer.Option(
    "--prefetch", min=1, help="Candidates from each side before fusion or MMR.")]
WhereOpt = Annotated[list[str] | None, typer.Option(
    "--where", help="Metadata filter KEY=VALUE (repeatable, all must match; VALUE as JSON "
    "when it parses: 3, true, \"x\").")]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    if not verbose:
        _quiet_libraries()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except MiniLMQdrantError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that stores close as for Ctrl-C."""


@contextmanager
def _clean_stop(done: Callable[[], str]) -> Iterator[None]:
    """On Ctrl-C (SIGINT) or SIGTERM: stop taking batches, let the stores close (lock released,
    WAL flushed), say in one line what is stored and that a rerun finishes it, exit 130 / 143.
    A second signal while stopping exits at once."""

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except (KeyboardInterrupt, _Terminated) as exc:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        term = isinstance(exc, _Terminated)
        typer.echo(f"stopped by {'SIGTERM' if term else 'Ctrl-C'}: {done()}; the store is closed "
                   "and consistent: rerun the same command to finish (what is stored is skipped, "
                   "not embedded again).", err=True)
        raise typer.Exit(143 if term else 130) from None
    finally:
        if signal.getsignal(signal.SIGTERM) is terminate:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn any unexpected failure into one line (our own errors are handled by `main`)."""
    try:
        yield
    except (MiniLMQdrantError, typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


def _open(
    collection: str, path: str | None, url: str | None, api_key: str | None,
    allow_insecure: bool, embedder: Embedder | None, create: bool, backend: str = "auto",
    options: CollectionOptions | None = None,
) -> Collection:
    if url and path:
        raise typer.BadParameter("give either --path or --url, not both")
    return Collection(
        collection, embedder, path=None if url else (path or DEFAULT_PATH), url=url,
        api_key=api_key, allow_insecure=allow_insecure, create=create, backend=backend,
        options=options,
    )


def _mode(mode: str | None) -> Mode | None:
    if mode is not None and mode not in MODES:
        raise typer.BadParameter(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _fusion(fusion: str) -> Fusion:
    if fusion not in FUSIONS:
        raise typer.BadParameter(f"--fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    return fusion


def _where(where: list[str] | None) -> models.Filter | None:
    """``KEY=VALUE`` options -> a filter on ``metadata.KEY`` (all must match)."""
    if not where:
        return None
    must: list[Any] = []
    for item in where:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--where takes KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if not isinstance(value, (str, int, bool)):
            raise typer.BadParameter(
                f"--where {item!r}: VALUE must be a string, an integer or true/false")
        must.append(models.FieldCondition(
            key=f"metadata.{key.strip()}", match=models.MatchValue(value=value)))
    return models.Filter(must=must)


def _embedder(
    model: str | None, pooling: str | None, backend: str = "auto", batch_size: int = 256
) -> Embedder | None:
    if model is None and pooling is None:
        return None
    if pooling not in (None, "mean", "cls"):
        raise typer.BadParameter(f"--pooling must be mean or cls, not {pooling!r}")
    chosen: Pooling | None = pooling  # type: ignore[assignment]
    return Embedder(model or DEFAULT_MODEL, pooling=chosen, backend=backend, batch_size=batch_size)


def _progress(total: int | None, unit: str, desc: str) -> tqdm[Any]:
    return tqdm(total=total, unit=unit, desc=desc, disable=not sys.stderr.isatty(), leave=False)


@app.command()
def index(
    file: Annotated[Path, typer.Argument(help="JSONL, CSV (text column) or text file.")],
    collection: CollectionOpt = DEFAULT_COLLECTION,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    allow_insecure: InsecureOpt = False,
    model: Annotated[str | None, typer.Option(
        help="Model.", show_default=f"the collection's own; {DEFAULT_MODEL} for a new one",
    )] = None,
    pooling: PoolingOpt = None,
    backend: BackendOpt = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per upsert.")] = 256,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip and count bad lines.")
    ] = False,
    dense_only: Annotated[bool, typer.Option(
        "--dense-only", help="A new collection without BM25 sparse vectors (no hybrid).")
    ] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Embed every document, even those already stored unchanged.")
    ] = False,
) -> None:
    """Embed a file's documents and store them (rerunning it never duplicates)."""
    with _errors():
        # no --model: the collection's own model, or the registry default for a new collection
        embedder = _embedder(model, pooling, backend)
        stats = ReadStats()
        docs = read_documents(file, skip_invalid=skip_invalid, stats=stats)
        total = count_lines(file) if file.is_file() else None
        options = CollectionOptions(sparse=None) if dense_only else None
        acked = [0]

        def progress(n: int) -> None:
            acked[0] += n
            bar.update(n)

        def stopped() -> str:
            return f"{acked[0]} documents of {file} were processed and are stored"

        with _clean_stop(stopped), _open(
            collection, path, url, api_key, allow_insecure, embedder, True, backend, options
        ) as col, \
                _progress(total, "doc", "indexing") as bar:
            report = col.upsert(docs, on_progress=progress, skip_unchanged=not force)
            points = col.count()
        typer.echo(
            f"Indexed {report.written} documents from {file} into {collection!r} "
            f"({col.where}) with {col.embedder.spec.name} in {report.seconds:.1f}s; "
            f"collection now holds {points} points; {report.tokens:,} tokens embedded, "
            f"padding {report.padding_waste:.1%}."
        )
        extras = {
            "unchanged (already stored, skipped)": report.unchanged,
            "skipped invalid lines": stats.skipped, "duplicate ids (last kept)": report.duplicates,
            "truncated to the token limit": report.truncated, "retries": report.retries,
        }
        for label, n in extras.items():
            if n:
                typer.echo(f"  {label}: {n}")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt = DEFAULT_COLLECTION,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    allow_insecure: InsecureOpt = False,
    model: Annotated[
        str | None, typer.Option(help="Model.", show_default="the one that filled the collection")
    ] = None,
    pooling: PoolingOpt = None,
    backend: BackendOpt = "auto",
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many hits.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    exact: Annotated[bool, typer.Option("--exact", help="Exact search (no HNSW).")] = False,
    hnsw_ef: Annotated[
        int | None, typer.Option("--hnsw-ef", min=1, help="HNSW search breadth.")
    ] = None,
    mode: ModeOpt = None,
    fusion: FusionOpt = "dbsf",
    prefetch: PrefetchOpt = 100,
    diversity: Annotated[float, typer.Option(
        "--diversity", min=0.0, max=1.0, help="MMR in Qdrant: 0 relevance only, 1 diversity.")
    ] = 0.0,
    where: WhereOpt = None,
) -> None:
    """Search a collection (hybrid by default); higher score = closer (see README)."""
    with _errors():
        embedder = _embedder(model, pooling, backend)
        with _open(
            collection, path, url, api_key, allow_insecure, embedder, False, backend
        ) as col:
            hits = col.search(
                query, k, mode=_mode(mode), fusion=_fusion(fusion), prefetch=prefetch,
                diversity=diversity, query_filter=_where(where), exact=exact, hnsw_ef=hnsw_ef,
            )
        if as_json:
            typer.echo(json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=2))
            return
        for rank, hit in enumerate(hits, start=1):
            typer.echo(f"{rank:>2}. [{hit.score:.4f}] {hit.id}: {_shorten(hit.text)}")


@app.command("eval")
def eval_(
    directory: Annotated[Path, typer.Argument(help="BEIR data set directory.")],
    split: Annotated[str, typer.Option(help="Qrels split (qrels/SPLIT.tsv).")] = "test",
    model: Annotated[str, typer.Option(help="Model.")] = DEFAULT_MODEL,
    backend: BackendOpt = "auto",
    path: Annotated[str | None, typer.Option(
        help="Embedded store directory to index into or reuse.",
        show_default="a temporary one")
    ] = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    allow_insecure: InsecureOpt = False,
    collection: Annotated[str | None, typer.Option(
        "--collection", "-c", help="Collection name.", show_default="beir-DIRNAME")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Cutoff of NDCG, Recall and MRR.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mode: ModeOpt = None,
    fusion: FusionOpt = "dbsf",
    prefetch: PrefetchOpt = 100,
) -> None:
    """Measure retrieval quality on a BEIR data set through the real index and search path."""
    with _errors():
        if url and path:
            raise typer.BadParameter("give either --path or --url, not both")
        data = beir.load_beir(directory, split)
        for label, n in data.problems.items():
            typer.echo(f"warning: {label}: {n}", err=True)
        name = collection or "beir-" + "".join(
            c if c.isalnum() or c in "-_" else "_" for c in directory.resolve().name)
        embedder = Embedder(model, backend=backend)
        with tempfile.TemporaryDirectory() as tmp, Collection(
            name, embedder, path=None if url else (path or tmp), url=url, api_key=api_key,
            allow_insecure=allow_insecure,
        ) as col, \
                _progress(len(data.doc_ids), "doc", "indexing") as index_bar, \
                _progress(len(data.queries), "query", "querying") as query_bar:
            result = beir.evaluate(
                col, data, k, index_bar.update, query_bar.update, mode=_mode(mode),
                fusion=_fusion(fusion), prefetch=prefetch,
            )
        if result.truncated:
            typer.echo(f"warning: {result.truncated} documents were truncated to the model's "
                       f"limit of {embedder.spec.max_tokens} word pieces", err=True)
        figures = result.as_dict()
        if as_json:
            typer.echo(json.dumps(figures))
            return
        reused = " (reused the existing index)" if result.reused_index else ""
        typer.echo(f"{directory} split {split!r}: {result.queries} queries, "
                   f"{len(data.doc_ids)} documents, {result.model} ({result.backend}), "
                   f"{result.mode} search{reused}")
        for key, value in figures.items():
            if key not in ("model", "backend", "queries", "mode"):
                typer.echo(f"  {key:<14} {value}")


@app.command()
def delete(
    ids: Annotated[list[str] | None, typer.Argument(help="Document ids to delete.")] = None,
    where: WhereOpt = None,
    collection: CollectionOpt = DEFAULT_COLLECTION,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    allow_insecure: InsecureOpt = False,
) -> None:
    """Delete documents by id, or by metadata (--where KEY=VALUE); nothing is re-embedded."""
    with _errors():
        flt = _where(where)
        if bool(ids) == (flt is not None):
            raise typer.BadParameter("give document ids or --where KEY=VALUE (one of them)")
        with _open(collection, path, url, api_key, allow_insecure, None, False) as col:
            deleted = col.delete(flt if flt is not None else ids or [])
            left = col.count()
        typer.echo(f"Deleted {deleted} documents from {collection!r} ({col.where}); "
                   f"{left} left.")


@app.command("add-sparse")
def add_sparse(
    collection: CollectionOpt = DEFAULT_COLLECTION,
    path: PathOpt = None,
    language: Annotated[str, typer.Option(help="BM25 stopwords and stemmer.")] = "english",
) -> None:
    """Give a dense-only collection BM25 sparse vectors from its stored text (hybrid search;
    nothing is re-embedded; embedded store)."""
    from minilm_qdrant.sparse import Bm25Settings

    with _errors(), _open(collection, path, None, None, False, None, False) as col, \
            _progress(None, "point", "encoding") as bar:
        n = col.add_sparse(Bm25Settings(language=language), on_progress=bar.update)
        typer.echo(f"Added BM25 sparse vectors to {n} points of {collection!r} ({col.where}); "
                   "searches are now hybrid by default.")


@app.command()
def push(
    collection: CollectionOpt = DEFAULT_COLLECTION,
    path: PathOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    allow_insecure: InsecureOpt = False,
    to_collection: Annotated[
        str | None, typer.Option("--to-collection", help="Target name.", show_default="the same")
    ] = None,
    to_path: Annotated[
        str | None, typer.Option("--to-path", help="Target qdrant-client local store (tests).")
    ] = None,
    shards: Annotated[int | None, typer.Option(min=1, help="Shards of a new target.")] = None,
    replicas: Annotated[int | None, typer.Option(min=1, help="Replicas of a new target.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Points per request.")] = 256,
) -> None:
    """Copy a collection from the embedded store to a Qdrant server (no re-embedding)."""
    from minilm_qdrant.push import push as run_push

    with _errors():
        if (url is None) == (to_path is None):
            raise typer.BadParameter("give the target as --url URL or --to-path DIR")
        options = CollectionOptions(shard_number=shards, replication_factor=replicas)
        with _progress(None, "point", "pushing") as bar:
            report = run_push(
                path=path or DEFAULT_PATH, collection=collection, url=url, api_key=api_key,
                to_path=to_path, to_collection=to_collection, options=options,
                batch_size=batch_size, allow_insecure=allow_insecure, on_progress=bar.update,
            )
        indexes = ", payload indexes: " + ", ".join(report.indexes) if report.indexes else ""
        typer.echo(
            f"Pushed {report.copied} points from {report.source} to {report.target} in "
            f"{report.batches} batches, {report.seconds:.1f}s"
            f"{' (created the target)' if report.created else ''}"
            f"{indexes}"
            f"{f', {report.retries} retries' if report.retries else ''}."
        )
        verdict = "match" if report.target_count == report.source_count else "DIFFER"
        typer.echo(
            f"Counts: source {report.source_count}, target {report.target_count}: {verdict}."
        )
        if not report.ok:
            raise typer.Exit(1)


@app.command()
def demo(
    path: Annotated[
        str | None, typer.Option(help="Keep the store here.", show_default="a temporary directory")
    ] = None,
) -> None:
    """Index a conference programme and show the 3 sessions closest to a few questions."""
    with _errors():
        try:
            embedder = Embedder(DEFAULT_MODEL)
            embedder.load()
            note = f"default model {DEFAULT_MODEL}"
        except MiniLMQdrantError as exc:
            embedder = Embedder(BUNDLED_MODEL)
            note = (
                f"bundled {BUNDLED_MODEL}, because the default {DEFAULT_MODEL} is not available "
                f"here ({type(exc).__name__})"
            )
        typer.echo(f"Model: {note}")
        programme = _programme_file()
        with tempfile.TemporaryDirectory() as tmp, Collection(
            "conference", embedder, path=path or tmp
        ) as col:
            report = col.upsert(read_documents(programme))
            typer.echo(f"Indexed {report.written} sessions from {programme.name} "
                       f"in {report.seconds:.1f}s.\n")
            for question in DEMO_QUESTIONS:
                typer.echo(f"Q: {question}")
                for hit in col.search(question, 3):
                    meta = hit.metadata
                    typer.echo(
                        f"   {hit.score:.3f}  {meta.get('title')} ({meta.get('speaker')}, "
                        f"day {meta.get('day')}, {meta.get('room')})"
                    )
                typer.echo("")


DEMO_QUESTIONS = (
    "How can I make vector search faster and use less memory?",
    "How do I stop users from hijacking my LLM app with malicious prompts?",
    "How should I measure whether my retrieval system returns the right documents?",
    "Running transformer models cheaply on CPUs",
)


def _programme_file() -> Path:
    for candidate in (
        Path(__file__).parent / "conference.jsonl",  # installed wheel
        Path(__file__).resolve().parents[2] / "examples" / "conference.jsonl",  # source tree
    ):
        if candidate.is_file():
            return candidate
    raise MiniLMQdrantError("the demo's conference.jsonl is missing from this installation")


def _shorten(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass
