"""Files of one record a line as a Ray dataset: split on ``\\n`` alone, as
`inputs.read_documents` splits them (Ray's ``read_text`` splits on every Unicode line break,
which a JSON string may hold), streamed in blocks of a batch's lines, each line with its file
and number (an error names ``FILE:LINE`` as ``index`` does). Imports Ray: load it only once
Ray is known to be installed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from ray.data.datasource import FileBasedDatasource

from minilm_qdrant.distributed.worker import LINE, LINENO, PATH

CHUNK = 1 << 20


class Lines(FileBasedDatasource):
    """Rows `LINE` (bytes, without its newline), `PATH` and `LINENO` (from 1)."""

    def __init__(self, paths: list[str], rows: int) -> None:
        super().__init__(paths)
        self.rows = rows

    def _read_stream(self, f: Any, path: str) -> Iterator[pa.Table]:
        lines: list[bytes] = []
        numbers: list[int] = []
        lineno, rest = 0, b""

        def block() -> pa.Table:
            table = pa.table({LINE: pa.array(lines, pa.binary()),
                              PATH: pa.array([path] * len(lines), pa.string()),
                              LINENO: pa.array(numbers, pa.int64())})
            lines.clear()
            numbers.clear()
            return table

        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            *complete, rest = (rest + chunk).split(b"\n")
            for line in complete:
                lineno += 1
                lines.append(line)
                numbers.append(lineno)
                if len(lines) >= self.rows:
                    yield block()
        if rest:  # a last line without its newline
            lines.append(rest)
            numbers.append(lineno + 1)
        if lines:
            yield block()
