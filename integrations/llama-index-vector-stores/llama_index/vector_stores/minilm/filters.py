"""LlamaIndex `MetadataFilters` -> a qdrant `Filter` on the core's ``metadata.<key>`` payload.

Every operator and condition is translated or refused with `ValueError`; none is dropped.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from qdrant_client import models


def to_qdrant(filters: MetadataFilters | None) -> models.Filter | None:
    if filters is None or not filters.filters:
        return None
    parts = [_one(f) for f in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return models.Filter(must=parts)
    if condition == FilterCondition.OR:
        return models.Filter(should=parts)
    if condition == FilterCondition.NOT:  # none of them
        return models.Filter(must_not=parts)
    raise ValueError(f"filter condition {condition!r} is not supported")


def _one(f: MetadataFilter | MetadataFilters) -> Any:
    if isinstance(f, MetadataFilters):
        return to_qdrant(f)
    key, value, op = f"metadata.{f.key}", f.value, f.operator

    def field(**kwargs: Any) -> models.FieldCondition:
        return models.FieldCondition(key=key, **kwargs)

    if op == FilterOperator.EQ:
        if isinstance(value, float):
            return field(range=models.Range(gte=value, lte=value))
        return field(match=models.MatchValue(value=value))  # type: ignore[arg-type]
    if op == FilterOperator.NE:
        return models.Filter(must_not=[_one(MetadataFilter(key=f.key, value=value))])
    ranges = {FilterOperator.GT: "gt", FilterOperator.GTE: "gte", FilterOperator.LT: "lt",
              FilterOperator.LTE: "lte"}
    if op in ranges:
        return field(range=models.Range(**{ranges[op]: value}))  # type: ignore[arg-type]
    if op in (FilterOperator.IN, FilterOperator.ANY):
        return field(match=models.MatchAny(any=_values(f)))
    if op == FilterOperator.NIN:
        return field(match=models.MatchExcept(**{"except": _values(f)}))
    if op == FilterOperator.ALL:
        return models.Filter(must=[field(match=models.MatchValue(value=v)) for v in _values(f)])
    if op == FilterOperator.CONTAINS:
        return field(match=models.MatchValue(value=value))  # type: ignore[arg-type]
    if op == FilterOperator.TEXT_MATCH:
        return field(match=models.MatchText(text=str(value)))
    if op == FilterOperator.IS_EMPTY:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
    raise ValueError(f"filter operator {op.value!r} on {f.key!r} is not supported by "
                     "minilm-qdrant; use ==, !=, >, >=, <, <=, in, nin, any, all, contains, "
                     "text_match or is_empty")


def _values(f: MetadataFilter) -> list[Any]:
    if not isinstance(f.value, list):
        raise ValueError(f"filter operator {f.operator.value!r} on {f.key!r} needs a list")
    return list(f.value)
