"""A streaming multipart/form-data body: form fields, then one file read from any stream, then the
closing boundary. Memory use is one read block whatever the file's size; the total length is known up
front when the stream's length is, so the upload carries a Content-Length (Immich needs no chunking).

Written here rather than taken from requests-toolbelt because the file part is a live pipe from the
download, not a file on disk, and the body must be read exactly once.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from typing import Protocol


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


def _quote(value: str) -> str:
    # RFC 7578 §4.2: escape quotes and line breaks in names; non-ASCII goes as UTF-8, which busboy reads.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartBody:
    """Readable once, from start to end. `len` is None when the file's length is unknown."""

    CHUNK = 1024 * 1024

    def __init__(
        self,
        fields: list[tuple[str, str]],
        file_field: str,
        filename: str,
        file_content_type: str,
        stream: Readable,
        length: int | None,
        after: list[tuple[str, int, Callable[[], str]]] | None = None,
    ):
        """`after`: fields sent after the file, as (name, length in bytes, value), the value computed
        only once the file has been read (a checksum of it); it must have the announced length."""
        self.boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        head = io.BytesIO()
        for name, value in fields:
            head.write(f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{_quote(name)}\"\r\n\r\n".encode())
            head.write(value.encode("utf-8"))
            head.write(b"\r\n")
        head.write(
            (
                f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{_quote(file_field)}\"; "
                f"filename=\"{_quote(filename)}\"\r\nContent-Type: {file_content_type}\r\n\r\n"
            ).encode("utf-8")
        )
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._parts: list[Readable] = [io.BytesIO(head.getvalue()), stream]
        late = 0
        for name, size, value in after or []:
            opening = f"\r\n--{self.boundary}\r\nContent-Disposition: form-data; name=\"{_quote(name)}\"\r\n\r\n".encode()
            self._parts += [io.BytesIO(opening), _Late(value, size)]
            late += len(opening) + size
        self._parts.append(io.BytesIO(tail))
        self.len = None if length is None else len(head.getvalue()) + length + late + len(tail)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.CHUNK
        while self._parts:
            data = self._parts[0].read(size)
            if data:
                return data
            self._parts.pop(0)
        return b""

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(self.CHUNK):
            yield chunk


class _Late:
    """A part whose bytes are computed when it is reached: after the file has been read through."""

    def __init__(self, value: Callable[[], str], size: int):
        self._value, self._size, self._data = value, size, None

    def read(self, size: int = -1) -> bytes:
        if self._data is None:
            self._data = io.BytesIO(self._value().encode("utf-8"))
            if len(self._data.getvalue()) != self._size:
                raise ValueError("a late multipart field did not have its announced length")
        return self._data.read(size)
