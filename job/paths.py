"""Which libraries could hold an asset for a file, from their import paths and exclusion patterns. Pure.

Immich imports a file into an external library when its directory walk from an import path finds it
and no exclusion pattern (picomatch globs) matches it (`library.service.ts`). When an asset is deleted
for good, Immich deletes its file whatever else points at it, so every library that could hold the same
file matters. Errors here must only ever err towards "covered" (the file is held, never deleted): a
pattern using glob syntax this module does not model is treated as excluding nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from job.immich.models import Library

_UNMODELLED = re.compile(r"[\[\]{}()!\\]|[+@*?]\(")


def covers(library: Library, path: str) -> bool:
    """Could `library` hold an asset for the file at `path`?"""
    inside = any(path.startswith(root.rstrip("/") + "/") for root in library.importPaths if root.strip())
    return inside and not any(excluded(pattern, path) for pattern in library.exclusionPatterns)


def covering(libraries: Iterable[Library], path: str) -> list[Library]:
    return [library for library in libraries if covers(library, path)]


def excluded(pattern: str, path: str) -> bool:
    """Does the exclusion `pattern` match `path`, as picomatch (Immich's matcher) would? Only `*`, `?`
    and `**` are modelled, with picomatch's rules: no match across `/`, and none of them matches a name
    that starts with a dot. Anything else makes the pattern match nothing here."""
    if not pattern or _UNMODELLED.search(pattern):
        return False
    return _match(tuple(_segment(s) for s in pattern.split("/")), tuple(path.split("/")))


@lru_cache(maxsize=512)
def _segment(text: str) -> re.Pattern | None:
    """None for `**`; else a regex for one path segment."""
    if text == "**":
        return None
    body = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in text)
    if text[:1] in ("*", "?"):
        body = "(?!\\.)" + body  # a wildcard never matches a leading dot
    return re.compile(body)


def _match(pattern: tuple[re.Pattern | None, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head is None:  # `**`: zero or more segments, none of them a dot-name
        for taken in range(len(parts) + 1):
            if taken and parts[taken - 1].startswith("."):
                return False
            if _match(rest, parts[taken:]):
                return True
        return False
    return bool(parts) and head.fullmatch(parts[0]) is not None and _match(rest, parts[1:])


IMMICH_FOLDERS = ("upload", "library", "thumbs", "encoded-video", "profile", "backups")


def media_root(internal_path: str, owner_id: str) -> str | None:
    """Immich's media folder, from the path of an internal asset: uploads live in
    `<media>/upload/<user id>/...`, and the storage template moves them to `<media>/library/...`."""
    for marker in (f"/upload/{owner_id}/", "/library/"):
        index = internal_path.find(marker)
        if index > 0:
            return internal_path[:index]
    return None


def in_immich_storage(path: str, root: str | None) -> bool:
    """Is `path` one of Immich's own files (an external library mounted over its media folder)?"""
    return root is not None and any(path.startswith(f"{root}/{folder}/") for folder in IMMICH_FOLDERS)
