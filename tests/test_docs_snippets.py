"""Every code block of README.md and docs/ runs, offline on the bundled all-MiniLM-L6-v2.

Python blocks are found and run by pytest-examples (each as a module of its own); bash blocks
are read here, and each `minilm-qdrant ...` line in them runs through the console script's
entry point in this process (so the model loads once for every block). A chain of blocks (a
block and the ones that continue it) runs in a temporary directory of its own that holds the
sample inputs the pages name (`SAMPLES`): nothing is written into the checkout.

Conventions, an HTML comment on the line before a fence (invisible on GitHub and on the site):

- ``<!-- docs-test: skip REASON -->``: the block is not run; its test is skipped with REASON
  (a block that needs a Qdrant server, installs packages, or trains for minutes says so);
- ``<!-- docs-test: continue -->``: the block runs after the one before it on the page, in the
  same directory (what that one indexed is there).

A bash block that is not skipped may hold only `minilm-qdrant` commands (one a line, ``\\``
continuing a line, ``#`` comments); anything else fails here with how to mark it. Blocks are
checked for running without error (a command for exit status 0) and, where they print, for
printing something; what they print is shown with ``-s`` and is not compared with stored text.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_examples = pytest.importorskip("pytest_examples")  # the `test` extra
from pytest_examples import CodeExample, EvalExample, find_examples  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(r"^<!--\s*docs-test:\s*(skip|continue)\b\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^( *)```(\S*)")
LANGUAGES = {"python", "bash", "text", ""}
"""Fence languages the pages may use: python and bash run; text (or none) is output or a
diagram."""


@dataclass
class Block:
    page: Path
    line: int
    """1-based line of the opening fence."""
    language: str
    source: str
    marker: str = ""
    """``skip`` or ``continue`` (the comment before the fence), or empty."""
    reason: str = ""
    example: CodeExample | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Chain:
    blocks: list[Block] = field(default_factory=list)

    @property
    def id(self) -> str:
        more = len(self.blocks) - 1
        return self.blocks[0].where + (f"+{more}" if more else "")


def fences(page: Path) -> list[tuple[int, str, str]]:
    """(line, language, source) of every fenced block of a page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, at = [], 0
    while at < len(lines):
        opening = FENCE.match(lines[at])
        if not opening:
            at += 1
            continue
        indent, language = opening.groups()
        end = at + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(line[len(indent):] for line in lines[at + 1:end])
        found.append((at + 1, language.lower(), body + "\n"))
        at = end + 1
    return found


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    python = {e.start_line: e for e in find_examples(page)}  # pytest-examples' own reading
    found = []
    for line, language, source in fences(page):
        before = line - 2
        while before >= 0 and not lines[before].strip():
            before -= 1
        marked = MARKER.match(lines[before].strip()) if before >= 0 else None
        block = Block(page, line, language, source, *(marked.groups() if marked else ("", "")))
        if language == "python":
            block.example = python.get(line)
        found.append(block)
    return found


def chains() -> list[Chain]:
    every: list[Chain] = []
    for page in PAGES:
        for block in blocks(page):
            if block.language not in ("python", "bash"):
                continue
            if block.marker == "continue" and every and every[-1].blocks[0].page == page:
                every[-1].blocks.append(block)
            else:
                every.append(Chain([block]))
    return every


CHAINS = chains()


# --- the sample inputs every chain finds in its directory ------------------------------------

CONFERENCE = ROOT / "examples" / "conference.jsonl"
NOTES = {
    "keys.md": "# Key rotation\n\nRotate the API keys every 90 days; the old key keeps "
               "working for one more day so that clients can move.\n",
    "ops/backups.md": "---\ntitle: Backups\n---\nThe database is backed up every night at 02:00 "
                      "UTC and the copies are kept for 30 days.\n",
    "onboarding.txt": "New engineers get a laptop, a security key and access to the staging "
                      "cluster on their first day.\n",
}


def write_samples(where: Path) -> None:
    """What the pages' blocks read: ``corpus.jsonl`` (the demo's conference programme, 36
    sessions), ``notes/`` (three small files) and ``scifact/``: a BEIR-format stand-in for
    SciFact made from the programme (each session's title is a query judged relevant to that
    session), so that `eval` and `tune` blocks have a data set of the right shape."""
    shutil.copy(CONFERENCE, where / "corpus.jsonl")
    for name, text in NOTES.items():
        (where / "notes" / name).parent.mkdir(parents=True, exist_ok=True)
        (where / "notes" / name).write_text(text, encoding="utf-8")
    beir = where / "scifact"
    (beir / "qrels").mkdir(parents=True)
    rows = [json.loads(line) for line in CONFERENCE.read_text(encoding="utf-8").splitlines()]
    with (beir / "corpus.jsonl").open("w", encoding="utf-8") as corpus, \
            (beir / "queries.jsonl").open("w", encoding="utf-8") as queries:
        for row in rows:
            corpus.write(json.dumps({"_id": row["id"], "title": row["title"],
                                     "text": row["text"]}) + "\n")
            queries.write(json.dumps({"_id": f"q-{row['id']}", "text": row["title"]}) + "\n")
    for split, part in (("train", rows[::2]), ("test", rows[1::2])):
        judged = "".join(f"q-{r['id']}\t{r['id']}\t1\n" for r in part)
        (beir / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + judged,
                                                     encoding="utf-8")


SAMPLES = ("corpus.jsonl", "notes", "scifact")


# --- running blocks ----------------------------------------------------------------------------

def commands(block: Block) -> list[list[str]]:
    """The argv of each `minilm-qdrant` command of a bash block."""
    joined = re.sub(r"\\\n", " ", block.source)
    found = []
    for raw in joined.splitlines():
        argv = shlex.split(raw, comments=True)
        if not argv:
            continue
        if argv[0] != "minilm-qdrant" or any(c in raw.split("#")[0] for c in "|;&$`<>"):
            pytest.fail(f"{block.where}: a bash block may only hold minilm-qdrant commands; "
                        f"mark it `<!-- docs-test: skip REASON -->` to keep {raw.strip()!r}",
                        pytrace=False)
        found.append(argv[1:])
    return found


def cli(argv: list[str]) -> int:
    """``minilm-qdrant ARGV`` in this process (the installed console script's entry point)."""
    (script,) = entry_points(group="console_scripts", name="minilm-qdrant")
    main = script.load()
    saved = sys.argv
    sys.argv = ["minilm-qdrant", *argv]
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def run_bash(block: Block, capsys: pytest.CaptureFixture[str], log: list[str]) -> None:
    for argv in commands(block):
        code = cli(argv)
        out, err = capsys.readouterr()
        log.append(f"$ minilm-qdrant {shlex.join(argv)}\n{out}{err}")
        assert code == 0, f"{block.where}: `minilm-qdrant {shlex.join(argv)}` exited {code}:\n" \
                          + "\n".join(log)


def run_python(block: Block, eval_example: EvalExample, capsys: pytest.CaptureFixture[str],
               log: list[str]) -> None:
    assert block.example is not None, f"{block.where}: pytest-examples did not find this block"
    main = sys.modules.get("__main__")
    try:
        eval_example.run(block.example)
    finally:  # pytest-examples runs a block as __main__ and leaves it there
        if main is not None:
            sys.modules["__main__"] = main
        out, err = capsys.readouterr()
        log.append(f">>> {block.where}\n{out}{err}")
    if "print(" in block.source:
        assert out.strip(), f"{block.where} prints nothing"


@pytest.mark.parametrize("chain", CHAINS, ids=[c.id for c in CHAINS])
def test_block_runs(chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    eval_example: EvalExample, capsys: pytest.CaptureFixture[str]) -> None:
    head = chain.blocks[0]
    if head.marker == "skip":
        pytest.skip(f"not run: {head.reason}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_samples(tmp_path)
    log: list[str] = []  # what the blocks printed, shown with -s (and on a failure)
    try:
        for block in chain.blocks:
            if block.marker == "skip":
                log.append(f"{block.where}: not run: {block.reason}")
            elif block.language == "bash":
                run_bash(block, capsys, log)
            else:
                run_python(block, eval_example, capsys, log)
    finally:
        print("\n".join(log))


def test_blocks_are_marked_well() -> None:
    """Every fence names a language the tests know, every skip says why, and a block that
    continues has one before it on its page."""
    problems = []
    for page in PAGES:
        for i, block in enumerate(blocks(page)):
            if block.language not in LANGUAGES:
                problems.append(f"{block.where}: fence language {block.language!r}: use python "
                                "or bash (run) or text")
            if block.marker == "skip" and not block.reason:
                problems.append(f"{block.where}: a skip needs its reason")
            if block.marker and block.language not in ("python", "bash"):
                problems.append(f"{block.where}: a docs-test marker on a {block.language!r} "
                                "block (only python and bash blocks run)")
            if block.marker == "continue" and i == 0:
                problems.append(f"{block.where}: continues nothing")
    assert not problems, "\n".join(problems)


def test_python_blocks_are_ruff_clean(eval_example: EvalExample,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python blocks pass ruff with the project's rules (imports sorted, no unused
    names), so that they can be pasted as they are."""
    monkeypatch.setenv("RUFF_NO_CACHE", "true")  # nothing written into the checkout
    eval_example.set_config(line_length=100, ruff_line_length=100, isort=True,
                            target_version="py310",
                            ruff_ignore=["RUF001", "RUF002", "RUF003"])  # as pyproject's
    failures = []
    for chain in CHAINS:
        for block in chain.blocks:
            if block.language == "python" and block.example is not None:
                try:
                    eval_example.lint_ruff(block.example)
                except pytest.fail.Exception as exc:
                    failures.append(f"{block.where}: {exc}")
    assert not failures, "\n".join(failures)


# --- what the prose says: links, options, figures ----------------------------------------------

NOT_CLI_FLAGS = {
    "--help",  # every command (click's own)
    "--index-url",  # pip
    "--strict", "--site-dir",  # mkdocs
    "--lc-python", "--cache", "--sets", "--out", "--format", "--configs",  # benchmarks
}


def cli_options() -> set[str]:
    """Every option of every `minilm-qdrant` command (and of the group)."""
    import typer

    (script,) = entry_points(group="console_scripts", name="minilm-qdrant")
    group = typer.main.get_command(sys.modules[script.load().__module__].app)
    found: set[str] = set()
    for command in [group, *getattr(group, "commands", {}).values()]:
        for param in command.params:
            found.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return found


def test_every_option_the_pages_name_exists() -> None:
    """An option named anywhere in the README or the docs (`--sync`, `--cached`...) is an
    option of the CLI (or of a tool listed in NOT_CLI_FLAGS)."""
    known = cli_options() | NOT_CLI_FLAGS
    unknown = {f"{page.relative_to(ROOT)}: {flag}"
               for page in PAGES
               for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", page.read_text("utf-8"))
               if flag not in known}
    assert not unknown, "\n".join(sorted(unknown))


def test_readme_links_resolve() -> None:
    """The README's relative links name files that exist (the site checks its own links with
    `mkdocs build --strict`)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [target for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
               if "://" not in target and not (ROOT / target).exists()]
    assert not missing, missing


def test_every_plot_is_captioned_with_its_machine_and_date() -> None:
    """docs/performance.md shows every figure benchmarks/plots.py draws, each followed by a
    caption naming the machine and date the figure's own caption (from its JSON) names; and
    every figure draws."""
    pytest.importorskip("matplotlib")  # the `docs` extra
    import importlib.util

    spec = importlib.util.spec_from_file_location("plots", ROOT / "benchmarks" / "plots.py")
    assert spec is not None and spec.loader is not None
    plots = importlib.util.module_from_spec(spec)
    sys.modules["plots"] = plots  # its dataclasses look their module up
    try:
        spec.loader.exec_module(plots)
    finally:
        del sys.modules["plots"]
    page = " ".join((ROOT / "docs" / "performance.md").read_text(encoding="utf-8").split())
    for figure in plots.FIGURES:
        image = f"](plots/{figure.name}.svg)"
        assert image in page, f"performance.md does not show {figure.name}"
        machine_and_date = figure.caption().rsplit("; ", 1)[0]
        following = page[page.index(image):][:400]
        assert f"*{machine_and_date};" in following, (figure.name, machine_and_date)
        assert plots.render(figure).startswith(b"<?xml")
