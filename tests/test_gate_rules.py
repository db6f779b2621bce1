"""The delete gate's decisions, pure: which libraries hold a file, which claims hold, and when a unit may
be deleted. No server."""

from __future__ import annotations

from dataclasses import replace

import pytest

from job import journal
from job.decide import Scope, file_holds, twins
from job.facts import Facts
from job.immich.models import Asset, Exif, Library, MetadataItem
from job.journal import Claim
from job.move.context import Identity, Member, Pending, Unit
from job.move.evidence import Evidence, FileNow
from job.move.gate import PASS, judge
from job.outcome import Hold, Outcome
from job.paths import covers, excluded, in_immich_storage, media_root
from job.record import SELF, record_of

ME, OTHER = "u-me", "u-other"

# (pattern, path, picomatch 4.0.5's answer), as printed by Immich 3.1.0's own picomatch on 2026-11-25
PICOMATCH = [
    ("**/@eaDir/**", "/photos/@eaDir/x.jpg", True), ("**/@eaDir/**", "/photos/a/@eaDir/b/x.jpg", True),
    ("**/._*", "/photos/._x.jpg", True), ("**/#recycle/**", "/photos/#recycle/x.jpg", True),
    ("/photos/2020/**", "/photos/2020/a.jpg", True), ("/photos/2020/**", "/photos/2020/sub/a.jpg", True),
    ("**/2020/**", "/photos/2020/a.jpg", True), ("*.jpg", "/photos/a.jpg", False), ("**/*.jpg", "/photos/a.jpg", True),
    ("**/*.jpg", "/photos/.hidden/a.jpg", False), ("**/*.jpg", "/photos/.a.jpg", False), ("/photos/*", "/photos/a.jpg", True),
    ("/photos/*", "/photos/sub/a.jpg", False), ("**/tmp*/**", "/photos/tmpx/a.jpg", True), ("**/a?c.jpg", "/p/abc.jpg", True),
    ("**/a?c.jpg", "/p/a/c.jpg", False), ("/photos/**", "/photos/.x/a.jpg", False), ("**", "/photos/a.jpg", True),
    ("**/@eaDir/**", "/photos/@eaDir", True), ("**/*.JPG", "/p/a.jpg", False), ("/Photos/**", "/photos/a.jpg", False),
    ("**/x/**", "/x/a.jpg", True),
]


@pytest.mark.parametrize("pattern,path,picomatch", PICOMATCH)
def test_exclusion_patterns_never_exclude_what_immich_would_import(pattern, path, picomatch):
    assert excluded(pattern, path) is picomatch


@pytest.mark.parametrize("pattern", ["**/{a,b}/**", "**/[ab]/**", "**/!(x)/**", "**/@(a)/**", "**/a\\*b"])
def test_glob_syntax_that_is_not_modelled_excludes_nothing(pattern):
    assert not excluded(pattern, "/photos/a/x.jpg"), "unknown: the file counts as covered, so it is held"


def library(lid: str, owner: str, *paths: str, exclude: tuple[str, ...] = ()) -> Library:
    return Library(id=lid, ownerId=owner, name=lid, importPaths=list(paths), exclusionPatterns=list(exclude))


def test_a_library_covers_files_below_its_import_paths_unless_excluded():
    lib = library("l", ME, "/photos/", "/more", exclude=("/photos/2020/**",))
    assert covers(lib, "/photos/a.jpg") and covers(lib, "/more/x/b.jpg")
    assert not covers(lib, "/photos2/a.jpg"), "a sibling folder with a longer name is not below it"
    assert not covers(lib, "/photos/2020/a.jpg")


def test_immichs_own_folders_are_recognised():
    root = media_root("/data/upload/u-me/ab/cd/x.jpg", ME)
    assert root == "/data" and media_root("/data/library/admin/2019/x.jpg", ME) == "/data"
    assert in_immich_storage("/data/upload/u-me/ab/x.jpg", root) and not in_immich_storage("/data/photos/x.jpg", root)


def asset(aid: str = "src", **kw) -> Asset:
    base = dict(id=aid, ownerId=ME, libraryId="mine", type="IMAGE", originalPath="/photos/a.jpg", originalFileName="a.jpg",
                fileCreatedAt="2019-05-01T09:00:00.000Z", fileModifiedAt="2019-05-01T09:00:00.000Z", checksum="x",
                exifInfo=Exif(fileSizeInByte=10, dateTimeOriginal="2019-05-01T09:00:00+00:00"))
    return Asset.model_validate({**base, **kw})


def scope(*libraries: Library, selected=("mine",), complete=True, assume_unshared=False, root=None) -> Scope:
    return Scope(user_id=ME, selected=frozenset(selected), libraries=tuple(libraries), complete=complete,
                 assume_unshared=assume_unshared, owners={OTHER: "Bea"}, media_root=root)


def test_another_users_library_over_the_same_file_holds_it():
    view = file_holds("/photos/a.jpg", "mine", scope(library("mine", ME, "/photos"), library("hers", OTHER, "/photos")))
    assert view.hold.hold is Hold.SHARED_WITH_USER and "Bea's library 'hers'" in view.hold.details[0]


def test_one_users_overlapping_libraries_are_looked_up_not_held():
    view = file_holds("/photos/2020/a.jpg", "mine", scope(library("mine", ME, "/photos"), library("y", ME, "/photos/2020")))
    assert view.hold is None and view.look_up
    alone = file_holds("/photos/a.jpg", "mine", scope(library("mine", ME, "/photos")))
    assert alone.hold is None and not alone.look_up, "nothing else can hold it: no lookup needed"


def test_without_a_library_listing_sharing_is_unknown_unless_the_user_asserts_it():
    assert file_holds("/photos/a.jpg", "mine", scope(complete=False)).hold.hold is Hold.SHARING_UNKNOWN
    asserted = file_holds("/photos/a.jpg", "mine", scope(complete=False, assume_unshared=True))
    assert asserted.hold is None and asserted.look_up, "the user's own libraries are still looked up"


def test_a_file_in_immichs_own_storage_is_held():
    view = file_holds("/data/upload/u-me/a.jpg", "mine", scope(root="/data"))
    assert view.hold.hold is Hold.IMMICH_STORAGE


def test_path_twins_in_selected_libraries_move_together_others_hold():
    src = asset()
    twin = asset("twin", libraryId="also-mine")
    held, moving = twins(src, [src, twin], scope(selected=("mine", "also-mine")))
    assert held is None and [a.id for a in moving] == ["twin"]
    held, _ = twins(src, [src, twin], scope())
    assert held.hold is Hold.SHARED_UNSELECTED
    held, _ = twins(src, [asset("int", libraryId=None)], scope())
    assert held.hold is Hold.IMMICH_STORAGE
    held, moving = twins(src, [asset("gone", libraryId="x", isTrashed=True)], scope())
    assert held is None and not moving, "a trashed twin was the user's choice"


def test_claims_block_others_until_they_expire_and_hold_with_a_margin():
    mine, theirs = Claim("run-a", "u1", 1000.0), Claim("run-b", "u1", 1000.0)
    assert journal.claim_blocks(theirs, mine, now=999.0) and not journal.claim_blocks(theirs, mine, now=1000.0)
    assert not journal.claim_blocks(Claim("run-a", "u1", 5.0), mine, now=999.0), "our own claim never blocks us"
    assert not journal.claim_blocks(None, mine, now=0.0)
    assert journal.claim_holds(mine, mine, now=800.0, margin=100.0)
    assert not journal.claim_holds(mine, mine, now=950.0, margin=100.0), "too close to expiry: stop acting"
    assert not journal.claim_holds(Claim("run-a", "u2", 1000.0), mine, now=0.0, margin=1.0), "another unit of the run"
    assert Claim.of(mine.value()) == Claim("run-a", "u1", 1000.0)


# --- the judgement -----------------------------------------------------------------------------------


def world_for_judge(**source_changes):
    facts = Facts(asset(), albums=(), metadata=())
    member = Member("still", [facts], target_id="tgt", sha1="sha", size=10, etag='W/"a-1"')
    ids = Identity(source={"src": SELF, "tgt": SELF}, target={"tgt": SELF})
    member.expected = record_of(facts, ids.source)
    member.carried = {"src": member.expected}  # the source's record as the carry read it
    pending = Pending(Outcome("src", "/photos/a.jpg", "mine"), ["gate"], Unit(asset()), [member], ids)
    now = Facts(asset(**source_changes), albums=(), metadata=())
    target = asset("tgt", libraryId=None, checksum="sha", originalPath="/data/upload/u-me/t.jpg")
    evidence = Evidence(sources={"src": now}, targets={"tgt": target},
                        files=[FileNow('W/"a-1"', None, file_holds("/photos/a.jpg", "mine", scope()), None)])
    return pending, evidence


def judged(pending, evidence, **kw):
    args = dict(scope=scope(), is_source=lambda i: i == "src", claim_holds=lambda f: True)
    return judge(pending, evidence, **{**args, **kw})


def test_a_unit_whose_world_is_as_proven_passes():
    assert judged(*world_for_judge()) is PASS


def test_the_gate_refuses_anything_that_is_not_a_listed_source():
    verdict = judged(*world_for_judge(), is_source=lambda i: False)
    assert verdict.kind == "fail" and "not an asset this run listed" in verdict.message


def test_a_value_curated_during_the_move_waits_for_the_next_run():
    pending, evidence = world_for_judge(exifInfo=Exif(fileSizeInByte=10, description="added while moving",
                                                      dateTimeOriginal="2019-05-01T09:00:00+00:00"))
    verdict = judged(pending, evidence)
    assert verdict.kind == "wait" and "curated while it moved" in verdict.message


def test_a_target_written_over_after_it_was_verified_waits():
    """The same photo at two paths: two units carry into one target; the second wrote its own description
    over the first's after the first was verified. The first must not go: its value is no longer there."""
    pending, evidence = world_for_judge()
    pending.members[0].expected = replace(pending.members[0].expected, description="same")
    target = evidence.targets["tgt"]
    evidence.targets["tgt"] = target.model_copy(update={"exifInfo": target.exifInfo.model_copy(update={"description": "other"})})
    verdict = judged(pending, evidence)
    assert verdict.kind == "wait" and "changed after it was verified" in verdict.message
    assert "'same'" in verdict.details[0] and "'other'" in verdict.details[0]


def test_a_lost_claim_waits():
    assert judged(*world_for_judge(), claim_holds=lambda f: False).kind == "wait"


def test_changed_bytes_hold_the_file():
    pending, evidence = world_for_judge()
    evidence.files[0].hashed = ("other", 11)
    verdict = judged(pending, evidence)
    assert verdict.kind == "hold" and verdict.hold is Hold.FILE_CHANGED


def test_a_target_gone_or_holding_other_bytes_fails():
    pending, evidence = world_for_judge()
    evidence.targets["tgt"] = None
    assert judged(pending, evidence).kind == "fail"
    pending, evidence = world_for_judge()
    evidence.targets["tgt"] = asset("tgt", libraryId=None, checksum="different")
    assert judged(pending, evidence).kind == "fail"


def test_a_target_that_is_the_same_file_is_immichs_own():
    pending, evidence = world_for_judge()
    evidence.targets["tgt"] = asset("tgt", libraryId=None, checksum="sha", originalPath="/photos/a.jpg")
    assert judged(pending, evidence).hold is Hold.IMMICH_STORAGE


def test_another_asset_of_the_file_holds_or_waits():
    pending, evidence = world_for_judge()
    evidence.files[0].found = [asset(), asset("theirs", libraryId="unselected")]
    assert judged(pending, evidence).hold is Hold.SHARED_UNSELECTED
    evidence.files[0].found = [asset(), asset("new", libraryId="mine")]
    assert judged(pending, evidence).kind == "wait", "appeared since the unit was read"


def test_a_video_used_by_a_still_outside_the_unit_is_held():
    pending, evidence = world_for_judge()
    evidence.stills_of = {"src": [asset("phone-still", libraryId=None)]}
    assert judged(pending, evidence).hold is Hold.LIVE_STILL_ELSEWHERE


def test_the_gate_sees_the_claim_in_the_sources_metadata():
    claim = Claim("run", "u", 10_000.0)
    facts = Facts(asset(), metadata=(MetadataItem(key=journal.CLAIM_KEY, value=claim.value()),))
    assert Claim.of(facts.marker(journal.CLAIM_KEY)) == claim


def test_a_value_the_user_gave_up_by_policy_is_no_change_at_the_gate():
    """EXT2INT_ON_CONFLICT=internal: the target keeps its description; the source still shows its own,
    which the carry saw: the gate must not call that a change made during the move."""
    pending, evidence = world_for_judge(exifInfo=Exif(fileSizeInByte=10, description="the folder's caption",
                                                      dateTimeOriginal="2019-05-01T09:00:00+00:00"))
    member = pending.members[0]
    member.carried = {"src": record_of(evidence.sources["src"], pending.ids.source)}
    assert member.expected.description == "", "the target kept its own (empty here) value"
    assert judged(pending, evidence) is PASS
