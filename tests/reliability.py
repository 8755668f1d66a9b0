"""The reliability table: the rows a test run records (`faults.record`), where the run leaves
them, and the command that writes ``reports/reliability.md`` from them.

A test run never writes into the checkout: it leaves its rows in
``$MINILM_QDRANT_REPORTS/reliability-rows.json`` (default: a folder of this checkout's own under
the system's temporary directory, printed at the end of the run). The tracked table is then
written by its own command, from the repository root::

    python -m pytest                 # the whole suite: exactly its rows
    python -m tests.reliability      # reports/reliability.md from them

The whole suite's run (no paths, no ``-k`` or ``-m``) leaves exactly its rows, so a case that
no test tries any more leaves the table; a run of some test files adds its rows to those left
before (each replacing the row of its case), and the table keeps its rows of the cases that run
did not try. A cell never depends on timing: a count that does is recorded as the rule it
satisfied (`within`), not as the number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from dataclasses import astuple, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "reports" / "reliability.md"
ROWS_FILE = "reliability-rows.json"


@dataclass
class Row:
    case: str
    outcome: str
    expected: int | str
    observed: int | str


def within(low: int, high: int, value: int) -> int | str:
    """A count that depends on timing (how far a killed ingest got), as the rule it satisfied,
    ``"low..high"``; the count itself when it breaks the rule (the table then says **NO**)."""
    return f"{low}..{high}" if low <= value <= high else value


def rows_dir() -> Path:
    """``$MINILM_QDRANT_REPORTS``, else ``<tmp>/minilm-qdrant-reports/<hash of this checkout>``
    (outside the checkout, one per checkout)."""
    chosen = os.environ.get("MINILM_QDRANT_REPORTS")
    if chosen:
        return Path(chosen)
    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "minilm-qdrant-reports" / key


def save_rows(rows: list[Row], whole: bool, folder: Path | None = None) -> Path:
    """Leave a run's rows (see the module's docstring): the whole suite's replace those left
    before; a partial run's are merged into them."""
    path = (folder or rows_dir()) / ROWS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not whole and path.exists():
        previous, whole = load_rows(path)
        rows = merge_rows(previous, rows)
    data = {"whole": whole, "rows": [list(astuple(r)) for r in rows]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_rows(path: Path) -> tuple[list[Row], bool]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Row(*cells) for cells in data["rows"]], bool(data["whole"])


def table_markdown(rows: list[Row]) -> str:
    lines = [
        "# Reliability: faults and bad input tried by the test run",
        "",
        "Points afterwards: what the store holds (embedded store) or the distinct point ids "
        "the fault injector acknowledged (HTTP faults). A count that depends on timing is the "
        "range it fell in (`low..high`).",
        "",
        "Written by `python -m tests.reliability` from the rows of the last test run.",
        "",
        "| fault or bad input | what happened | points expected | points observed | ok |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ok = "yes" if _matches(r.expected, r.observed) else "**NO**"
        outcome = r.outcome.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.case} | {outcome} | {r.expected} | {r.observed} | {ok} |")
    return "\n".join(lines) + "\n"


def parse_table(text: str) -> list[Row]:
    """The rows of a table written by `table_markdown`."""
    rows: list[Row] = []
    for line in text.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in line.strip()[1:-1].split(" | ")]
        if not line.startswith("| ") or len(cells) != 5 or cells[0] == "fault or bad input":
            continue
        rows.append(Row(*cells[:4]))
    return rows


def merge_rows(previous: list[Row], rows: list[Row]) -> list[Row]:
    """``previous``, each replaced by the row of the same case in ``rows``, then the new cases
    of ``rows``: a run of a few test files updates its rows and keeps the others."""
    fresh = {r.case: r for r in rows}
    merged = [fresh.pop(r.case, r) for r in previous]
    return merged + list(fresh.values())


def write_table(rows_path: Path, out: Path = TABLE) -> str:
    """Write ``out`` from the rows a run left: exactly them after a whole-suite run, else
    merged into the table ``out`` holds."""
    rows, whole = load_rows(rows_path)
    if not whole and out.exists():
        rows = merge_rows(parse_table(out.read_text(encoding="utf-8")), rows)
    text = table_markdown(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text


def _matches(expected: int | str, observed: int | str) -> bool:
    """Equal, or inside an expected range written ``low..high``."""
    if str(expected) == str(observed):
        return True
    low, sep, high = str(expected).partition("..")
    if sep:
        return str(observed).isdigit() and int(low) <= int(observed) <= int(high)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability",
        description="Write reports/reliability.md from the rows the last test run left.")
    parser.add_argument("--rows", type=Path, default=None,
                        help=f"the rows file (default: {rows_dir() / ROWS_FILE})")
    parser.add_argument("--out", type=Path, default=TABLE, help=f"the table (default: {TABLE})")
    args = parser.parse_args(argv)
    rows_path = args.rows or rows_dir() / ROWS_FILE
    if not rows_path.exists():
        parser.error(f"no rows at {rows_path}: run the tests first (python -m pytest)")
    text = write_table(rows_path, args.out)
    print(f"{args.out}: {len(parse_table(text))} rows from {rows_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
