"""SIGKILL the real job at every step boundary and in the middle of transfers, for each kind of asset;
then run again to completion and check the invariant.

The kill points are not hand-picked: a clean run of the same world is traced first, and the job is
killed before and after EVERY mutating request of that trace (after = the server applied it, the job
never saw the answer), plus in the middle of a download and of an upload. The fake server does the
killing when it sees the request, so each case is exact, not a race.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from tests.clock import Later
from tests.conftest import CLAIMS_EXPIRED, spawn_job
from tests.fake_immich import FakeImmich, Scene, content
from tests.invariant import check, snapshot


def world_photo(scene: Scene):
    lib = scene.library()
    scene.curated_photo(lib)
    return lib


def world_video(scene: Scene):
    lib = scene.library()
    scene.album("Clips", scene.video(lib, "v.mp4"))
    return lib


def world_live(scene: Scene):
    lib = scene.library()
    still, _ = scene.live(lib, "l01")
    scene.favorite(still)
    return lib


def world_stacked(scene: Scene):
    lib = scene.library()
    first = scene.photo(lib, "s1.jpg")
    second = scene.photo(lib, "s2.jpg")
    scene.stack(first, second)
    return lib


def world_internal(scene: Scene):
    lib = scene.library()
    photo = scene.photo(lib, "p.jpg")
    scene.album("A", photo)
    scene.internal(photo.blob.read_all(), description="phone")
    return lib


def world_trashed_internal(scene: Scene):
    lib = scene.library()
    photo = scene.photo(lib, "p.jpg")
    scene.tag(photo, "T")
    scene.internal(photo.blob.read_all(), trashed=True)
    return lib


def world_overlapping_libraries(scene: Scene):
    """One user's /photos and /photos/2020 libraries: the file moves once, with both assets' curation."""
    everything = scene.library("all", paths=["/mnt/photos"])
    year = scene.library("2020", paths=["/mnt/photos/2020"])
    photo = scene.photo(everything, "/mnt/photos/2020/a.jpg")
    twin = scene.scan(year)[0]
    scene.favorite(photo)
    scene.tag(twin, "Year/2020")
    scene.photo(scene.library("theirs", owner=scene.other, paths=["/mnt/shared"]), "held.jpg")
    return [everything, year]


def world_phone_live_video(scene: Scene):
    """An exported still Immich linked to the phone backup's video: the video is only linked to."""
    scene.internal(content(70, 9000), "IMG_1.MOV", content_id="CID-K1")
    lib = scene.library()
    scene.favorite(scene.photo(lib, "IMG_1.jpg", content_id="CID-K1"))
    return lib


def world_live_across_libraries(scene: Scene):
    stills, videos = scene.library("stills"), scene.library("videos")
    scene.video(videos, "IMG_2.mov", content_id="CID-K2")
    scene.album("Live", scene.photo(stills, "IMG_2.jpg", content_id="CID-K2"))
    return [stills, videos]


def world_same_bytes_two_paths(scene: Scene):
    lib = scene.library()
    data = content(71)
    # distinct dates fix the listing's order (newest first), so the traced run and the killed one agree
    scene.album("Here", scene.photo(lib, "a.jpg", data=data, mtime="2026-01-02T00:00:00.000Z"))
    scene.tag(scene.photo(lib, "copy/a.jpg", data=data, mtime="2026-01-01T00:00:00.000Z"), "Copy")
    return lib


def world_family_shared_folder(scene: Scene):
    """Mum's and Dad's libraries over one shared folder, moved by one run with both keys: each file goes
    once, after both users' copies were verified, each with its owner's curation."""
    mums = scene.library("Family (Mum)", paths=["/mnt/family"])
    dads = scene.library("Family (Dad)", owner=scene.other, paths=["/mnt/family"])
    photo = scene.photo(mums, "kids.jpg")
    his = scene.scan(dads)[0]
    scene.favorite(photo)
    scene.album("Dad's", his, owner=scene.other)
    return [mums, dads]


def world_raw_jpeg_pair(scene: Scene):
    """A camera's pair reading Lightroom's one IMG_1.xmp: they go together, once both copies hold it."""
    lib = scene.library()
    scene.sidecar(lib, "IMG_1.xmp", description="Cliffs", rating=4, tags=["Trips/Ireland"], darktable="12 edits")
    raw = scene.photo(lib, "IMG_1.CR2", mtime="2026-01-02T00:00:00.000Z")
    scene.album("Ireland", scene.photo(lib, "IMG_1.JPG", mtime="2026-01-01T00:00:00.000Z"))
    scene.favorite(raw)
    return lib


def world_linked_folder(scene: Scene):
    """One user's libraries over a folder and over a symbolic link to it (declared as an alias)."""
    scene.world.link("/photos", "/mnt/photos")
    mounted, linked = scene.library("mounted", paths=["/mnt/photos"]), scene.library("linked", paths=["/photos"])
    scene.favorite(scene.photo(mounted, "a.jpg"))
    scene.album("Linked", scene.scan(linked)[0])
    return [mounted, linked]


def world_in_the_trash(scene: Scene):
    """A source an earlier run trashed, whose description and album were changed at the instant of the
    delete, and a new photo: the next run's trash watch restores the first and moves it again, then the
    run moves the second (kill points inside the watch)."""
    lib = scene.library()
    photo = scene.curated_photo(lib)
    album = scene.album("Best of")
    changed: list[bool] = []

    def at_delete(assets):
        if photo in assets and not changed:
            changed.append(True)
            scene.world.write_fields(photo, {"description": "Eiffel at dawn"})
            album.asset_ids.append(photo.id)

    scene.world.at_delete = at_delete
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1"))
    proc.communicate(timeout=60)
    assert proc.returncode == 0 and changed and photo.deleted_at is not None
    scene.world.at_delete = None
    scene.photo(lib, "b.jpg", mtime="2026-01-01T00:00:00.000Z")
    return lib


WORLDS = {
    "photo": world_photo,
    "video": world_video,
    "live": world_live,
    "stacked": world_stacked,
    "already_internal": world_internal,
    "already_internal_trashed": world_trashed_internal,
    "overlapping_libraries": world_overlapping_libraries,
    "phone_live_video": world_phone_live_video,
    "live_across_libraries": world_live_across_libraries,
    "same_bytes_two_paths": world_same_bytes_two_paths,
    "family_shared_folder": world_family_shared_folder,
    "raw_jpeg_pair": world_raw_jpeg_pair,
    "linked_folder": world_linked_folder,
    "in_the_trash": world_in_the_trash,
}


def library_ids(built) -> list[str]:
    return [lib.id for lib in (built if isinstance(built, list) else [built])]


def env_for(scene: Scene, built, **more: str) -> dict[str, str]:
    """The admin's key, or both users' (a folder of keys) for a world with the other user's library."""
    env = scene.env(**more)
    if scene.world.folder_links:  # the user declares the links their libraries go through
        env["EXT2INT_PATH_ALIASES"] = ",".join(f"{a}={b}" for a, b in scene.world.folder_links.items())
    if any(lib.owner_id == scene.other.id for lib in (built if isinstance(built, list) else [built])):
        folder = Path(tempfile.mkdtemp(prefix="ext2int-keys-"))
        (folder / "mum").write_text(scene.key)
        (folder / "dad").write_text(scene.other_key)
        env.update(IMMICH_API_KEY="", IMMICH_API_KEYS_DIR=str(folder))
    return env


def trace(build) -> list[tuple[str, str, str, int]]:
    """Kill points from a clean, sequential run of the world: (action, method, route, nth)."""
    fake = FakeImmich().start()
    try:
        scene = Scene(fake)
        built = build(scene)
        fake.clear_log()  # a world may be built by a run of its own (in_the_trash): only the next run counts
        proc = spawn_job(env_for(scene, built, EXT2INT_CONCURRENCY="1"))
        proc.communicate(timeout=60)
        assert proc.returncode == 0
        return kill_points(fake.log) + [("kill_mid_body", "GET", "/assets/{id}/original", 1),
                                        ("kill_mid_body", "POST", "/assets", 1)]
    finally:
        fake.stop()


def kill_points(log) -> list[tuple[str, str, str, int]]:
    """Before and after every changing request of a traced run: (action, method, route, nth of its kind)."""
    seen: dict[tuple[str, str], int] = {}
    points = []
    for entry in log:
        key = (entry.method, entry.route)
        seen[key] = seen.get(key, 0) + 1
        if entry.mutating:
            points += [("kill", entry.method, entry.route, seen[key]), ("kill_after", entry.method, entry.route, seen[key])]
    return points


def cases():
    for kind, build in WORLDS.items():
        for point in trace(build):
            action, method, route, nth = point
            yield pytest.param(kind, point, id=f"{kind}-{action}-{method}{route}#{nth}")


@pytest.mark.parametrize("kind,point", list(cases()))
def test_killed_anywhere_the_next_run_completes_without_loss(kind, point, fake, scene, run_job):
    built = WORLDS[kind](scene)
    snap = snapshot(scene.world, library_ids(built))
    action, method, route, nth = point
    fake.faults.add(action, method=method, route=route, nth=nth, after_bytes=1500)
    env = env_for(scene, built, EXT2INT_CONCURRENCY="1")
    proc = spawn_job(env)

    def kill() -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    fake.on_kill = kill
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the kill point was never reached (exit {proc.returncode})"
    check(scene.world, snap, require_done=False)  # nothing lost at the moment of the kill

    fake.faults.clear()
    fake.on_kill = None
    result = run_job(env, clock=Later(CLAIMS_EXPIRED))  # the dead run's claims have expired meanwhile
    assert result.code == 0, result.stderr
    check(scene.world, snap, held=held_ids(scene, result))
    fake.clear_log()
    again = run_job(env, clock=Later(CLAIMS_EXPIRED))
    # a further run changes nothing, but for the trash watch's mark on the sources it proved (the job's own
    # journal); the run after that, nothing at all
    assert again.code == 0 and {w.route for w in fake.mutating_requests()} <= {"/assets/metadata"}, again.report["notes"]
    fake.clear_log()
    assert run_job(env, clock=Later(CLAIMS_EXPIRED)).code == 0 and not fake.mutating_requests(), \
        "a further run must change nothing"


def held_ids(scene: Scene, result) -> set[str]:
    return {o["asset_id"] for o in result.outcomes("held")}
