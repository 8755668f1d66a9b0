"""Inputs: where documents come from. Files of records (JSONL, CSV, text: `records`, a leaf),
one document a file (`formats` reads text, Markdown, HTML, PDF), folders walked into documents
that know their source (`files`), and `sync`, which keeps a collection equal to a folder.

Inputs know nothing of engines or the embedder: they make `Document`s, and `sync` drives a
`Collection` through its public methods.
"""

from minilm_qdrant.inputs.files import (
    MANY_DOCUMENT_SUFFIXES,
    MAX_FILE_BYTES,
    FolderStats,
    SourceFile,
    files,
    printable,
    read_file,
    read_path,
)
from minilm_qdrant.inputs.records import ReadStats, count_lines, read_documents
from minilm_qdrant.inputs.sync import SyncReport, sync

__all__ = ["MANY_DOCUMENT_SUFFIXES", "MAX_FILE_BYTES", "FolderStats", "ReadStats",
           "SourceFile", "SyncReport", "count_lines", "files", "printable", "read_documents",
           "read_file", "read_path", "sync"]
