"""Which files a delete removes, under which names, and which libraries could hold an asset for them.
Pure, but for one seam: what the job sees of the folders itself (`Aliases.identity`).

Immich imports a file into an external library when its directory walk from an import path finds it
and no exclusion pattern (picomatch globs) matches it (`library.service.ts`). When an asset is deleted
for good, Immich deletes its file AND its XMP sidecar whatever else points at them, so every library that
could hold the same file, under any of its names, matters, and so does every asset that reads the same
sidecar. Errors here must only ever err towards "covered" (the file is held, never deleted): a pattern
using glob syntax this module does not model is treated as excluding nothing.

- Names: Immich stores a path as its crawl found it, so one folder reached through a symbolic link or a
  second mount of the same share is two sets of paths for one set of files. `Aliases` gives every name
  of a path: the prefixes declared equal (EXT2INT_PATH_ALIASES), and, where the job sees the libraries'
  folders itself (mounted beside Immich at the same paths), the import paths that are the same folder
  (device and inode) as a folder above the file.
- Sidecars: Immich reads an asset's sidecar from `IMG_1.jpg.xmp`, else `IMG_1.xmp`
  (`getSidecarCandidates`, `metadata.service.ts`), so a RAW+JPEG pair (`IMG_1.CR2`, `IMG_1.JPG`) can
  share ONE sidecar file; on a case-insensitive share (SMB) `IMG_1.XMP` is the same file too.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from job.immich.models import Library

_UNMODELLED = re.compile(r"[\[\]{}()!\\]|[+@*?]\(")


def covers(library: Library, path: str) -> bool:
    """Could `library` hold an asset for the file at `path`?"""
    inside = any(path.startswith(root.rstrip("/") + "/") for root in library.importPaths if root.strip())
    return inside and not any(excluded(pattern, path) for pattern in library.exclusionPatterns)


def covering(libraries: Iterable[Library], names: Iterable[str]) -> list[Library]:
    """The libraries that could hold the file under any of its `names`."""
    names = tuple(names)
    return [library for library in libraries if any(covers(library, name) for name in names)]


class Covering:
    """`covering` over a fixed list of libraries, in time that grows with the depth of a path, not with the
    number of libraries (a server can have hundreds): each import path is looked up among the folders above
    a name. The same answer as `covering`, in the libraries' order."""

    def __init__(self, libraries: Iterable[Library]):
        self.libraries = tuple(libraries)
        self._by_root: dict[str, list[int]] = {}
        for index, library in enumerate(self.libraries):
            for root in library.importPaths:
                if root.strip():
                    self._by_root.setdefault(root.rstrip("/"), []).append(index)

    def __call__(self, names: Iterable[str]) -> list[Library]:
        found: set[int] = set()
        for name in names:
            inside = {i for cut in _slashes(name) for i in self._by_root.get(name[:cut], ())}
            found |= {i for i in inside - found
                      if not any(excluded(p, name) for p in self.libraries[i].exclusionPatterns)}
        return [self.libraries[i] for i in sorted(found)]


def _slashes(name: str) -> Iterator[int]:
    """Where `name` has a '/': every prefix before one is a folder the name is inside."""
    cut = name.find("/")
    while cut != -1:
        yield cut
        cut = name.find("/", cut + 1)


# --- one file, several names ------------------------------------------------------------------------

Identity = tuple[int, int]  # (st_dev, st_ino) of a folder the job sees


class Roots(tuple):
    """Import paths as `Aliases.names` compares them: no trailing '/', blanks left out. Made once per list
    of libraries (a server can have hundreds): not again on each of a run's thousands of lookups."""

    @classmethod
    def of(cls, roots: Iterable[str]) -> Roots:
        return roots if isinstance(roots, cls) else cls(r.rstrip("/") for r in roots if r.strip())


def local_identity(path: str) -> Identity | None:
    """The folder at `path` as the job sees it, or None where it sees nothing there."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return (found.st_dev, found.st_ino)


@dataclass(frozen=True)
class Aliases:
    """Every name of a path: `pairs` of prefixes declared to be one folder (either way round), folders
    `learn`t to be one (the same file proven under both), and, with `identity`, every import path that
    is, as the job sees it, the same folder as one above the file."""

    pairs: tuple[tuple[str, str], ...] = ()
    identity: Callable[[str], Identity | None] | None = None
    _seen: dict[str, Identity | None] = field(default_factory=dict, compare=False, repr=False)
    _learned: dict[tuple[str, str], None] = field(default_factory=dict, compare=False, repr=False)

    _known: dict[tuple[str, tuple[str, ...], int], tuple[str, ...]] = field(default_factory=dict, compare=False,
                                                                            repr=False)

    def learn(self, folder: str, other: str) -> None:
        """`folder` and `other` are one folder: a file in it was proven the same file under both (a run
        learns it for the rest of the run; the next run proves it again)."""
        if folder != other:
            self._learned[(folder.rstrip("/"), other.rstrip("/"))] = None

    MAX_NAMES = 32  # a loop of aliases ends here; every name found so far is kept

    def names(self, path: str, roots: Iterable[str] = ()) -> tuple[str, ...]:
        """`path` first, then its other names, each once. Remembered: the answer changes only when the run
        learns an alias (what the job sees of a folder is read once per run), so it is kept under how many
        it has learned (only ever more)."""
        roots = Roots.of(roots)
        key = (path, roots, len(self._learned))  # the count read before the names are found: never newer
        found = self._known.get(key)
        if found is None:
            if len(self._known) > 4096:
                self._known.clear()
            found = self._known[key] = self._names(path, roots)
        return found

    def _names(self, path: str, roots: tuple[str, ...]) -> tuple[str, ...]:
        found, todo = [path], [path]
        while todo and len(found) < self.MAX_NAMES:
            name = todo.pop()
            for other in self._renamed(name, roots):
                if other not in found:
                    found.append(other)
                    todo.append(other)
        return tuple(found)

    def _renamed(self, name: str, roots: tuple[str, ...]) -> Iterable[str]:
        for a, b in self.pairs + tuple(self._learned):
            for old, new in ((a, b), (b, a)):
                if name == old or name.startswith(old + "/"):
                    yield new + name[len(old):]
        if self.identity is None or not roots:
            return
        folders = {}
        folder = posixpath.dirname(name)
        while folder and folder != "/":
            seen = self._identity(folder)
            if seen is not None:
                folders.setdefault(seen, folder)
            folder = posixpath.dirname(folder)
        for root in roots:
            seen = self._identity(root)
            if seen is not None and seen in folders and folders[seen] != root:
                yield root + name[len(folders[seen]):]

    def _identity(self, folder: str) -> Identity | None:
        if folder not in self._seen:
            self._seen[folder] = self.identity(folder) if self.identity else None
        return self._seen[folder]


def parse_aliases(text: str) -> tuple[tuple[str, str], ...]:
    """`EXT2INT_PATH_ALIASES`: `/mnt/photos=/photos,/volume1/photo=/photos2`. Raises ValueError with the fix."""
    pairs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        left, sep, right = (s.strip().rstrip("/") for s in part.partition("="))
        if not sep or not left.startswith("/") or not right.startswith("/"):
            raise ValueError(f"{part!r} is not two absolute folders joined by '=' (for example /mnt/photos=/photos)")
        if left == right or left.startswith(right + "/") or right.startswith(left + "/"):
            raise ValueError(f"{part!r}: one folder is inside the other; name two spellings of one folder")
        pairs.append((left, right))
    return tuple(pairs)


def shared_folders(libraries: Iterable[Library], aliases: Aliases) -> list[tuple[Library, Library, str, bool]]:
    """Pairs of libraries whose import paths reach one folder: (a, b, the folder as b names it, whether it
    takes another name of it to see that: an alias or a link)."""
    libraries = list(libraries)
    roots = Roots.of(r for lib in libraries for r in lib.importPaths)
    found = []
    for i, a in enumerate(libraries):
        for b in libraries[i + 1:]:
            hit = None
            for ra in (r.rstrip("/") for r in a.importPaths if r.strip()):
                for index, name in enumerate(aliases.names(ra + "/", roots)):
                    name = name.rstrip("/")
                    for rb in (r.rstrip("/") for r in b.importPaths if r.strip()):
                        if name == rb or name.startswith(rb + "/") or rb.startswith(name + "/"):
                            hit = hit or (max(name, rb, key=len), index > 0)
            if hit:
                found.append((a, b, *hit))
    return found


# --- sidecars -----------------------------------------------------------------------------------------


def sidecars(path: str) -> tuple[str, str]:
    """Where Immich looks for the sidecar of the file at `path`, in its order: `IMG_1.jpg.xmp`, `IMG_1.xmp`
    (node's path.parse: the extension is from the last dot of the name, none for a name like `.hidden`)."""
    folder, name = posixpath.split(path)
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return (f"{path}.xmp", posixpath.join(folder, stem) + ".xmp")


def stem_of(path: str) -> str:
    """The text every path that may share a sidecar with `path` contains (what to search for)."""
    return sidecars(path)[1][: -len(".xmp")]


def share_sidecar(a: str, b: str) -> bool:
    """May the files at `a` and `b` (two different files) read or write one sidecar file? Compared without
    case: on a case-insensitive share `IMG_1.xmp` and `IMG_1.XMP` are one file."""
    if a == b:
        return False
    return bool({s.casefold() for s in sidecars(a)} & {s.casefold() for s in sidecars(b)})


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
