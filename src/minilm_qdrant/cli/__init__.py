"""The `minilm-qdrant` command: parsing, progress bars, printing and exit codes (nothing else).

One module per command group; errors print one line and exit non-zero (``--debug`` shows the
traceback).
"""

from minilm_qdrant.cli import admin, ingest, search, tune  # noqa: F401  (registers the commands)
from minilm_qdrant.cli.common import app, main

__all__ = ["app", "main"]
