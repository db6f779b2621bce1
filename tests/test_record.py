"""The curated record: how it reads an asset, when a target covers a source, how a merge decides,
and which writes (in which order) make a target whole. Pure functions, no server."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from job import journal
from job.facts import FaceBox, Facts, normalize_instant, unmatched_faces
from job.immich.models import Album, Asset, Edit, Exif, Face, MetadataItem, PersonRef, Stack, StackMember, StackRef, TagRef
from job.record import RULES, SELF, Policy, Record, blocking, differences, merge, record_of
from job.writes import WriteKind, writes_for

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


def test_our_keys_are_not_part_of_the_record():
    facts = Facts(asset(), metadata=(MetadataItem(key=journal.KEY, value={"v": 1}), MetadataItem(key="note", value={"a": 1}),
                                     MetadataItem(key=journal.CLAIM_KEY, value={"v": 1, "run": "r"})))
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


def test_a_merge_keeps_what_the_source_leaves_empty_and_unites_sets_and_flags():
    source = Record(favorite=False, description="", rating=None, tags=frozenset({"a"}), visibility="timeline")
    target = Record(favorite=True, description="phone", rating=2, tags=frozenset({"b"}), visibility="archive")
    merged, conflicts = merge(source, target)
    assert (merged.favorite, merged.description, merged.rating, merged.tags, merged.visibility) == \
        (True, "phone", 2, frozenset({"a", "b"}), "archive")
    assert not conflicts and not differences(source, merged) and not differences(target, merged)


def test_a_value_only_the_source_has_is_taken_without_conflict():
    merged, conflicts = merge(Record(rating=5, gps=(1.0, 2.0)), Record(rating=None))
    assert (merged.rating, merged.gps, conflicts) == (5, (1.0, 2.0), [])


@pytest.mark.parametrize("field,ours,theirs", [
    ("description", "external caption", "phone caption"), ("rating", 5, 2), ("gps", (1.0, 2.0), (3.0, 4.0)),
    ("taken_at", "2015-08-09T16:30:00.000Z", "2019-05-01T09:00:00.000Z"), ("time_zone", "Europe/Paris", "UTC"),
    ("edits", (("crop", "{}"),), (("rotate", "{}"),)), ("live_video", "@live", "other-video"),
])
def test_two_different_single_values_are_a_conflict_never_a_silent_overwrite(field, ours, theirs):
    source, target = Record(**{field: ours}), Record(**{field: theirs})
    held, conflicts = merge(source, target, Policy.HOLD)
    assert [c.field for c in conflicts] == [field] and blocking(conflicts, Policy.HOLD)
    assert getattr(held, field) == theirs, "while held, the internal asset's value stands"
    internal, _ = merge(source, target, Policy.INTERNAL)
    external, found = merge(source, target, Policy.EXTERNAL)
    assert getattr(internal, field) == theirs
    if field == "live_video":  # taking either side would orphan the other side's video: always held
        assert getattr(external, field) == theirs and blocking(found, Policy.EXTERNAL)
    else:
        assert getattr(external, field) == ours and not blocking(found, Policy.EXTERNAL)


def test_descriptions_can_be_joined_instead():
    merged, conflicts = merge(Record(description="from the folder"), Record(description="from the phone"),
                              join_descriptions=True)
    assert merged.description == "from the phone\n\nfrom the folder" and not conflicts
    same, _ = merge(Record(description="dawn"), Record(description="cliffs at dawn"), join_descriptions=True)
    assert same.description == "cliffs at dawn"


def test_writes_put_the_copy_first_and_group_scalar_fields():
    src = asset(tags=[TagRef(id="t1", value="Trips/Ireland")], stack=StackRef(id="s", primaryAssetId="src"))
    facts = Facts(src, albums=(album("a1"),), edits=(Edit(action="crop", parameters={"x": 1}),),
                  stack=Stack(id="s", primaryAssetId="src", assets=[StackMember(id="src"), StackMember(id="b")]))
    expected = replace(record_of(facts, {"src": SELF}), description="d", rating=3, gps=(1.0, 2.0), favorite=True)
    kinds = [w.kind for w in writes_for(expected, Record(), [facts], can_copy=True, can_edit=True)]
    assert kinds[0] is WriteKind.COPY and kinds.count(WriteKind.SET_FIELDS) == 1
    assert kinds.index(WriteKind.SET_EDITS) > 0 and WriteKind.MAKE_STACK_PRIMARY in kinds
    fields_write = next(w for w in writes_for(expected, Record(), [facts], can_copy=True, can_edit=True)
                        if w.kind is WriteKind.SET_FIELDS)
    assert fields_write.args == {"isFavorite": True, "description": "d", "rating": 3, "dateTimeOriginal": "2019-05-01T09:00:00.000Z",
                                 "latitude": 1.0, "longitude": 2.0}
    tag_write = next(w for w in writes_for(expected, Record(), [facts], can_copy=True, can_edit=True)
                     if w.kind is WriteKind.ADD_TAGS)
    assert tag_write.args["tag_ids"] == ["t1"]


def test_without_the_copy_endpoint_each_kind_is_written_by_hand():
    src = asset(stack=StackRef(id="s", primaryAssetId="p"))
    facts = Facts(src, albums=(album("a1"),), shared_links=frozenset({"l1"}),
                  stack=Stack(id="s", primaryAssetId="p", assets=[StackMember(id="src"), StackMember(id="p")]))
    kinds = {w.kind: w.args for w in writes_for(record_of(facts, {"src": SELF}), Record(), [facts], can_copy=False,
                                                can_edit=False)}
    assert kinds[WriteKind.ADD_ALBUMS] == {"album_ids": ["a1"]} and kinds[WriteKind.ADD_SHARED_LINKS] == {"link_ids": ["l1"]}
    assert kinds[WriteKind.JOIN_STACK] == {"primary_id": "p"} and WriteKind.COPY not in kinds


def test_nothing_to_write_when_the_target_already_covers_the_source():
    facts = Facts(asset(), albums=(album("a1"),))
    rec = record_of(facts, {"src": SELF})
    assert writes_for(rec, rec, [facts], can_copy=True, can_edit=True) == []


def test_path_twins_give_their_tags_and_key_values_too():
    first = Facts(asset(tags=[TagRef(id="t1", value="A")]), metadata=(MetadataItem(key="k1", value={"v": 1}),))
    second = Facts(asset(id="twin", tags=[TagRef(id="t2", value="B")]), metadata=(MetadataItem(key="k2", value={"v": 2}),))
    expected, _ = merge(record_of(second, {"twin": SELF}), record_of(first, {"src": SELF}))
    writes = {w.kind: w.args for w in writes_for(expected, Record(), [first, second], can_copy=True, can_edit=True)}
    assert writes[WriteKind.ADD_TAGS] == {"tag_ids": ["t1", "t2"]}
    assert writes[WriteKind.PUT_METADATA] == {"items": [("k1", {"v": 1}), ("k2", {"v": 2})]}


def test_faces_of_people_only():
    face = Face(id="f", boundingBoxX1=64, boundingBoxY1=48, boundingBoxX2=128, boundingBoxY2=96, imageWidth=640,
                imageHeight=480, person=PersonRef(id="alice"))
    nobody = face.model_copy(update={"person": None, "id": "g"})
    rec = record_of(Facts(asset(), faces=(face, nobody)))
    assert rec.faces == frozenset({FaceBox("alice", 0.1, 0.1, 0.2, 0.2)})
