"""Which files a delete removes and under which names, pure: Immich's sidecar candidates, the files that may
share one, every name of a path (declared aliases, and folders the job sees), and what they hold. No server."""

from __future__ import annotations

import os
import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job.decide import Scope, file_holds, sidecar_readers, twins
from job.immich.models import Asset, Library
from job.outcome import Hold
from job.move.evidence import _files_beside
from job.paths import Aliases, Covering, covering, local_identity, parse_aliases, share_sidecar, sidecars, stem_of
from job.settings import SettingsError, load_settings

ME, OTHER = "u-me", "u-other"


def library(lid: str, owner: str, *paths: str, exclude: tuple[str, ...] = ()) -> Library:
    return Library(id=lid, ownerId=owner, name=lid, importPaths=list(paths), exclusionPatterns=list(exclude))


def scope(*libraries: Library, selected=("mine",), aliases: Aliases = Aliases(), acting=(ME,)) -> Scope:
    return Scope(user_id=ME, selected=frozenset(selected), libraries=libraries, owners={ME: "Me", OTHER: "Other"},
                 acting=frozenset(acting), aliases=aliases)


def asset(aid: str, lib: str, path: str) -> Asset:
    return Asset(id=aid, ownerId=ME, libraryId=lib, originalPath=path, originalFileName=path.rsplit("/", 1)[-1],
                 type="IMAGE", fileCreatedAt="2020-01-01T00:00:00.000Z", fileModifiedAt="2020-01-01T00:00:00.000Z",
                 checksum="x")


# --- sidecars: metadata.service getSidecarCandidates ------------------------------------------------------


@pytest.mark.parametrize("path,candidates", [
    ("/p/IMG_1.JPG", ("/p/IMG_1.JPG.xmp", "/p/IMG_1.xmp")),
    ("/p/IMG_1.tar.gz", ("/p/IMG_1.tar.gz.xmp", "/p/IMG_1.tar.xmp")),  # node's path.parse: the last dot
    ("/p/.hidden", ("/p/.hidden.xmp", "/p/.hidden.xmp")),  # a leading dot is no extension
    ("/p/noext", ("/p/noext.xmp", "/p/noext.xmp")),
])
def test_the_sidecar_candidates_are_immichs(path, candidates):
    assert sidecars(path) == candidates


@pytest.mark.parametrize("a,b,shared", [
    ("/p/IMG_1.CR2", "/p/IMG_1.JPG", True),  # both read IMG_1.xmp
    ("/p/IMG_1.HEIC", "/p/IMG_1.MOV", True),  # an Apple export
    ("/p/IMG_1.JPG", "/p/img_1.cr2", True),  # a case-insensitive share: IMG_1.xmp is img_1.xmp
    ("/p/IMG_1.jpg", "/p/IMG_1.jpg.mp4", True),  # IMG_1.jpg.xmp is the first's first and the second's second
    ("/p/IMG_1.JPG", "/p/IMG_10.JPG", False),
    ("/p/IMG_1.JPG", "/q/IMG_1.CR2", False),  # another folder
    ("/p/IMG_1.JPG", "/p/IMG_1.JPG", False),  # the same file is a path twin, not a sibling
])
def test_which_files_may_share_a_sidecar(a, b, shared):
    assert share_sidecar(a, b) is shared and share_sidecar(b, a) is shared
    if shared:
        assert b.casefold().startswith(stem_of(a).casefold()) or a.casefold().startswith(stem_of(b).casefold())


# Names from a few letters, so that stems, extensions, case and dots collide often.
NAMES = st.text(alphabet="aAß.b_", min_size=1, max_size=7).filter(lambda n: n not in (".", ".."))


@settings(max_examples=400, deadline=None)
@given(a=NAMES, b=NAMES)
def test_a_file_that_may_share_a_sidecar_starts_with_the_others_stem(a, b):
    # what the gate's look at a folder relies on to compare only some of its files (evidence._files_beside)
    if share_sidecar("/p/" + a, "/p/" + b):
        assert b.casefold().startswith(posixpath.basename(stem_of("/p/" + a)).casefold())


@pytest.mark.parametrize("name", ["IMG_1.JPG", "img_1.jpg.mp4", ".hidden", "STRASSE.jpg"])
def test_the_files_beside_are_every_file_of_the_folder_that_may_share_the_sidecar(tmp_path, name):
    entries = ["IMG_1.JPG", "IMG_1.CR2", "img_1.mov", "IMG_10.JPG", "IMG_1.JPG.mp4", "img_1.jpg.mp4", "img_1",
               "IMG_1.xmp", "x.jpg", ".hidden", ".hidden.jpg", "STRASSE.jpg", "straße.cr2", "strasse"]
    for entry in entries:
        (tmp_path / entry).write_bytes(b"x")
    path = str(tmp_path / name)
    every = [str(tmp_path / e) for e in os.listdir(tmp_path)
             if not e.lower().endswith(".xmp") and share_sidecar(path, str(tmp_path / e))]
    found = _files_beside((path,), scope(library("mine", ME, str(tmp_path)), aliases=Aliases(identity=local_identity)))
    assert sorted(found) == sorted(every) and every, (found, every)


FOLDERS = st.sampled_from(["/", "/p", "/p/", "/p/q", "/pq", "/p/q/r", " ", "/r"])
LIBRARIES = st.lists(st.tuples(st.lists(FOLDERS, max_size=3), st.lists(st.sampled_from(["**/*.jpg", "/p/q/**", "**/a*"]),
                                                                      max_size=2)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(libs=LIBRARIES, names=st.lists(st.sampled_from(["/p/a.jpg", "/p/q/b.CR2", "/pq/a.jpg", "/r/x/a.jpg", "/p/q/r/c"]),
                                      max_size=3))
def test_the_indexed_covering_is_covering(libs, names):
    libraries = [library(f"l{i}", ME, *roots, exclude=tuple(exclude)) for i, (roots, exclude) in enumerate(libs)]
    assert Covering(libraries)(names) == covering(libraries, names)


# --- names: one folder under two paths ------------------------------------------------------------------


def test_names_are_remembered_until_the_run_learns_another_name():
    aliases = Aliases()
    assert aliases.names("/a/x.jpg", ["/a", "/b"]) == ("/a/x.jpg",)
    aliases.learn("/a", "/b")
    assert aliases.names("/a/x.jpg", ["/a", "/b"]) == ("/a/x.jpg", "/b/x.jpg")


def test_declared_aliases_name_a_path_both_ways_and_transitively():
    aliases = Aliases((("/mnt/photos", "/photos"), ("/photos", "/volume1/photo")))
    assert set(aliases.names("/photos/2020/a.jpg")) == {"/photos/2020/a.jpg", "/volume1/photo/2020/a.jpg", "/mnt/photos/2020/a.jpg"}
    assert aliases.names("/photos/2020/a.jpg")[0] == "/photos/2020/a.jpg", "the path itself first"
    assert aliases.names("/photos2/a.jpg") == ("/photos2/a.jpg",), "a longer folder name is another folder"


def test_a_loop_of_aliases_ends():
    aliases = Aliases((("/a", "/a/b"),))  # refused by the settings, but never a hang
    assert len(aliases.names("/a/x.jpg")) == Aliases.MAX_NAMES


def test_folders_the_job_sees_name_every_import_path_that_is_the_same_folder():
    # /photos is a link to /mnt/photos: both have one identity; /elsewhere is another folder
    seen = {"/mnt/photos": (1, 10), "/photos": (1, 10), "/mnt/photos/2020": (1, 11), "/photos/2020": (1, 11),
            "/elsewhere": (1, 12), "/mnt": (1, 2)}
    asked = []

    def identity(path):
        asked.append(path)
        return seen.get(path)

    aliases = Aliases(identity=identity)
    roots = ["/photos", "/elsewhere", "/photos/2020"]
    assert set(aliases.names("/mnt/photos/2020/a.jpg", roots)) == {"/mnt/photos/2020/a.jpg", "/photos/2020/a.jpg"}
    assert aliases.names("/unseen/a.jpg", roots) == ("/unseen/a.jpg",)
    calls = len(asked)
    aliases.names("/mnt/photos/2020/b.jpg", roots)
    assert len(asked) == calls, "each folder is looked at once a run"


def test_the_alias_setting_is_checked_with_one_line_naming_the_fix():
    assert parse_aliases(" /mnt/photos=/photos/ ,/v1=/v2") == (("/mnt/photos", "/photos"), ("/v1", "/v2"))
    for bad in ("photos=/photos", "/mnt/photos", "/a=/a/b", "/a=/a"):
        with pytest.raises(SettingsError) as raised:
            load_settings({"IMMICH_URL": "http://immich:2283", "IMMICH_API_KEY": "k" * 40, "EXT2INT_PATH_ALIASES": bad})
        line, = raised.value.lines
        assert line.startswith("EXT2INT_PATH_ALIASES:") and "/" in line


def test_another_users_library_over_an_alias_holds_the_file():
    aliases = Aliases((("/mnt/photos", "/photos"),))
    libs = (library("mine", ME, "/mnt/photos"), library("hers", OTHER, "/photos"))
    assert file_holds("/mnt/photos/a.jpg", "mine", scope(*libs)).hold is None, "without the alias: unseen"
    assert file_holds("/mnt/photos/a.jpg", "mine", scope(*libs, aliases=aliases)).hold.hold is Hold.SHARED_WITH_USER


def test_an_own_library_over_an_alias_is_looked_up_and_its_asset_is_a_twin():
    aliases = Aliases((("/mnt/photos", "/photos"),))
    s = scope(library("mine", ME, "/mnt/photos"), library("linked", ME, "/photos"), selected=("mine", "linked"), aliases=aliases)
    assert file_holds("/mnt/photos/a.jpg", "mine", s).look_up
    source = asset("a", "mine", "/mnt/photos/a.jpg")
    alias = asset("b", "linked", "/photos/a.jpg")
    assert twins(source, [source, alias], s) == (None, [alias])
    held, _ = twins(source, [alias], scope(*s.libraries, selected=("mine",), aliases=aliases))
    assert held.hold is Hold.SHARED_UNSELECTED


def test_the_same_folder_listed_twice_in_ones_own_library_is_looked_up():
    aliases = Aliases((("/mnt/photos", "/photos"),))
    s = scope(library("mine", ME, "/mnt/photos", "/photos"), aliases=aliases)
    assert file_holds("/mnt/photos/a.jpg", "mine", s).look_up, "one library, two import paths over one folder"


# --- who else may read the sidecar ----------------------------------------------------------------------


def test_another_users_library_that_may_hold_a_file_of_the_same_stem_holds():
    raws = library("raws", OTHER, "/cam", exclude=("**/*.JPG",))  # it holds IMG_1.CR2 beside my IMG_1.JPG
    held, owners = sidecar_readers("/cam/IMG_1.JPG", scope(library("mine", ME, "/cam"), raws))
    assert held.hold is Hold.SIDECAR_SHARED and "raws" in held.details[0]
    nothing = library("private", OTHER, "/cam", exclude=("/cam/**",))
    assert sidecar_readers("/cam/IMG_1.JPG", scope(library("mine", ME, "/cam"), nothing)) == (None, frozenset())


def test_another_users_library_the_run_moves_too_is_searched_not_held():
    raws = library("raws", OTHER, "/cam", exclude=("**/*.JPG",))
    s = scope(library("mine", ME, "/cam"), raws, selected=("mine", "raws"), acting=(ME, OTHER))
    assert sidecar_readers("/cam/IMG_1.JPG", s) == (None, frozenset({OTHER}))
