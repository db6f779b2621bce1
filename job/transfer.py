"""Bytes from the external asset to the internal library in one pass, never stored.

The original is downloaded as a stream and fed, block by block, into the upload's body while being
hashed (SHA-1, Immich's checksum) and counted. Memory use is one block per transfer and no disk is used,
whatever the file's size. A download that ends early, runs long, or breaks mid-body raises
`TruncatedTransfer` inside the upload: the upload connection is then dropped and Immich discards the
partial file, so a short download can never become an asset.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import urllib3.exceptions
from urllib3.util.retry import Retry

from job import journal
from job.clock import Clock
from job.immich import errors
from job.immich.client import ImmichClient
from job.immich.endpoints import ENDPOINTS
from job.immich.models import Asset, UploadResult

BLOCK = 256 * 1024
_PLACEHOLDER = "#" * 28  # the length of a base64 SHA-1


@dataclass(frozen=True)
class Transferred:
    """What went over the wire: the proof material for the target's checksum and size."""

    result: UploadResult
    sha1: str  # base64, as Immich shows checksums
    size: int
    etag: str | None  # the file's ETag as served (its size and modification time on disk)
    provenance: bool = False  # the upload carried the complete provenance marker


class HashingReader:
    """Reads a streamed download; hashes and counts; insists on exactly `expected` bytes when known."""

    def __init__(self, raw, expected: int | None, on_bytes=None):
        self._raw = raw
        self.expected = expected
        self._hash = hashlib.sha1()
        self.count = 0
        self._on_bytes = on_bytes

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = BLOCK
        try:
            data = self._raw.read(size)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.TruncatedTransfer(f"download broke after {self.count} bytes ({type(exc).__name__})") from None
        if data:
            self._hash.update(data)
            self.count += len(data)
            if self.expected is not None and self.count > self.expected:
                raise errors.TruncatedTransfer(f"download sent more than the {self.expected} bytes announced")
            if self._on_bytes:
                self._on_bytes(len(data))
        elif self.expected is not None and self.count != self.expected:
            raise errors.TruncatedTransfer(f"download ended after {self.count} of {self.expected} bytes")
        return data

    @property
    def sha1(self) -> str:
        return base64.b64encode(self._hash.digest()).decode()


def expected_length(response, asset: Asset) -> int | None:
    """How many bytes the download must deliver. When Immich recorded the file's size, the announced
    length must agree with it before a single byte goes to the upload: a short announcement would
    otherwise make a complete-looking upload of a truncated file."""
    header = response.headers.get("content-length")
    length = asset.size
    if header is not None and response.headers.get("content-encoding", "identity") == "identity":
        try:
            length = int(header)
        except ValueError:
            raise errors.TruncatedTransfer(f"download announced a bad Content-Length {header!r}") from None
        if asset.size is not None and length != asset.size:
            raise errors.TruncatedTransfer(
                f"the download announced {length} bytes for a file Immich knows as {asset.size} bytes "
                "(if the file changed on disk since the last library scan, rescan the library)")
    return length


def stream_to_upload(
    client: ImmichClient,
    source: Asset,
    *,
    visibility: str | None,
    live_photo_video_id: str | None = None,
    marker: dict | None = None,
    marker_extra: dict | None = None,
    on_bytes=None,
) -> Transferred:
    """Download `source`'s original and upload it as an internal asset in the same pass. `marker`: the
    source's provenance entry, sent with the upload (with the bytes' SHA-1 and size); `marker_extra`:
    more of the provenance (journal.created_marker)."""
    with client.open_original(source.id) as response:
        length = expected_length(response, source)
        reader = HashingReader(response.raw, length, on_bytes)
        early, late = None, None
        if marker is not None and length is not None:
            # provenance with the bytes' SHA-1 (28 base64 characters), filled in once they are sent
            entry = {**marker, "sha1": _PLACEHOLDER, "size": length}
            template = json.dumps([{"key": journal.KEY, "value": journal.created_marker(entry, marker_extra)}])
            late = (len(template.encode()), lambda: template.replace(_PLACEHOLDER, reader.sha1))
        elif marker is not None:
            early = {journal.KEY: journal.created_marker(marker, marker_extra)}
        result = client.upload(
            stream=reader,
            length=length,
            filename=source.originalFileName,
            content_type=source.originalMimeType or "application/octet-stream",
            file_created_at=source.fileCreatedAt,
            file_modified_at=source.fileModifiedAt,
            visibility=visibility,
            live_photo_video_id=live_photo_video_id,
            duration=source.duration,  # in the server's own format: ms on 3.x, 'H:MM:SS.ffffff' on 2.x
            metadata=early,
            late_metadata=late,
            device_asset_id=f"ext2int-{source.id}",
        )
        if length is None:
            reader.read(1)  # a chunked download must also end cleanly; raises if it broke at the end
        etag = response.headers.get("etag")
    return Transferred(result=result, sha1=reader.sha1, size=reader.count, etag=etag, provenance=late is not None)


def hash_original(client: ImmichClient, source: Asset) -> tuple[str, int]:
    """The SHA-1 and size of the file as it is now, streamed and hashed, nothing stored (the delete
    gate's proof of the bytes when their earlier proof is old). The length announced now counts, not the
    one Immich recorded: the file may have changed since its last library scan."""
    with client.open_original(source.id) as response:
        announced = response.headers.get("content-length")
        reader = HashingReader(response.raw, int(announced) if announced and announced.isdigit() else None)
        while reader.read(BLOCK):
            pass
    return reader.sha1, reader.count


def with_retries(attempt, retries: int, clock: Clock, *, stop=lambda: False):
    """Run `attempt()` again after a broken transfer or a transient server answer, with urllib3's
    backoff policy. Each attempt restarts from the first byte (an upload body cannot be rewound).
    Immich's dedup makes a repeated upload of the same bytes answer 'duplicate', never a second asset."""
    policy = Retry(total=retries, backoff_factor=0.5, backoff_max=30, allowed_methods=None)
    while True:
        try:
            return attempt()
        except (errors.TruncatedTransfer, errors.Unreachable, errors.ServerError) as exc:
            if isinstance(exc, errors.NotImmich) or stop():
                raise
            try:
                policy = policy.increment(method="POST", url=ENDPOINTS["upload"].path, error=_as_urllib3(exc))
            except urllib3.exceptions.MaxRetryError:
                raise exc from None
            clock.sleep(policy.get_backoff_time())


def _as_urllib3(exc: Exception) -> Exception:
    return urllib3.exceptions.ProtocolError(str(exc))


