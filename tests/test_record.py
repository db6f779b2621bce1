"""The curated record: how it reads an asset, when a target covers a source, how a merge decides,
and which writes (in which order) make a target whole. Pure functions, no server."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from job.immich.models import Album, Asset, Edit, Exif, Face, MetadataItem, PersonRef, Stack, StackMember, StackRef, TagRef
from job.record import (
    MARKER, RULES, SELF, Facts, FaceBox, Record, differences, merge, normalize_instant, record_of, unmatched_faces,
    writes_for,
)

ME, OTHER = "u-me", "u-other"


def asset(**kw) -> Asset:
    base = dict(id="src", ownerId=ME, libraryId="lib", type="IMAGE", originalPath="/p/a.jpg", originalFileName="a.jpg",
                fileCreatedAt="2019-05-01T09:00:00.000Z", fileModifiedAt="2019-05-01T09:00:00.000Z", checksum="x",
                exifInfo=Exif(fileSizeInByte=10, dateTimeOriginal="2019-05-01T09:00:00+00:00"))
    return Asset.model_validate({**base, **kw})


def album(album_id: str, cover: str | None = None, owner: str = ME) -> Album:
    return Album(id=album_id, albumThumbnailAssetId=cover, ownerId=owner)


def test_every_record_field_has_a_rule():
    assert set(RULES) == {f.name for f in fields(Record)}


@pytest.mark.parametrize("spelling", ["2019-05-01T09:00:00+00:00", "2019-05-01T09:00:00.000Z", "2019-05-01T11:00:00+02:00"])
def test_instants_compare_whatever_their_spelling(spelling):
    assert normalize_instant(spelling) == "2019-05-01T09:00:00.000Z"


def test_reading_normalises_empty_values():
    rec = record_of(Facts(asset(exifInfo=Exif(description=None, rating=0, latitude=48.12345678, longitude=2.1))))
    assert rec.description == "" and rec.rating is None and rec.gps == (48.123457, 2.1)


def test_our_marker_is_not_part_of_the_record():
    facts = Facts(asset(), metadata=(MetadataItem(key=MARKER, value={"v": 1}), MetadataItem(key="note", value={"a": 1})))
    assert record_of(facts).metadata == frozenset({("note", '{"a":1}')})


def test_covers_and_stack_primary_count_only_for_self():
    facts = Facts(asset(stack=StackRef(id="s", primaryAssetId="src")),
                  albums=(album("a1", cover="src"), album("a2", cover="else"), album("a3", cover="src", owner=OTHER)),
                  stack=Stack(id="s", primaryAssetId="src", assets=[StackMember(id="src"), StackMember(id="b")]))
    rec = record_of(facts, {"src": SELF})
    assert rec.covers == frozenset({"a1"}), "another owner's album cover is not ours to carry"
    assert rec.stack.primary_is_self and rec.stack.others == frozenset({"b"})


def test_source_and_target_identities_differ_on_purpose():
    """Seen from the target, a cover still on the source is missing: it must be repointed."""
    target = Facts(asset(id="tgt", libraryId=None), albums=(album("a1", cover="src"),))
    assert record_of(target, {"tgt": SELF}).covers == frozenset()
    assert record_of(target, {"tgt": SELF, "src": SELF}).covers == frozenset({"a1"})


@pytest.mark.parametrize("source,target,ok", [
    (dict(favorite=True), dict(favorite=False), False),
    (dict(favorite=False), dict(favorite=True), True),
    (dict(visibility="timeline"), dict(visibility="archive"), True),
    (dict(visibility="archive"), dict(visibility="timeline"), False),
    (dict(visibility="hidden"), dict(visibility="timeline"), False),
    (dict(description=""), dict(description="phone"), True),
    (dict(description="ext"), dict(description="phone"), False),
    (dict(rating=None), dict(rating=2), True),
    (dict(rating=4), dict(rating=4), True),
    (dict(tags=frozenset({"a"})), dict(tags=frozenset({"a", "b"})), True),
    (dict(tags=frozenset({"a", "c"})), dict(tags=frozenset({"a"})), False),
    (dict(albums=frozenset({"x"})), dict(albums=None), False),
    (dict(edits=(("crop", "{}"),)), dict(edits=()), False),
    (dict(live_video="@live"), dict(live_video=None), False),
])
def test_when_a_target_covers_a_source(source, target, ok):
    assert (not differences(Record(**source), Record(**target))) is ok


def test_faces_match_by_overlap_and_person():
    want = frozenset({FaceBox("alice", 0.1, 0.1, 0.3, 0.4)})
    assert not unmatched_faces(want, frozenset({FaceBox("alice", 0.11, 0.1, 0.31, 0.41)}))
    assert unmatched_faces(want, frozenset({FaceBox("bob", 0.1, 0.1, 0.3, 0.4)}))
    assert unmatched_faces(want, frozenset({FaceBox("alice", 0.5, 0.5, 0.7, 0.8)}))


def test_a_merge_lets_the_source_win_keeps_what_it_leaves_empty_and_unites_sets():
    source = Record(favorite=False, description="", rating=5, tags=frozenset({"a"}), visibility="timeline")
    target = Record(favorite=True, description="phone", rating=2, tags=frozenset({"b"}), visibility="archive")
    merged = merge(source, target)
    assert (merged.favorite, merged.description, merged.rating, merged.tags, merged.visibility) == \
        (True, "phone", 5, frozenset({"a", "b"}), "archive")
    assert not differences(source, merged)
    assert [d.field for d in differences(target, merged)] == ["rating"], "only where both had a value, the source's wins"


def test_writes_put_the_copy_first_and_group_scalar_fields():
    src = asset(tags=[TagRef(id="t1", value="Trips/Ireland")], stack=StackRef(id="s", primaryAssetId="src"))
    facts = Facts(src, albums=(album("a1"),), edits=(Edit(action="crop", parameters={"x": 1}),),
                  stack=Stack(id="s", primaryAssetId="src", assets=[StackMember(id="src"), StackMember(id="b")]))
    expected = replace(record_of(facts, {"src": SELF}), description="d", rating=3, gps=(1.0, 2.0), favorite=True)
    kinds = [w.kind for w in writes_for(expected, Record(), facts, can_copy=True, can_edit=True)]
    assert kinds[0] == "copy" and kinds.count("set_fields") == 1
    assert kinds.index("set_edits") > 0 and "make_stack_primary" in kinds
    fields_write = next(w for w in writes_for(expected, Record(), facts, can_copy=True, can_edit=True) if w.kind == "set_fields")
    assert fields_write.args == {"isFavorite": True, "description": "d", "rating": 3, "dateTimeOriginal": "2019-05-01T09:00:00.000Z",
                                 "latitude": 1.0, "longitude": 2.0}
    tag_write = next(w for w in writes_for(expected, Record(), facts, can_copy=True, can_edit=True) if w.kind == "add_tags")
    assert tag_write.args["tag_ids"] == ["t1"]


def test_without_the_copy_endpoint_each_kind_is_written_by_hand():
    src = asset(stack=StackRef(id="s", primaryAssetId="p"))
    facts = Facts(src, albums=(album("a1"),), shared_links=frozenset({"l1"}),
                  stack=Stack(id="s", primaryAssetId="p", assets=[StackMember(id="src"), StackMember(id="p")]))
    kinds = {w.kind: w.args for w in writes_for(record_of(facts, {"src": SELF}), Record(), facts, can_copy=False, can_edit=False)}
    assert kinds["add_albums"] == {"album_ids": ["a1"]} and kinds["add_shared_links"] == {"link_ids": ["l1"]}
    assert kinds["join_stack"] == {"primary_id": "p"} and "copy" not in kinds


def test_nothing_to_write_when_the_target_already_covers_the_source():
    facts = Facts(asset(), albums=(album("a1"),))
    rec = record_of(facts, {"src": SELF})
    assert writes_for(rec, rec, facts, can_copy=True, can_edit=True) == []


def test_faces_of_people_only():
    face = Face(id="f", boundingBoxX1=64, boundingBoxY1=48, boundingBoxX2=128, boundingBoxY2=96, imageWidth=640,
                imageHeight=480, person=PersonRef(id="alice"))
    nobody = face.model_copy(update={"person": None, "id": "g"})
    rec = record_of(Facts(asset(), faces=(face, nobody)))
    assert rec.faces == frozenset({FaceBox("alice", 0.1, 0.1, 0.2, 0.2)})
