"""Moving and showing collections: `push`, `demo`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from minilm_qdrant.cli.common import (
    DEFAULT_PATH,
    CollectionOpt,
    InsecureOpt,
    KeyOpt,
    PathOpt,
    Progress,
    UrlOpt,
    app,
    clean_stop,
    one_line_errors,
    quantized,
)
from minilm_qdrant.collection import DEFAULT_COLLECTION, Collection, CollectionOptions
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.errors import MiniLMQdrantError
from minilm_qdrant.inputs import read_documents
from minilm_qdrant.models import BUNDLED_MODEL, DEFAULT_MODEL


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

    with one_line_errors():
        if (url is None) == (to_path is None):
            raise typer.BadParameter("give the target as --url URL or --to-path DIR")
        options = CollectionOptions(shard_number=shards, replication_factor=replicas)
        target = f"{to_collection or collection!r} at {to_path or 'the server'}"

        bar = Progress(None, "point", "pushing")

        def stopped() -> str:
            return f"{bar.done} points were copied to {target}"

        def rerun() -> str:
            return ("both stores are closed: rerun the same command to finish the copy (points "
                    "keep their ids, so none is duplicated)")

        with clean_stop(stopped, rerun), bar:
            report = run_push(
                path=path or DEFAULT_PATH, collection=collection, url=url, api_key=api_key,
                to_path=to_path, to_collection=to_collection, options=options,
                batch_size=batch_size, allow_insecure=allow_insecure, on_progress=bar,
            )
        indexes = ", payload indexes: " + ", ".join(report.indexes) if report.indexes else ""
        created = f" (created the target{quantized(report.quantization)})" \
            if report.created else ""
        typer.echo(
            f"Pushed {report.copied} points from {report.source} to {report.target} in "
            f"{report.batches} batches, {report.seconds:.1f}s{created}"
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
    with one_line_errors():
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
        Path(__file__).parents[1] / "conference.jsonl",  # installed wheel
        Path(__file__).resolve().parents[3] / "examples" / "conference.jsonl",  # source tree
    ):
        if candidate.is_file():
            return candidate
    raise MiniLMQdrantError("the demo's conference.jsonl is missing from this installation")


