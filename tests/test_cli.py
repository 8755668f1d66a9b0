"""The CLI as a user runs it: a real subprocess, real weights, a real embedded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
SESSIONS = Path(__file__).resolve().parents[1] / "examples" / "conference.jsonl"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", *args],
        cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("cli")
    result = cli("index", str(SESSIONS), "--model", "all-MiniLM-L6-v2", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "Indexed 36 documents" in result.stdout and "holds 36 points" in result.stdout
    return cwd


def test_search_json_uses_the_collections_model(indexed: Path) -> None:
    result = cli("search", "defending LLM apps against prompt injection", "-k", "3", "--json",
                 cwd=indexed)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 3 and set(hits[0]) == {"id", "score", "text", "metadata", "passage"}
    for hit in hits:  # the passage that answered, by offsets into the stored text
        passage = hit["passage"]
        assert hit["text"][passage["start"]:passage["end"]] == passage["text"]
    assert "Prompt Injection" in hits[0]["metadata"]["title"]
    assert hits[0]["id"].startswith("s") and hits[0]["score"] >= hits[1]["score"]


def test_reindex_keeps_the_count(indexed: Path) -> None:
    result = cli("index", str(SESSIONS), "--model", "all-MiniLM-L6-v2", cwd=indexed)
    assert result.returncode == 0 and "holds 36 points" in result.stdout


def test_mismatched_model_is_one_clear_line(indexed: Path) -> None:
    result = cli("search", "x", "--model", "multi-qa_v1-mpnet-cls_dot", cwd=indexed)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Collection 'documents' holds vectors")
    assert "dim=768" in result.stderr and "Traceback" not in result.stderr
    pooled = cli("search", "x", "--pooling", "cls", "--model", "all-MiniLM-L6-v2", cwd=indexed)
    assert pooled.returncode == 1 and "pooling=cls" in pooled.stderr


def test_errors_exit_non_zero_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    result = cli("index", str(bad), "--model", "all-MiniLM-L6-v2", cwd=tmp_path)
    assert result.returncode == 1 and "bad.jsonl:2" in result.stderr
    assert "Traceback" not in result.stderr
    missing = cli("search", "x", "--collection", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    unknown = cli("index", str(bad), "--model", "someone/unknown-model", cwd=tmp_path)
    assert unknown.returncode == 1 and "someone/unknown-model" in unknown.stderr


def test_demo_prints_three_sessions_per_question(tmp_path: Path) -> None:
    result = cli("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "all-MiniLM-L6-v2" in result.stdout  # says which model it used
    assert "Indexed 36 sessions" in result.stdout
    assert "Quantisation" in result.stdout.split("Q: ")[1].splitlines()[1]


def test_search_modes_mmr_and_where(indexed: Path) -> None:
    query = ("defending LLM apps against prompt injection", "-k", "5", "--json")
    runs = {}
    for extra in ([], ["--mode", "dense"], ["--mode", "sparse"], ["--fusion", "rrf"],
                  ["--diversity", "0.7"], ["--where", "day=2"]):
        result = cli("search", *query, *extra, cwd=indexed)
        assert result.returncode == 0, result.stderr
        runs[" ".join(extra)] = json.loads(result.stdout)
    assert all(len(hits) >= 1 for hits in runs.values())
    assert "Prompt Injection" in runs[""][0]["metadata"]["title"]  # hybrid, the default
    assert runs["--mode dense"] != runs[""]  # dense scores are dot products, hybrid's fused
    assert {h["metadata"]["day"] for h in runs["--where day=2"]} == {2}
    bad = cli("search", "x", "--mode", "bm42", cwd=indexed)
    assert bad.returncode != 0 and "--mode must be one of hybrid, dense, sparse" in bad.stderr


def test_delete_by_id_and_by_metadata(tmp_path: Path) -> None:
    assert cli("index", str(SESSIONS), "--model", "all-MiniLM-L6-v2", cwd=tmp_path).returncode == 0
    first = json.loads(SESSIONS.read_text().splitlines()[0])
    result = cli("delete", str(first["id"]), "nope", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Deleted 1 documents" in result.stdout and "35 left" in result.stdout
    days = [json.loads(line)["day"] for line in SESSIONS.read_text().splitlines()[1:]]
    result = cli("delete", "--where", "day=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Deleted {days.count(1)} documents" in result.stdout
    assert f"{35 - days.count(1)} left" in result.stdout
    neither = cli("delete", cwd=tmp_path)
    assert neither.returncode != 0 and "give document ids or --where" in neither.stderr
    assert "BadParameter" not in neither.stderr and len(neither.stderr.splitlines()) == 1


def test_index_into_an_existing_collection_uses_its_model(indexed: Path) -> None:
    """No --model: the collection's own model (as search does), not the registry default."""
    result = cli("index", str(SESSIONS), cwd=indexed)
    assert result.returncode == 0, result.stderr
    assert "with all-MiniLM-L6-v2" in result.stdout and "holds 36 points" in result.stdout


def test_reads_create_no_store(tmp_path: Path) -> None:
    for args in (["search", "x"], ["delete", "a"], ["add-sparse"]):
        result = cli(*args, "--path", "missing_dir", cwd=tmp_path)
        assert result.returncode == 1 and "no embedded store at missing_dir" in result.stderr
        assert result.stderr.count("\n") == 1 and not (tmp_path / "missing_dir").exists()


def test_rerun_skips_unchanged_documents_and_force_embeds_them(tmp_path: Path) -> None:
    first = cli("index", str(SESSIONS), "--model", "all-MiniLM-L6-v2", cwd=tmp_path)
    assert first.returncode == 0 and "Indexed 36 documents" in first.stdout
    again = cli("index", str(SESSIONS), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Indexed 0 documents" in again.stdout and "0 tokens embedded" in again.stdout
    assert "unchanged (already stored, skipped): 36" in again.stdout
    forced = cli("index", str(SESSIONS), "--force", cwd=tmp_path)
    assert forced.returncode == 0 and "Indexed 36 documents" in forced.stdout


def test_help_shows_defaults_and_no_bool_metavars(tmp_path: Path) -> None:
    for command in ("index", "search", "eval"):
        result = cli(command, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "<bool>" not in result.stdout
        text = " ".join(result.stdout.split())
        assert "[default: auto]" in text  # --backend
    index = " ".join(cli("index", "--help", cwd=tmp_path).stdout.split())
    assert "(./qdrant_data)" in index and "the collection's own" in index


def test_a_first_demo_prints_no_library_warnings(tmp_path: Path) -> None:
    """A new user's first run: no ONNX export cached yet (a new HOME), output not a terminal.
    The export's TracerWarning / UserWarning lines and onnxruntime's advice stay off it."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in ENV.items() if k != "MINILM_QDRANT_CACHE"}
    result = cli("demo", cwd=tmp_path, env={**env, "HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert list((home / ".cache" / "minilm-qdrant" / "onnx").iterdir())  # it did export
    said = result.stdout + result.stderr
    assert "warn" not in said.lower(), said
    assert result.stderr == "" and "Indexed 36 sessions" in result.stdout


def test_a_missing_model_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    for args in (["reembed", "--model", "./my-model"],
                 ["index", str(SESSIONS), "--model", "./my-model"],
                 ["index", str(SESSIONS), "--model", "models/tuned/v2"]):
        result = cli(*args, cwd=tmp_path, env={**ENV, "HF_HUB_OFFLINE": "0"})
        model = args[args.index("--model") + 1]
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(
            f"error: model folder {model} is not available: it does not exist")
        assert "hf download" not in result.stderr and "Validation" not in result.stderr
    assert not (tmp_path / "qdrant_data").exists()


def test_a_failed_first_index_leaves_no_store(tmp_path: Path) -> None:
    """Stopped before a point was written (a bad first line, a model that cannot load): the
    store directory this run made goes; one with a point in it, or there before, stays."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    result = cli("index", str(bad), "--model", "all-MiniLM-L6-v2", cwd=tmp_path)
    assert result.returncode == 1 and "bad.jsonl:1" in result.stderr
    assert not (tmp_path / "qdrant_data").exists()
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"hidden_size": 384}')  # no tokenizer, no weights
    result = cli("index", str(SESSIONS), "--model", str(broken), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "qdrant_data").exists()
    late = tmp_path / "late.jsonl"
    late.write_text('{"text": "fine"}\nnot json\n')  # one document written, then stopped
    result = cli("index", str(late), "--model", "all-MiniLM-L6-v2", cwd=tmp_path)
    assert result.returncode == 1 and "1 documents written" in result.stderr
    assert (tmp_path / "qdrant_data" / "documents").is_dir()
    result = cli("index", str(bad), "-c", "other", "--model", "all-MiniLM-L6-v2", cwd=tmp_path)
    assert result.returncode == 1  # an existing store stays as it was, with its collection
    assert (tmp_path / "qdrant_data" / "documents").is_dir()
    assert cli("search", "fine", cwd=tmp_path).returncode == 0


def test_help_spells_top_k_and_tenant_for_what_each_command_does(tmp_path: Path) -> None:
    def shown(command: str) -> str:
        result = cli(command, "--help", cwd=tmp_path)
        assert result.returncode == 0
        return " ".join(result.stdout.split())

    search = shown("search")
    assert "-k, --top-k" in search and "--k " not in search
    assert "-k, --cutoff" in shown("eval")
    for reads in ("search", "delete"):  # these never make a collection
        text = shown(reads)
        assert "--tenant" in text and "made tenanted" not in text
    assert "a new one is made tenanted" in shown("index")
