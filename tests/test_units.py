"""Pure pieces: the decisions, the streaming multipart body, the hashing reader, durations."""

from __future__ import annotations

import email
import hashlib
import io
import json

import pytest

from job import journal
from job.clock import instant, seconds
from job.decide import Scope, decide
from job.facts import normalize_instant
from job.immich.errors import TruncatedTransfer
from job.immich.models import Asset, Exif
from job.immich.multipart import MultipartBody
from job.outcome import Kind, Outcome, Stage
from job.report import Report
from job.settings import DeleteMode, parse_duration
from job.transfer import HashingReader, expected_length

SCOPE = Scope(user_id="me", selected=frozenset({"lib"}))


def asset(**kw) -> Asset:
    base = dict(id="a", ownerId="me", libraryId="lib", type="IMAGE", originalPath="/p/a.jpg", originalFileName="a.jpg",
                fileCreatedAt="2019-05-01T09:00:00.000Z", fileModifiedAt="2020-01-01T00:00:00.000Z", checksum="x",
                exifInfo=Exif(fileSizeInByte=100))
    return Asset.model_validate({**base, **kw})


def journal_entry(state: str = "copied", **kw):
    return {"v": journal.VERSION, "state": state, "target": "t", "sha1": "s", "size": 100,
            "sourceModifiedAt": "2020-01-01T00:00:00.000Z", "sourceSize": 100, **kw}


def decided(source: Asset, mode: DeleteMode = DeleteMode.TRASH, **kw) -> tuple[str, str | None]:
    d = decide(source, scope=SCOPE, delete_mode=mode, **kw)
    reason = d.skip or d.hold
    return d.action.value, reason.value if reason else None


@pytest.mark.parametrize("changes,expected", [
    (dict(ownerId="someone"), ("skip", "other_owner")),
    (dict(libraryId=None), ("skip", "not_external")),
    (dict(isTrashed=True), ("skip", "trashed")),
    (dict(isOffline=True), ("skip", "offline")),
    (dict(visibility="locked"), ("skip", "locked")),
    ({}, ("move", None)),
])
def test_decisions_from_the_asset_itself(changes, expected):
    assert decided(asset(**changes)) == expected


def test_a_live_still_without_its_video_is_skipped_whole():
    still = asset(livePhotoVideoId="v")
    assert decided(still, video=None, video_expected=True) == ("skip", "live_video_unavailable")
    assert decided(still, video=asset(id="v", isOffline=True), video_expected=True)[0] == "skip"
    assert decided(still, video=asset(id="v", type="VIDEO"), video_expected=True) == ("move", None)


def test_a_live_video_elsewhere_holds_its_still_and_an_internal_one_is_only_linked_to():
    still = asset(livePhotoVideoId="v")
    assert decided(still, video=asset(id="v", type="VIDEO", libraryId="other"), video_expected=True) == \
        ("hold", "live_video_elsewhere")
    assert decided(still, video=asset(id="v", type="VIDEO", libraryId=None), video_expected=True) == ("move", None)


def test_a_hidden_video_whose_still_is_elsewhere_stays():
    video = asset(id="v", type="VIDEO", visibility="hidden")
    assert decided(video, stills=[]) == ("move", None), "nothing uses it: it moves alone"
    assert decided(video, stills=[asset(id="s", libraryId=None)]) == ("hold", "live_still_elsewhere")
    assert decided(video, stills=[asset(id="s", isTrashed=True)]) == ("skip", "live_still_trashed")


def test_the_journal_is_trusted_only_while_the_file_is_unchanged():
    a = asset()
    assert decided(a, entry=journal_entry()) == ("finish", None)
    assert decided(a, DeleteMode.KEEP, entry=journal_entry("kept")) == ("skip", "kept")
    assert decided(a, entry=journal_entry("kept")) == ("finish", None)
    assert decided(a, entry=journal_entry("held")) == ("finish", None)
    assert decided(a, entry=journal_entry("loop")) == ("skip", "reimport_loop")
    assert decided(a, entry=journal_entry(sourceModifiedAt="2024-01-01T00:00:00.000Z")) == ("move", None)
    assert decided(a, entry=journal_entry(sourceSize=99)) == ("move", None)
    assert decided(a, entry={**journal_entry(), "v": 99}) == ("move", None)


def parse(body: MultipartBody) -> tuple[dict[str, bytes], int]:
    raw = b"".join(iter(lambda: body.read(7), b""))
    message = email.message_from_bytes(b"Content-Type: " + body.content_type.encode() + b"\r\n\r\n" + raw)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True) for part in message.get_payload()}, len(raw)


def test_the_multipart_body_streams_fields_file_and_late_fields():
    data = bytes(range(256)) * 40
    reader = io.BytesIO(data)
    body = MultipartBody([("fileCreatedAt", "2019-05-01T09:00:00.000Z"), ("filename", 'a "b".jpg')], "assetData",
                         'a "b".jpg', "image/jpeg", reader, len(data),
                         after=[("metadata", 12, lambda: json.dumps({"n": 12345})[:12])])
    parts, length = parse(body)
    assert body.len == length
    assert parts["assetData"] == data and parts["fileCreatedAt"] == b"2019-05-01T09:00:00.000Z"
    assert parts["metadata"] == json.dumps({"n": 12345})[:12].encode()


def test_a_late_field_of_the_wrong_length_is_refused():
    body = MultipartBody([], "assetData", "a.jpg", "image/jpeg", io.BytesIO(b"xyz"), 3, after=[("metadata", 5, lambda: "123")])
    with pytest.raises(ValueError):
        b"".join(iter(lambda: body.read(1024), b""))


def test_without_a_known_length_the_body_has_none():
    assert MultipartBody([], "assetData", "a", "x/y", io.BytesIO(b"abc"), None).len is None


def test_the_hashing_reader_counts_hashes_and_insists_on_the_length():
    data = b"x" * 1000
    reader = HashingReader(io.BytesIO(data), 1000)
    assert b"".join(iter(lambda: reader.read(64), b"")) == data
    assert reader.count == 1000 and reader.sha1 == __import__("base64").b64encode(hashlib.sha1(data).digest()).decode()
    short = HashingReader(io.BytesIO(data[:900]), 1000)
    with pytest.raises(TruncatedTransfer, match="after 900 of 1000"):
        b"".join(iter(lambda: short.read(64), b""))
    long = HashingReader(io.BytesIO(data + b"y"), 1000)
    with pytest.raises(TruncatedTransfer, match="more than"):
        b"".join(iter(lambda: long.read(64), b""))


class _Response:
    def __init__(self, headers):
        self.headers = headers


def test_the_announced_length_must_agree_with_what_immich_recorded():
    assert expected_length(_Response({"content-length": "100"}), asset()) == 100
    with pytest.raises(TruncatedTransfer, match="knows as 100 bytes"):
        expected_length(_Response({"content-length": "90"}), asset())
    assert expected_length(_Response({}), asset()) == 100
    with pytest.raises(TruncatedTransfer):
        expected_length(_Response({"content-length": "lots"}), asset())


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5", "0", "5w"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("outcomes", [0, 1, 3])
def test_the_streamed_json_report_is_the_report(tmp_path, outcomes):
    report = Report(command="plan", libraries=["lib"], notes=['a "quoted" note'])
    for i in range(outcomes):
        outcome = Outcome(f"id{i}", f"/photos/ü{i}.jpg", "lib").fail(Stage.VERIFY, "x\ny", ["rating: 5 != 4"])
        outcome.steps["read"] = 0.123456
        report.add(outcome)
    report.finish()
    path = tmp_path / "report.json"
    report.write_json(path)
    assert json.loads(path.read_text(encoding="utf-8")) == report.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left behind


def test_a_run_stopped_by_immich_exits_3_and_counts_as_an_error_run():
    from job.metrics import Metrics

    report = Report(command="run", server_failed=True, stopped_because="Immich failed ...")
    report.add(Outcome("a", "/p/a.jpg", "lib", Kind.UPLOADED))
    report.finish()
    assert report.exit_code() == 3
    metrics = Metrics()
    metrics.record_run(report)
    assert metrics.registry.get_sample_value("ext2int_runs_total", {"result": "error"}) == 1
    assert metrics.registry.get_sample_value("ext2int_runs_total", {"result": "success"}) in (None, 0)


def test_search_filters_go_in_the_filter_tree_only_from_3_2():
    from job.immich.client import search_body

    old = search_body((3, 1, 0), page=1, size=10, with_exif=True, with_deleted=False,
                      filters={"libraryId": "lib", "originalPath": "/p/a.jpg", "isMotion": True})
    assert "filter" not in old and (old["libraryId"], old["originalPath"], old["isMotion"]) == ("lib", "/p/a.jpg", True)
    new = search_body((3, 2, 0), page=1, size=10, with_exif=True, with_deleted=False,
                      filters={"libraryId": "lib", "originalPath": "/p/a.jpg", "isMotion": True, "id": None})
    assert new["filter"] == {"libraryId": {"eq": "lib"}, "originalPath": {"eq": "/p/a.jpg"}, "isMotion": {"eq": True}}
    assert "libraryId" not in new and (new["page"], new["size"], new["withExif"], new["withDeleted"]) == (1, 10, True, False)
    with pytest.raises(ValueError):
        search_body((3, 2, 0), page=1, size=10, with_exif=True, with_deleted=False, filters={"city": "Dublin"})
    # "in no album and untagged": 3.1's flat fields (tagIds null is the filter, not an absent one) and 3.2's tree
    whole = dict(page=1, size=50, with_exif=True, with_deleted=False, with_people=True, unstacked=True,
                 filters={"hasAlbums": False, "hasTags": False})
    old = search_body((3, 1, 0), **whole)
    assert (old["isNotInAlbum"], old["tagIds"], old["withPeople"], old["withStacked"]) == (True, None, True, False)
    assert "filter" not in old and "hasTags" not in old
    new = search_body((3, 2, 0), **whole)
    assert new["filter"] == {"hasAlbums": {"eq": False}, "hasTags": {"eq": False}} and "tagIds" not in new
    plain = search_body((3, 1, 0), page=1, size=10, with_exif=True, with_deleted=False, filters={})
    assert "withPeople" not in plain and "withStacked" not in plain, "a listing of stacked assets too, without people"


def test_the_readme_names_exactly_the_permissions_the_endpoint_table_requires():
    import re
    from pathlib import Path

    from job.immich.endpoints import ENDPOINTS, Need, required_permissions

    text = " ".join(Path(__file__).resolve().parent.parent.joinpath("README.md").read_text().split())
    section = text[text.index("A restricted key for `run` needs:"):text.index("`plan` needs only")]
    run_list = section[:section.index("Servers before 2.2")]
    named = set(re.findall(r"`([a-zA-Z]+\.[a-zA-Z.]+)`", run_list))
    assert named == set(required_permissions("run", (3, 1, 0), copy=True, edits=True, delete=True))
    old_servers = set(required_permissions("run", (2, 0, 0), copy=False, edits=False, delete=True))
    assert old_servers - named == {"albumAsset.create", "sharedLink.update", "stack.create"}
    optional = {e.permission for e in ENDPOINTS.values() if e.need is Need.OPTIONAL}
    assert optional <= set(re.findall(r"`([a-zA-Z]+\.[a-zA-Z.]+)`", section[section.index("Optional:"):]))
    plan_line = text[text.index("`plan` needs only"):].split(". ")[0]
    assert set(re.findall(r"`([a-z]+\.[a-z]+)`", plan_line)) == set(required_permissions("plan", (3, 1, 0), copy=True,
                                                                                           edits=True, delete=True))
    verify_line = text[text.index("`verify` needs those and"):].split(";")[0]
    verify = set(required_permissions("verify", (3, 1, 0), copy=True, edits=True, delete=True))
    plan = set(required_permissions("plan", (3, 1, 0), copy=True, edits=True, delete=True))
    assert set(re.findall(r"`([a-zA-Z]+\.[a-zA-Z.]+)`", verify_line)) == verify - plan
    undo_line = text[text.index("`undo` needs what `verify` needs and"):].split(". ")[0]
    undo = set(required_permissions("undo", (3, 1, 0), copy=True, edits=True, delete=True))
    assert set(re.findall(r"`([a-zA-Z]+\.[a-zA-Z.]+)`", undo_line)) == undo - verify


def test_the_fakes_model_of_immichs_costs_digests_an_upload_in_the_background():
    """bench/fake_bench.py measure 6: a new upload shows as unread until its queued job has run, and the
    server time spent is what the calls and jobs cost."""
    import threading
    from types import SimpleNamespace

    from tests.fake_immich.costs import Costs

    asset = SimpleNamespace(extracted_at=0.0)
    world = SimpleNamespace(lock=threading.Lock(), assets={"a": asset})
    gate = threading.Event()
    costs = Costs({"GET /assets/{id}": 0.001}, digestion=0.002, cores=1)
    costs._background.submit(gate.wait)  # the one worker is busy: the digestion waits behind it
    costs.call("GET", "/assets/{id}")
    costs.call("GET", "/server/version")  # not modelled: free
    costs.digest(world, "a")
    assert costs.backlog() == 1 and asset.extracted_at == float("inf"), "unread until its job ran"
    gate.set()
    costs.idle(timeout=10)
    assert costs.backlog() == 0 and asset.extracted_at != float("inf")
    assert costs.spent == pytest.approx(0.003)
    costs.close()


def test_every_time_the_job_reads_is_parsed_by_one_rule():
    """Immich spells its times with 'Z' or an offset; a time without a zone is taken as UTC, Immich's zone,
    wherever the job reads one (claims and journals, the gate's window, a face's age, a normalized date)."""
    utc = instant("2024-05-01T10:00:00.123Z")
    assert utc is not None and utc.utcoffset().total_seconds() == 0
    assert instant("2024-05-01T12:00:00.123+02:00") == utc
    assert instant("2024-05-01T10:00:00.123") == utc, "no zone: UTC"
    assert seconds("2024-05-01T10:00:00Z") == 1714557600.0
    for not_a_time in (None, "", "yesterday", "2024-13-01T00:00:00Z", 12):
        assert instant(not_a_time) is None and seconds(not_a_time) is None
    assert normalize_instant("2024-05-01T12:00:00.123456+02:00") == "2024-05-01T10:00:00.123Z"
    assert normalize_instant("2024-05-01T10:00:00") == "2024-05-01T10:00:00.000Z"
    assert normalize_instant("not a time") == "not a time", "kept as it came, to be shown in a difference"
