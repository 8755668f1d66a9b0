"""The package's own error types: each message says what went wrong and how to fix it.

The bottom of the house: imports nothing of the package, so every layer may raise them.
"""

from __future__ import annotations

from typing import Any


class MiniLMQdrantError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelNotFound(MiniLMQdrantError):
    """A model could not be found locally nor fetched from the hub."""


class UnsupportedModel(MiniLMQdrantError):
    """A known model that the chosen backend cannot run (yet)."""


class MissingDependency(MiniLMQdrantError):
    """An optional extra (e.g. ``onnx``) that the chosen feature needs is not installed."""


class CollectionMismatch(MiniLMQdrantError):
    """An existing collection was made for another model, size, distance or pooling."""


class StoreInUse(MiniLMQdrantError):
    """An embedded store is already opened by another process."""


class InputError(MiniLMQdrantError):
    """Input that cannot be embedded or stored (bad line, empty text, bad vector...)."""


class QdrantError(MiniLMQdrantError):
    """An operation on Qdrant failed; carries the server's message when there is one."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), str(self), self.status_code))  # picklable, code kept


class TransientError(QdrantError):
    """A failure worth retrying (network, timeouts, 408/429/5xx) that outlived its retries."""


class PermanentError(QdrantError):
    """A failure that retrying cannot fix (4xx, validation, bad answer)."""


class IngestError(MiniLMQdrantError):
    """An ingest stopped part-way: carries the report of what was and was not written."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report
        """The `minilm_qdrant.UpsertReport` of what was and was not written."""

    def __reduce__(self) -> tuple[type[IngestError], tuple[str, Any]]:
        return (type(self), (str(self), self.report))  # picklable with its report


class CollectionNotFound(MiniLMQdrantError):
    """A collection that must exist (to search it) does not."""


class DiskFull(MiniLMQdrantError):
    """Too little free space for an embedded store to write (or even open) safely."""


class StoreCorrupt(MiniLMQdrantError):
    """An embedded store's files cannot be read: names the file and the ways back."""


def _rebuilt(cls: type[QdrantError], message: str, status_code: int | None) -> QdrantError:
    return cls(message, status_code=status_code)


def require(*modules: str, message: str) -> None:
    """Fail at once, before any work, where a module of an optional extra is missing: one line,
    ``message`` with ``{module}`` the missing one (it names the extra to install)."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingDependency(message.format(module=module)) from None
