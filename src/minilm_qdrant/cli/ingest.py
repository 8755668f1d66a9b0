"""Commands that write documents: `index`, `delete`, `add-sparse`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from minilm_qdrant.cli.common import (
    BackendOpt,
    CollectionOpt,
    InsecureOpt,
    KeyOpt,
    PathOpt,
    PoolingOpt,
    Progress,
    UrlOpt,
    WhereOpt,
    app,
    clean_stop,
    make_embedder,
    one_line_errors,
    open_collection,
    parse_where,
)
from minilm_qdrant.collection import DEFAULT_COLLECTION
from minilm_qdrant.diskspace import room_for
from minilm_qdrant.engines import CollectionOptions
from minilm_qdrant.errors import InputError
from minilm_qdrant.models import DEFAULT_MODEL
from minilm_qdrant.readers import ReadStats, count_lines, read_documents


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
    with one_line_errors():
        if file.is_dir():  # before anything is loaded or created: a rerun cannot help
            raise InputError(f"{file}: is a folder; index takes one JSONL, CSV or text file")
        if not file.exists():
            raise InputError(f"{file}: no such file")
        # no --model: the collection's own model, or the registry default for a new collection
        embedder = make_embedder(model, pooling, backend)
        stats = ReadStats()
        docs = read_documents(file, skip_invalid=skip_invalid, stats=stats)
        total = count_lines(file) if file.is_file() else None
        options = CollectionOptions(sparse=None) if dense_only else None
        bar = Progress(total, "doc", "indexing")

        def stopped() -> str:
            return f"{bar.done} documents of {file} were processed and are stored"

        with clean_stop(stopped), open_collection(
            collection, path, url, api_key, allow_insecure, embedder, True, backend, options
        ) as col, \
                bar:
            room = room_for(col.engine, col.name, col.embedder.dim)
            if room and total:  # the file's size says what it needs: refuse before writing
                room.check_total(total, file.stat().st_size, col.count)
            report = col.upsert(docs, on_progress=bar, skip_unchanged=not force)
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
            "windows embedded": report.windows if report.windowed else 0,
            "documents longer than one window (every window embedded)": report.windowed,
            "truncated to the token limit": report.truncated, "retries": report.retries,
        }
        for label, n in extras.items():
            if n:
                typer.echo(f"  {label}: {n}")
        if report.truncated and not col.windowed:
            typer.echo(f"  note: {collection!r} was made before windows and embeds only the "
                       "first window of a long text; move it with minilm-qdrant reembed "
                       f"--collection {collection} --to-collection NEW (every window embedded)")


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
    with one_line_errors():
        flt = parse_where(where)
        if bool(ids) == (flt is not None):
            raise typer.BadParameter("give document ids or --where KEY=VALUE (one of them)")
        with open_collection(collection, path, url, api_key, allow_insecure, None, False) as col:
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
            open_collection(collection, path, None, None, False, None, False) as col, \
            Progress(None, "point", "encoding") as bar:
        n = col.add_sparse(Bm25Settings(language=language), on_progress=bar.update)
        typer.echo(f"Added BM25 sparse vectors to {n} points of {collection!r} ({col.where}); "
                   "searches are now hybrid by default.")


