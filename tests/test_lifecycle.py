"""The document lifecycle on every real engine: get by the caller's ids, delete by ids and by
filter, update metadata without re-embedding; filters on the embedded store never dropped."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qdrant_client import models

from minilm_qdrant import Collection, Document, Embedder, InputError
from minilm_qdrant.engines.edge_requests import to_edge_filter

PLACES = {"paris": (2.35, 48.86), "lyon": (4.84, 45.76), "berlin": (13.40, 52.52),
          "tokyo": (139.69, 35.69)}
DOCS = [Document(f"A travel guide to {city}, its food and its museums.",
                 {"city": city, "n": i, "loc": {"lon": lon, "lat": lat}}, city)
        for i, (city, (lon, lat)) in enumerate(PLACES.items())] + [
        Document("Numbers as ids work too.", {"n": 9}, 7)]


def _by(key: str, value: object) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(
        key=f"metadata.{key}", match=models.MatchValue(value=value))])  # type: ignore[arg-type]


@pytest.fixture
def col(location: str, embedder: Embedder):
    c = Collection("docs", embedder, path=location)
    c.upsert(DOCS)
    yield c
    c.close()


def _vectors(col: Collection) -> dict[str, np.ndarray]:
    return {p.id: p.vector for page in col.engine.scroll("docs", 100) for p in page
            if p.vector is not None}


def test_get_by_the_callers_ids(col: Collection) -> None:
    got = col.get(["berlin", "atlantis", "paris", 7])
    assert [d.id for d in got] == ["berlin", "paris", 7]  # the order asked; missing absent
    assert got[0] == DOCS[2]  # text, metadata and id as written
    assert [d.id for d in col.get("lyon")] == ["lyon"]  # one id, not its letters
    assert [d.id for d in col.get(["7"])] == [7]  # "7" and 7 are the same caller id
    assert col.get([]) == []
    with pytest.raises(InputError, match="not a string or an integer"):
        col.get([1.5])  # type: ignore[list-item]


def test_delete_by_ids_and_by_filter(col: Collection) -> None:
    assert col.delete(["paris", "atlantis"]) == 1
    assert col.count() == 4 and col.get(["paris"]) == []
    assert col.delete(["paris"]) == 0  # already gone: nothing to do, nothing raised
    assert col.delete(_by("city", "tokyo")) == 1
    assert col.delete(_by("city", "tokyo")) == 0
    assert sorted(str(d.id) for d in col.get([*PLACES, 7])) == ["7", "berlin", "lyon"]
    assert {h.id for h in col.search("museums", k=10)} == {"berlin", "lyon", 7}


def test_set_metadata_merges_without_reembedding(col: Collection) -> None:
    before = _vectors(col)
    assert col.set_metadata(["paris", "atlantis"], {"visited": "yes", "n": 100}) == 1
    paris = col.get(["paris"])[0]
    assert paris.metadata == {**DOCS[0].metadata, "visited": "yes", "n": 100}
    assert paris.text == DOCS[0].text
    flt = models.Filter(must=[models.FieldCondition(key="metadata.n", range=models.Range(lt=3))])
    assert col.set_metadata(flt, {"tier": "a"}) == 2  # lyon (1) and berlin (2); paris is 100
    assert {str(d.id) for d in col.get([*PLACES, 7]) if d.metadata.get("tier")} == {
        "lyon", "berlin"}
    after = _vectors(col)
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[k], before[k]) for k in before)  # vectors untouched
    assert [h.id for h in col.search("a", k=5, query_filter=_by("visited", "yes"))] == ["paris"]


def test_bad_metadata_is_refused_and_changes_nothing(col: Collection) -> None:
    for values, message in [({"x": math.nan}, "field 'x' is nan.*nothing was changed"),
                            ({"x": {"y": [1, math.inf]}}, r"field 'x.y\[1\]' is inf"),
                            ({"x": object()}, "field 'x' is a object, which JSON cannot hold"),
                            ({1: "a"}, "string keys")]:
        with pytest.raises(InputError, match=message):
            col.set_metadata(["paris"], values)  # type: ignore[arg-type]
    assert col.get(["paris"])[0].metadata == DOCS[0].metadata


def test_geo_filters_apply_on_every_engine(col: Collection) -> None:
    """The embedded store once ignored geo conditions (and returned nothing): now every engine
    applies them alike."""
    near_paris = models.Filter(must=[models.FieldCondition(
        key="metadata.loc", geo_radius=models.GeoRadius(
            center=models.GeoPoint(lon=2.35, lat=48.86), radius=500_000))])
    assert {h.id for h in col.search("museums", k=10, query_filter=near_paris)} == {
        "paris", "lyon"}
    europe = models.Filter(must=[models.FieldCondition(
        key="metadata.loc", geo_bounding_box=models.GeoBoundingBox(
            top_left=models.GeoPoint(lon=-10, lat=60),
            bottom_right=models.GeoPoint(lon=30, lat=35)))])
    assert col.count(europe) == 3
    square = models.GeoPolygon(exterior=models.GeoLineString(points=[
        models.GeoPoint(lon=0, lat=44), models.GeoPoint(lon=6, lat=44),
        models.GeoPoint(lon=6, lat=50), models.GeoPoint(lon=0, lat=50),
        models.GeoPoint(lon=0, lat=44)]))
    france = models.Filter(must=[models.FieldCondition(key="metadata.loc", geo_polygon=square)])
    assert col.delete(france) == 2 and col.count() == 3


def test_boolean_matches_work_or_are_refused(col: Collection) -> None:
    """qdrant-edge 0.9.0 matches True as the integer 1 (finding no boolean): the embedded
    store refuses such a filter instead of answering wrongly; the other engines apply it."""
    col.set_metadata(["paris"], {"visited": True})
    if col.engine.__class__.__name__ == "EdgeEngine":
        with pytest.raises(InputError, match=r"boolean .* not supported by the embedded store"):
            col.search("museums", query_filter=_by("visited", True))
        assert col.count() == len(DOCS)
    else:
        assert [h.id for h in col.search("museums", query_filter=_by("visited", True))] == [
            "paris"]


def test_edge_refuses_conditions_it_cannot_translate() -> None:
    with pytest.raises(InputError, match="not supported by the embedded store"):
        to_edge_filter(models.Filter.model_construct(must=[object()]))
    # a condition part a later qdrant-client may add is refused, not dropped
    future = models.FieldCondition.model_construct(_fields_set={"key", "geo_hexagon"}, key="x")
    with pytest.raises(InputError, match=r"uses \['geo_hexagon'\], which the embedded store"):
        to_edge_filter(models.Filter(must=[future]))
