"""Commands that write documents: `index`, `delete`, `add-sparse`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from minilm_qdrant import inputs
from minilm_qdrant.cli.common import (
    BackendOpt,
    CollectionOpt,
    PathOpt,
    PoolingOpt,
    Progress,
    QuantizationOpt,
    ReadTenantOpt,
    TenantOpt,
    WhereOpt,
    app,
    clean_stop,
    coverage_note,
    located,
    location_of,
    make_embedder,
    one_line_errors,
    open_collection,
    parse_coverage,
    parse_quantization,
    parse_where,
    quantization_note,
    quantized,
)
from minilm_qdrant.collection import DEFAULT_COLLECTION, Collection, CollectionOptions, UpsertReport
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines.diskspace import room_for
from minilm_qdrant.engines.location import Location
from minilm_qdrant.errors import InputError
from minilm_qdrant.inputs import (
    MANY_DOCUMENT_SUFFIXES,
    MAX_FILE_BYTES,
    ReadStats,
    count_lines,
    read_documents,
)
from minilm_qdrant.models import DEFAULT_MODEL
from minilm_qdrant.windows import WindowSettings


@app.command()
@located
def index(
    paths: Annotated[list[Path], typer.Argument(
        help="Files and folders: a folder's files (.txt .md .rst .html .pdf) are one document "
             "each; a JSONL or CSV file holds many.")],
    collection: CollectionOpt = DEFAULT_COLLECTION,
    tenant: TenantOpt = None,
    model: Annotated[str | None, typer.Option(
        help="Model.", show_default=f"the collection's own; {DEFAULT_MODEL} for a new one",
    )] = None,
    pooling: PoolingOpt = None,
    backend: BackendOpt = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per upsert.")] = 256,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip and count bad lines and files.")
    ] = False,
    dense_only: Annotated[bool, typer.Option(
        "--dense-only", help="A new collection without BM25 sparse vectors (no hybrid).")
    ] = False,
    quantization: QuantizationOpt = "none",
    coverage: Annotated[str | None, typer.Option(
        "--coverage", help="What of a long text a new collection embeds: all (every word "
        "piece, in windows) or first-window (its first 254 word pieces only, as a plain "
        "stack: faster where texts are long, the rest reaches BM25 only; quality cost in "
        "benchmarks/ingest-speed.md).", show_default="the collection's own; all for a new one",
    )] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Embed every document, even those already stored unchanged.")
    ] = False,
    sync: Annotated[bool, typer.Option(
        "--sync", help="Also delete documents of a folder whose file is gone.")] = False,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Only files matching this pattern (repeatable; e.g. '*.md').")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Leave out files and folders matching this pattern (repeatable).")
    ] = None,
    lines: Annotated[bool, typer.Option(
        "--lines", help="A text file given by name holds one document per line.")] = False,
    max_bytes: Annotated[int, typer.Option(
        "--max-bytes", min=1, help="Refuse files larger than this.")] = MAX_FILE_BYTES,
    max_request_bytes: Annotated[int | None, typer.Option(
        "--max-request-bytes", min=1, help="The most one write request may carry; a longer "
        "document's point is refused by name.",
        show_default="30 MiB to a server (Qdrant's 32 MiB limit); none for the embedded store")
    ] = None,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Embed on Ray workers (pip install \"minilm-qdrant[ray]\"): a local Ray, "
        "or the cluster of --ray-address. JSONL files (or text with --lines).")] = False,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="The Ray cluster to embed on (implies "
        "--ray): ray://HOST:10001, HOST:6379 or auto.", show_default="a new local Ray")
    ] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Ray workers, each with its own copy of the model.")] = 2,
    cpus_per_worker: Annotated[float | None, typer.Option(
        "--cpus-per-worker", min=0.01, help="CPUs (model threads) of each Ray worker.",
        show_default="the cluster's CPUs shared among the workers; 1 with GPUs")] = None,
    gpus_per_worker: Annotated[float, typer.Option(
        "--gpus-per-worker", min=0, help="GPUs of each Ray worker (e.g. 1, or 0.5).")] = 0.0,
    *, location: Location,
) -> None:
    """Embed documents from files and folders and store them (rerunning never duplicates;
    unchanged files are skipped without being read)."""
    with one_line_errors():
        for each in paths:  # before anything is loaded or created: a rerun cannot help
            if not each.exists():
                raise InputError(f"{inputs.printable(each)}: no such file or folder")
        # no --model: the collection's own model, or the registry default for a new one
        embedder = make_embedder(model, pooling, backend)
        asked = parse_quantization(quantization)
        windows = WindowSettings(coverage=parse_coverage(coverage or "all"))
        options = CollectionOptions(quantization=asked, windows=windows) if not dense_only \
            else CollectionOptions(sparse=None, quantization=asked, windows=windows)
        if ray or ray_address:
            if sync or include or exclude:
                raise InputError("--sync, --include and --exclude walk folders: index folders "
                                 "without --ray")
            _index_on_ray(
                paths, collection=collection, location=location, embedder=embedder,
                options=options, tenant=tenant, address=ray_address, workers=workers,
                cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                batch_size=batch_size, max_request_bytes=max_request_bytes, backend=backend,
                force=force, skip_invalid=skip_invalid, lines=lines)
            return
        bar = Progress(None, "doc", "indexing")

        def stopped() -> str:
            return f"{bar.done} documents were processed and are stored"

        with clean_stop(stopped), open_collection(
            name=collection, location=location, embedder=embedder, create=True,
            backend=backend, options=options, tenant=tenant,
            max_request_bytes=max_request_bytes,
        ) as col, bar:
            if quantization != "none":  # asked, of a collection that may exist already
                quantization_note(col, asked)
            if coverage is not None:  # asked, of a collection that may exist already
                coverage_note(col, windows)
            for each in paths:
                if not each.is_dir() and (lines or each.suffix.lower() in MANY_DOCUMENT_SUFFIXES):
                    # a pipe (a FIFO, `<(...)`) streams documents like a file
                    _index_file(col, each, bar, skip_invalid, force, lines)
                else:
                    _index_folder(col, each, bar, skip_invalid=skip_invalid, force=force,
                                  sync=sync, include=include or (), exclude=exclude or (),
                                  max_bytes=max_bytes)


def _index_on_ray(paths: list[Path], *, collection: str, location: Location,
                  embedder: Embedder | None, options: CollectionOptions | None,
                  tenant: str | None, address: str | None, workers: int,
                  cpus_per_worker: float | None, gpus_per_worker: float, batch_size: int,
                  max_request_bytes: int | None, backend: str, force: bool, skip_invalid: bool,
                  lines: bool) -> None:
    """``index --ray``: the files embedded on Ray workers (`minilm_qdrant.distributed`)."""
    from minilm_qdrant.distributed import describe, index_on_ray, require_ray

    require_ray()  # one line saying how to install it, before anything starts
    for each in paths:
        if each.is_dir():
            raise InputError(f"{inputs.printable(each)} is a folder: --ray indexes files of "
                             "records (JSONL, or text with --lines); index folders without --ray")
    bar = Progress(None, "doc", "indexing on Ray")

    def stopped() -> str:
        return f"{bar.done} documents were processed and are stored"

    with clean_stop(stopped), bar:
        done = index_on_ray(
            [str(p) for p in paths], collection=collection, location=location,
            embedder=embedder, options=options, tenant=tenant, address=address,
            workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            batch_size=batch_size, max_batch_bytes=max_request_bytes, backend=backend,
            skip_unchanged=not force, skip_invalid=skip_invalid, lines=lines,
            on_progress=bar, on_total=bar.set_total)
    report = done.upsert
    shown = ", ".join(inputs.printable(p) for p in paths)
    model = embedder.spec.name if embedder is not None else "the collection's model"
    typer.echo(
        f"Indexed {report.written} documents from {shown} into {collection!r} "
        f"({location.shown}) with {model} in {report.seconds:.1f}s; collection now holds "
        f"{done.points} points; {report.tokens:,} tokens embedded, padding "
        f"{report.padding_waste:.1%}.")
    typer.echo(f"  {describe(done)}")
    _extras(report, {"skipped invalid lines": done.skipped,
                     "documents refused, skipped": len(done.refused)})
    for why in done.refused[:5]:
        typer.echo(f"    {why}")


def _index_file(col: Collection, file: Path, bar: Progress, skip_invalid: bool, force: bool,
                lines: bool) -> None:
    """A file of many documents: JSONL, CSV, or text with ``--lines``."""
    stats = ReadStats()
    docs = read_documents(file, skip_invalid=skip_invalid, stats=stats)
    refused: list[str] = []
    total = count_lines(file) if file.is_file() else None
    if total:
        bar.set_total(total)
    room = room_for(col.engine, col.name, col.embedder.dim)
    if room and total:  # the file's size says what it needs: refuse before writing
        room.check_total(total, file.stat().st_size, col.count)
    report = col.upsert(docs, on_progress=bar, skip_unchanged=not force,
                        on_refused=(lambda _, why: refused.append(why)) if skip_invalid else None)
    _say(col, f"Indexed {report.written} documents from {inputs.printable(file)}", report,
         {"skipped invalid lines": stats.skipped, "documents refused, skipped": len(refused)})
    for why in refused[:5]:
        typer.echo(f"    {why}")


def _index_folder(col: Collection, where: Path, bar: Progress, *, skip_invalid: bool,
                  force: bool, sync: bool, include: Sequence[str], exclude: Sequence[str],
                  max_bytes: int) -> None:
    """A folder (or one file that is one document), synced: see `inputs.sync`."""
    report = inputs.sync(col, where, delete=sync, include=include, exclude=exclude,
                          skip_invalid=skip_invalid, max_bytes=max_bytes, force=force,
                          on_progress=bar, on_total=bar.set_total)
    upsert = report.upsert or UpsertReport()
    deleted = f", {report.deleted} deleted" if sync else ""
    stats = report.stats
    _say(col, f"Indexed {inputs.printable(where)}: {report.added} added, {report.updated} "
         f"updated, {report.unchanged} unchanged{deleted}", upsert,
         {"bad files skipped": len(stats.skipped)}, counted_unchanged=True)
    for why in stats.skipped[:5]:
        typer.echo(f"    {why}")
    if len(stats.skipped) > 5:
        typer.echo(f"    ... and {len(stats.skipped) - 5} more")
    if stats.escaped:
        typer.echo(f"  file names that are not UTF-8, stored under ids with their bytes as "
                   f"\\xNN: {len(stats.escaped)} (e.g. {', '.join(stats.escaped[:3])})")
    if stats.passed_over:
        typer.echo(f"  files in no document format, left out: {len(stats.passed_over)} (e.g. "
                   f"{', '.join(stats.passed_over[:3])}; choose files with --include)")


def _say(col: Collection, what: str, report: UpsertReport, counts: dict[str, int],
         counted_unchanged: bool = False) -> None:
    points = col.count()
    typer.echo(
        f"{what} into {col.name!r} ({col.where}) with {col.embedder.spec.name}"
        f"{quantized(col.quantization)} in {report.seconds:.1f}s; collection now holds "
        f"{points} points; {report.tokens:,} "
        f"tokens embedded, padding {report.padding_waste:.1%}."
    )
    first = col.windows is not None and col.windows.coverage == "first-window"
    _extras(report, counts, counted_unchanged, truncated=not first)
    if report.truncated and first:
        typer.echo(f"  embedded by their first window only (--coverage first-window; BM25 "
                   f"holds them whole): {report.truncated}")
    if report.truncated and not col.windowed:
        typer.echo(f"  note: {col.name!r} was made before windows and embeds only the "
                   "first window of a long text; move it with minilm-qdrant reembed "
                   f"--collection {col.name} --to-collection NEW (every window embedded)")


def _extras(report: UpsertReport, counts: dict[str, int], counted_unchanged: bool = False,
            truncated: bool = True) -> None:
    extras = {
        **({} if counted_unchanged else {"unchanged (already stored, skipped)": report.unchanged}),
        **counts, "duplicate ids (last kept)": report.duplicates,
        "windows embedded": report.windows if report.windowed else 0,
        "documents longer than one window (every window embedded)": report.windowed,
        "truncated to the token limit": report.truncated if truncated else 0,
        "retries": report.retries,
    }
    for label, n in extras.items():
        if n:
            typer.echo(f"  {label}: {n}")


@app.command()
@located
def delete(
    ids: Annotated[list[str] | None, typer.Argument(help="Document ids to delete.")] = None,
    where: WhereOpt = None,
    collection: CollectionOpt = DEFAULT_COLLECTION,
    tenant: ReadTenantOpt = None,
    *, location: Location,
) -> None:
    """Delete documents by id, or by metadata (--where KEY=VALUE); nothing is re-embedded."""
    with one_line_errors():
        flt = parse_where(where)
        if bool(ids) == (flt is not None):
            raise InputError("give document ids or --where KEY=VALUE (one of them), "
                             "e.g. minilm-qdrant delete doc-1 doc-2")
        with open_collection(name=collection, location=location, tenant=tenant) as col:
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

    with one_line_errors(), \
            open_collection(name=collection, location=location_of(path, None, None, False)) \
            as col, \
            Progress(None, "point", "encoding") as bar:
        n = col.add_sparse(Bm25Settings(language=language), on_progress=bar.update)
        typer.echo(f"Added BM25 sparse vectors to {n} points of {collection!r} ({col.where}); "
                   "searches are now hybrid by default.")


