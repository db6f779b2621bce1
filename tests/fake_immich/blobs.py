"""File contents for the fake server: real bytes, or synthetic bytes generated on demand so a
multi-GB asset costs no memory or disk (benchmarks)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

CHUNK = 256 * 1024


@dataclass(eq=False)
class Blob:
    """Bytes that know their SHA-1. `data` is set for real content; synthetic content is a seed and a
    size, expanded block by block when read."""

    size: int
    data: bytes | None = None
    seed: int = 0
    _sha1: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls(size=len(data), data=data, _sha1=hashlib.sha1(data).digest())

    @classmethod
    def synthetic(cls, seed: int, size: int) -> Blob:
        return cls(size=size, seed=seed)

    @classmethod
    def received(cls, sha1: bytes, size: int, data: bytes | None) -> Blob:
        return cls(size=size, data=data, _sha1=sha1)

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        if self.data is not None:
            for offset in range(start, self.size, CHUNK):
                yield self.data[offset:offset + CHUNK]
            return
        block = _block(self.seed % 16)
        stamp = self.seed.to_bytes(8, "big")
        offset = start
        while offset < self.size:
            index, within = divmod(offset, CHUNK)
            # a shared base block with the seed and the block's index stamped in: no two blocks alike
            piece = stamp + index.to_bytes(8, "big") + block[16:]
            end = min(CHUNK - within, self.size - offset)
            yield piece[within:within + end]
            offset += end

    @property
    def sha1(self) -> bytes:
        if self._sha1 is None:
            digest = hashlib.sha1()
            for chunk in self.chunks():
                digest.update(chunk)
            self._sha1 = digest.digest()
        return self._sha1

    def read_all(self) -> bytes:
        return self.data if self.data is not None else b"".join(self.chunks())


_BLOCKS: dict[int, bytes] = {}


def _block(seed: int) -> bytes:
    if seed not in _BLOCKS:
        out = bytearray()
        counter = 0
        while len(out) < CHUNK:
            out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
            counter += 1
        _BLOCKS[seed] = bytes(out[:CHUNK])
    return _BLOCKS[seed]
