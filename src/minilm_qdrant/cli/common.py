"""What every command shares: the app, its options, one-line errors, clean stops, opening a
collection, progress bars."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from qdrant_client import models
from tqdm import tqdm

from minilm_qdrant.collection import Collection, CollectionOptions
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import FUSIONS, MODES, QUANTIZATIONS, Fusion, Mode, Quantization
from minilm_qdrant.engines.location import Location
from minilm_qdrant.errors import MiniLMQdrantError
from minilm_qdrant.models import DEFAULT_MODEL, Pooling
from minilm_qdrant.windows import COVERAGES, Coverage, WindowSettings

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
TenantOpt = Annotated[str | None, typer.Option(
    "--tenant", help="Confine everything to this tenant's documents (a tenanted collection; "
    "a new one is made tenanted).")]
ReadTenantOpt = Annotated[str | None, typer.Option(
    "--tenant", help="Confine everything to this tenant's documents (a tenanted collection).")]
QuantizationOpt = Annotated[str, typer.Option(
    "--quantization", help="A new collection's vectors: none, int8 (a 4x smaller copy in RAM) "
    "or binary (16x smaller); the originals on disk, every search rescored on them. Not in "
    "qdrant-client's local mode (recorded, searched exactly).")]
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


RESUMES = ("the store is closed and consistent: rerun the same command to finish (what is "
           "stored is skipped, not embedded again)")


@contextmanager
def clean_stop(done: Callable[[], str], then: Callable[[], str] = lambda: RESUMES
               ) -> Iterator[None]:
    """On Ctrl-C (SIGINT) or SIGTERM: stop taking batches, let the stores close (lock released,
    WAL flushed), say in one line what is stored (``done()``) and how a rerun finishes it
    (``then()``), exit 130 / 143. A second signal while stopping exits at once."""

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except (KeyboardInterrupt, _Terminated) as exc:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        term = isinstance(exc, _Terminated)
        typer.echo(f"stopped by {'SIGTERM' if term else 'Ctrl-C'}: {done()}; {then()}.",
                   err=True)
        raise typer.Exit(143 if term else 130) from None
    finally:
        if signal.getsignal(signal.SIGTERM) is terminate:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn any unexpected failure into one line (our own errors are handled by `main`)."""
    try:
        yield
    except (MiniLMQdrantError, typer.Exit, KeyboardInterrupt):
        raise
    except typer.BadParameter as exc:  # a usage error found after parsing: one line
        typer.echo(f"error: {exc.format_message()}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


def location_of(path: str | None, url: str | None, api_key: str | None,
                allow_insecure: bool, default_path: str | None = DEFAULT_PATH) -> Location:
    """The `Location` the options name: ``--url`` (a server), else ``--path`` or the default
    embedded store directory."""
    if url and path:
        raise typer.BadParameter("give either --path or --url, not both")
    return Location(path=None if url else (path or default_path), url=url, api_key=api_key,
                    allow_insecure=allow_insecure)


R = TypeVar("R")
_LOCATION_OPTIONS = (("path", PathOpt, None), ("url", UrlOpt, None), ("api_key", KeyOpt, None),
                     ("allow_insecure", InsecureOpt, False))


def located(command: Callable[..., R]) -> Callable[..., R]:
    """Give a command where its collection lives as one `Location` parameter, ``location``,
    made from the options every such command takes: --path, --url, --api-key and
    --allow-insecure (declared here once, not in each command)."""
    signature = inspect.signature(command, eval_str=True)  # typer reads the options
    kept = [p for p in signature.parameters.values() if p.name != "location"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                               annotation=annotation)
             for name, annotation, default in _LOCATION_OPTIONS]

    @functools.wraps(command)
    def run(*args: Any, path: str | None = None, url: str | None = None,
            api_key: str | None = None, allow_insecure: bool = False, **kwargs: Any) -> R:
        with one_line_errors():
            kwargs["location"] = location_of(path, url, api_key, allow_insecure)
        return command(*args, **kwargs)

    run.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
    return run


def open_collection(
    *, name: str, location: Location, embedder: Embedder | None = None, create: bool = False,
    backend: str = "auto", options: CollectionOptions | None = None,
    tenant: str | None = None, all_tenants: bool = False,
    max_request_bytes: int | None = None,
) -> Collection:
    """The collection ``name`` where ``location`` says; ``create``: made when missing (an
    ingest), else a read that creates nothing."""
    return Collection(name, embedder, location=location, create=create, backend=backend,
                      options=options, tenant=tenant, all_tenants=all_tenants,
                      max_batch_bytes=max_request_bytes)


def parse_mode(mode: str | None) -> Mode | None:
    if mode is not None and mode not in MODES:
        raise typer.BadParameter(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def parse_fusion(fusion: str) -> Fusion:
    if fusion not in FUSIONS:
        raise typer.BadParameter(f"--fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    return fusion


def parse_quantization(value: str) -> Quantization | None:
    """``--quantization``: none -> None, else int8 or binary."""
    if value == "none":
        return None
    if value not in QUANTIZATIONS:
        raise typer.BadParameter(
            f"--quantization must be one of none, {', '.join(QUANTIZATIONS)}, not {value!r}")
    return value


def parse_coverage(value: str) -> Coverage:
    """``--coverage``: all or first-window."""
    if value not in COVERAGES:
        raise typer.BadParameter(
            f"--coverage must be one of {', '.join(COVERAGES)}, not {value!r}")
    return value


def coverage_note(col: Collection, asked: WindowSettings) -> None:
    """Say so where ``--coverage`` asked for what an existing collection does not do (it
    applies to a new collection; an existing one keeps how it was made)."""
    had = col.windows.coverage if col.windows else "first-window"
    if asked.coverage != had:
        typer.echo(f"note: --coverage {asked.coverage} applies to a new collection; "
                   f"{col.name!r} keeps its coverage {had} (index into a new --collection to "
                   "change it)", err=True)


def quantized(quantization: str | None) -> str:
    """How a collection's vectors are stored, for the line that describes it."""
    return f", vectors quantized {quantization}" if quantization else ""


def quantization_note(col: Collection, asked: Quantization | None) -> None:
    """Say so where ``--quantization`` asked for what an existing collection is not (it
    applies to a new collection; an existing one keeps how it was made)."""
    if asked != col.quantization:
        kept = f"{col.quantization} quantization" if col.quantization else "unquantized vectors"
        typer.echo(f"note: --quantization {asked or 'none'} applies to a new collection; "
                   f"{col.name!r} keeps its {kept} (index into a new --collection to change "
                   "it)", err=True)


def parse_where(where: list[str] | None) -> models.Filter | None:
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


def make_embedder(
    model: str | None, pooling: str | None, backend: str = "auto", batch_size: int = 256
) -> Embedder | None:
    if model is None and pooling is None:
        return None
    if pooling not in (None, "mean", "cls"):
        raise typer.BadParameter(f"--pooling must be mean or cls, not {pooling!r}")
    chosen: Pooling | None = pooling  # type: ignore[assignment]
    return Embedder(model or DEFAULT_MODEL, pooling=chosen, backend=backend, batch_size=batch_size)


class Progress:
    """A progress bar on a terminal (quiet otherwise) that counts what it is told either way,
    so that a clean stop can say how far the work got. Call it (or ``update``) with a count."""

    def __init__(self, total: int | None, unit: str, desc: str) -> None:
        self.done = 0
        self._bar: tqdm[Any] = tqdm(total=total, unit=unit, desc=desc,
                                    disable=not sys.stderr.isatty(), leave=False)

    def __call__(self, n: int) -> None:
        self.done += n
        self._bar.update(n)

    update = __call__

    def set_total(self, total: int) -> None:
        self._bar.total = total
        self._bar.refresh()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()



def shorten(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _quiet_libraries() -> None:
    # Tokenising runs between forward passes, on ingest's critical path: in parallel it took
    # 0.9 s less of ~27 s (1,500 abstracts, 2 cores). Configured, so a fork prints no warning;
    # the CLI forks only to exec (subprocesses, Ray's launcher), never to tokenise.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # transformers reads this when it is imported
    if "transformers" not in sys.modules:  # a plain BERT never imports it: 0.7 s saved
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
