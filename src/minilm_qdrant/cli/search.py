"""Commands that read: `search`, `eval`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from minilm_qdrant import evaluation as beir
from minilm_qdrant.cli.common import (
    BackendOpt,
    CollectionOpt,
    FusionOpt,
    InsecureOpt,
    KeyOpt,
    ModeOpt,
    PoolingOpt,
    PrefetchOpt,
    Progress,
    QuantizationOpt,
    ReadTenantOpt,
    TenantOpt,
    UrlOpt,
    WhereOpt,
    app,
    clean_stop,
    located,
    location_of,
    make_embedder,
    one_line_errors,
    open_collection,
    parse_fusion,
    parse_mode,
    parse_quantization,
    parse_where,
    quantization_note,
    quantized,
    shorten,
)
from minilm_qdrant.collection import DEFAULT_COLLECTION, Collection, CollectionOptions
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines.location import Location
from minilm_qdrant.models import DEFAULT_MODEL


@app.command()
@located
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOpt = DEFAULT_COLLECTION,
    model: Annotated[
        str | None, typer.Option(help="Model.", show_default="the one that filled the collection")
    ] = None,
    pooling: PoolingOpt = None,
    backend: BackendOpt = "auto",
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many hits.")] = 10,
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
    tenant: ReadTenantOpt = None,
    *, location: Location,
) -> None:
    """Search a collection (hybrid by default); higher score = closer (see README)."""
    with one_line_errors():
        embedder = make_embedder(model, pooling, backend)
        with open_collection(name=collection, location=location, embedder=embedder,
                             backend=backend, tenant=tenant) as col:
            hits = col.search(
                query, k, mode=parse_mode(mode), fusion=parse_fusion(fusion), prefetch=prefetch,
                diversity=diversity, query_filter=parse_where(where), exact=exact, hnsw_ef=hnsw_ef,
            )
        if as_json:
            typer.echo(json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=2))
            return
        for rank, hit in enumerate(hits, start=1):
            shown, where = hit.text, []
            source, title = hit.metadata.get("source"), hit.metadata.get("title")
            if source is not None and source != hit.id:
                where.append(f"from {source}")
            if hit.pages:
                pages = hit.pages
                where.append(f"p. {pages[0]}" + (f"-{pages[-1]}" if len(pages) > 1 else ""))
            if hit.passage is not None and len(hit.passage.text) < len(hit.text):
                shown = hit.passage.text  # the window that answered, and where it sits
                where.append(f"chars {hit.passage.start}-{hit.passage.end} of {len(hit.text)}")
            named = f" \"{shorten(title, 60)}\"" if isinstance(title, str) else ""
            at = f" ({', '.join(where)})" if where else ""
            typer.echo(f"{rank:>2}. [{hit.score:.4f}] {hit.id}{named}{at}: {shorten(shown)}")


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
    k: Annotated[int, typer.Option(
        "-k", "--cutoff", min=1, help="Cutoff of NDCG, Recall and MRR.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mode: ModeOpt = None,
    fusion: FusionOpt = "dbsf",
    prefetch: PrefetchOpt = 100,
    tenant: TenantOpt = None,
    quantization: QuantizationOpt = "none",
) -> None:
    """Measure retrieval quality on a BEIR data set through the real index and search path
    (with --tenant: indexed as, and searched by, that tenant of a tenanted collection; with
    --quantization: into a quantized collection)."""
    with one_line_errors():
        asked = parse_quantization(quantization)
        given = location_of(path, url, api_key, allow_insecure, default_path=None)
        data = beir.load_beir(directory, split)
        for label, n in data.problems.items():
            typer.echo(f"warning: {label}: {n}", err=True)
        name = collection or "beir-" + "".join(
            c if c.isalnum() or c in "-_" else "_" for c in directory.resolve().name)
        embedder = Embedder(model, backend=backend)
        where = url or path
        indexed = Progress(len(data.doc_ids), "doc", "indexing")
        queried = Progress(len(data.queries), "query", "querying")

        def stopped() -> str:
            if not queried.done and indexed.done < len(data.doc_ids):
                return (f"{indexed.done} more of the {len(data.doc_ids)} corpus documents were "
                        f"indexed into {name!r}")
            return f"the index is complete; {queried.done} of {len(data.queries)} queries ran"

        def rerun() -> str:
            if where is None:
                return ("the temporary store is deleted, nothing is kept: give --path DIR to "
                        "keep the index for a rerun")
            return (f"the store at {where} is closed and consistent: rerun the same command to "
                    "finish (the stored documents are skipped, not embedded again)")

        with clean_stop(stopped, rerun), tempfile.TemporaryDirectory() as tmp, Collection(
            name, embedder, tenant=tenant, location=given if given.url or given.path
            else Location(path=tmp), options=CollectionOptions(quantization=asked)
        ) as col, indexed, queried:
            if quantization != "none":
                quantization_note(col, asked)
            result = beir.evaluate(
                col, data, k, indexed, queried,
                mode=parse_mode(mode), fusion=parse_fusion(fusion), prefetch=prefetch,
            )
        if result.truncated:
            typer.echo(f"warning: {result.truncated} documents were truncated to the model's "
                       f"limit of {embedder.spec.max_tokens} word pieces (a collection made "
                       "before windows: index into a new --collection)", err=True)
        figures = {**result.as_dict(), "quantization": col.quantization or "none"}
        if as_json:
            typer.echo(json.dumps(figures))
            return
        reused = " (reused the existing index)" if result.reused_index else ""
        typer.echo(f"{directory} split {split!r}: {result.queries} queries, "
                   f"{len(data.doc_ids)} documents, {result.model} ({result.backend}"
                   f"{quantized(col.quantization)}), {result.mode} search{reused}")
        for key, value in figures.items():
            if key not in ("model", "backend", "queries", "mode", "quantization"):
                typer.echo(f"  {key:<14} {value}")


