"""`UpsertReport`: what an ingest did, counted as it goes (a value the write path fills and an
`IngestError` carries)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class UpsertReport:
    """What an ingest did. ``ok`` only when every document given was written."""

    written: int = 0
    unchanged: int = 0
    """Documents already stored with the same embedded text, model and payload (skipped:
    nothing embedded, nothing written)."""
    failed: int = 0
    retries: int = 0
    duplicates: int = 0
    """Documents whose id appeared again later in the same ingest (the last one wins)."""
    truncated: int = 0
    """Texts cut to the model's limit (a collection without windows embeds only the first
    window of each text)."""
    windows: int = 0
    """Windows embedded (one per document that fits the model)."""
    windowed: int = 0
    """Documents embedded as more than one window."""
    tokens: int = 0
    """Word pieces embedded; with ``padded_tokens``, the padding waste of the batches."""
    padded_tokens: int = 0
    failed_ids: list[str | int] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, other: UpsertReport) -> None:
        """Count ``other`` in too (a worker's part of one ingest; its seconds are not)."""
        for each in fields(self):
            if each.name not in ("failed_ids", "seconds"):
                setattr(self, each.name, getattr(self, each.name) + getattr(other, each.name))
        self.failed_ids.extend(other.failed_ids)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def padding_waste(self) -> float:
        """Share of computed tokens that were padding (batches are sorted by length)."""
        return 1 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0
