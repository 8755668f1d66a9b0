"""The collection: `Collection`, the one public facade, and its rooms, each built from one
frozen `Parts` value (`parts`): the write path (`write`, one `run` per ingest, `batching`,
`staging`), `search`, the `lifecycle` and `reembed`. See docs/architecture.md."""

from minilm_qdrant.collection.facade import DEFAULT_COLLECTION, FINGERPRINT_KEY, Collection
from minilm_qdrant.collection.options import CollectionOptions
from minilm_qdrant.collection.parts import Parts
from minilm_qdrant.collection.reembed import ReembedReport
from minilm_qdrant.collection.report import UpsertReport
from minilm_qdrant.collection.write import WritePath

__all__ = ["DEFAULT_COLLECTION", "FINGERPRINT_KEY", "Collection", "CollectionOptions", "Parts",
           "ReembedReport", "UpsertReport", "WritePath"]
