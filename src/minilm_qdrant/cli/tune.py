"""Commands that change the model: `tune` (adapt it to labelled queries), `reembed` (move a
collection to another model from its stored text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from minilm_qdrant.cli.common import (
    BackendOpt,
    CollectionOpt,
    Progress,
    app,
    clean_stop,
    located,
    one_line_errors,
    open_collection,
    quantized,
)
from minilm_qdrant.collection import DEFAULT_COLLECTION
from minilm_qdrant.engines.location import Location
from minilm_qdrant.models import DEFAULT_MODEL


@app.command()
def tune(
    data: Annotated[Path, typer.Argument(
        help="A BEIR directory, or a JSONL of {\"query\", \"positive\"[, \"negative\"]}.")],
    out: Annotated[Path, typer.Option("--out", help="Where the tuned model folder goes.")],
    model: Annotated[str, typer.Option(help="Base model.")] = DEFAULT_MODEL,
    split: Annotated[str, typer.Option(help="Qrels split to train on (BEIR).")] = "train",
    dev_fraction: Annotated[float, typer.Option(
        help="Share of the labelled queries held out (by query, fixed seed) for the gate.")
    ] = 0.2,
    dev_split: Annotated[str | None, typer.Option(
        help="Hold out this qrels split instead (BEIR).", show_default="none")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the pairs.")] = 3,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 3e-5,
    batch_size: Annotated[int, typer.Option(
        min=2, help="Pairs per step (the in-batch negatives).")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the held-out draw and the training.")] = 42,
    no_hard_negatives: Annotated[bool, typer.Option(
        "--no-hard-negatives", help="In-batch negatives only (no BM25 hard negative).")
    ] = False,
    cached: Annotated[bool, typer.Option(
        "--cached", help="CachedMultipleNegativesRankingLoss: large batches in bounded memory.")
    ] = False,
    checkpoint_seconds: Annotated[float, typer.Option(
        min=0.0, help="Checkpoint at least this often (and each epoch): what Ctrl-C loses.")
    ] = 60.0,
    path: Annotated[str | None, typer.Option(
        help="Keep the base model's index of the corpus here (reused by a rerun).",
        show_default="a temporary store")] = None,
    backend: BackendOpt = "auto",
    force: Annotated[bool, typer.Option(
        "--force", help="Write the model even if it is worse on the held-out queries.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Tune a model on labelled queries (MultipleNegativesRankingLoss with BM25 hard negatives);
    writes it only if the held-out queries score no worse (needs minilm-qdrant[tune])."""
    from minilm_qdrant.evaluation.tune import Settings
    from minilm_qdrant.evaluation.tune import tune as run_tune

    with one_line_errors():
        settings = Settings(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                            hard_negatives=not no_hard_negatives, cached=cached,
                            checkpoint_seconds=checkpoint_seconds)
        with clean_stop(lambda: f"the last complete checkpoint is kept under {out}/.checkpoints",
                        lambda: "rerun the same command to resume from it"), \
                Progress(None, "doc", "indexing") as bar:
            result = run_tune(
                data, out, model=model, settings=settings, split=split,
                dev_fraction=dev_fraction, dev_split=dev_split, path=path, backend=backend,
                force=force, on_index=bar.update, log=lambda line: typer.echo(line, err=True),
            )
        if as_json:
            typer.echo(json.dumps(result.as_dict()))
            return
        typer.echo(f"Tuned {result.base_model} on {result.pairs} pairs from "
                   f"{result.train_queries} queries in {result.seconds:.0f}s; wrote {out}.")
        for mode, before in result.before.items():
            typer.echo(f"  held-out NDCG@10 {mode:<7} {before:.4f} -> {result.after[mode]:.4f} "
                       f"({result.after[mode] - before:+.4f}, {result.dev_queries} queries)")
        typer.echo(f"Use it: minilm-qdrant index FILE --model {out}  (or reembed a collection)")


@app.command()
@located
def reembed(
    model: Annotated[str, typer.Option(help="The new model (registry name, hub id or folder).")],
    collection: CollectionOpt = DEFAULT_COLLECTION,
    to_collection: Annotated[str | None, typer.Option(
        "--to-collection", help="The new collection.",
        show_default="the name plus a hash of the new model")] = None,
    swap: Annotated[bool, typer.Option(
        "--swap", help="Then make the new collection answer under the old name.")] = False,
    backend: BackendOpt = "auto",
    *, location: Location,
) -> None:
    """Rebuild a collection with another model from its stored text (ids, metadata and BM25
    kept; resumable); the old one answers until the new one is complete."""
    from minilm_qdrant.embedder import Embedder

    with one_line_errors():
        embedder = Embedder(model, backend=backend)
        bar = Progress(None, "doc", "re-embedding")

        def stopped() -> str:
            return (f"{bar.done} documents re-embedded into the new collection; "
                    f"{collection!r} is untouched")

        with clean_stop(stopped), open_collection(
            name=collection, location=location, backend=backend,
            all_tenants=True,  # every tenant's documents, each kept its tenant's
        ) as col, bar:
            bar.set_total(col.count())
            report = col.reembed(embedder, to_collection=to_collection, swap=swap,
                                 on_progress=bar)
        typer.echo(f"Re-embedded {report.points} documents of {report.source!r} with "
                   f"{report.model} into {report.target!r} ({col.where}"
                   f"{quantized(col.quantization)}) in "
                   f"{report.seconds:.1f}s ({report.written} embedded, {report.unchanged} "
                   "already there).")
        if report.swapped:
            typer.echo(f"Swapped: {report.source!r} now answers with {report.model}" + (
                f" (an alias of {report.target!r})." if location.url else
                f"; the old points are now under {report.target!r}."))
        else:
            typer.echo(f"{report.source!r} still answers with the old model: search "
                       f"--collection {report.target} to try the new one, then rerun with "
                       "--swap.")
