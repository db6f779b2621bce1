"""Every Immich endpoint the job calls, described once: method, path, the API-key permission it needs,
whether it may be sent again blindly, whether it changes anything, since which server version it
exists, and when a run needs it. The transport's retry and read-only rules and the list of
permissions a key must have are derived from this table; nothing else spells a path.

Permissions and versions are from Immich's controllers (3.1.0) and ../shared/immich/API.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from job.commands import Command


class Need(Enum):
    """When a command needs an endpoint (and so its permission)."""

    READ = "read"  # plan and run
    RUN = "run"  # run only
    COPY = "copy"  # run, on servers with PUT /assets/copy (2.2+)
    NO_COPY = "no-copy"  # run, on older servers, instead of the copy endpoint
    EDITS = "edits"  # run, on servers with edits (2.5+)
    DELETE = "delete"  # run, unless EXT2INT_DELETE=keep
    UNDO = "undo"  # undo only: taking back what a move added
    OPTIONAL = "optional"  # used when allowed; the job says what it could not do without it


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # below /api, with {id} for an id
    permission: str | None  # None: no permission needed
    need: Need
    retry: bool  # safe to send again when no answer came back
    changes: bool  # changes something on the server: refused in a dry run (plan)
    since: tuple[int, int, int] = (2, 0, 0)
    admin: bool = False
    regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = "^/api" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(self.path)) + "$"
        object.__setattr__(self, "regex", re.compile(pattern))

    @property
    def call(self) -> str:
        """'GET /api/assets/{id}': how messages name the call (ids never in it)."""
        return f"{self.method} /api{self.path}"

    def url_path(self, *ids: str) -> str:
        parts = iter(ids)
        return re.sub(r"\{\w+\}", lambda _: next(parts), self.path)


def _e(method: str, path: str, permission: str | None, need: Need, *, retry: bool | None = None,
       changes: bool | None = None, since: tuple[int, int, int] = (2, 0, 0), admin: bool = False) -> Endpoint:
    reads = method in ("GET", "HEAD")
    return Endpoint(method, path, permission, need, reads if retry is None else retry,
                    (not reads) if changes is None else changes, since, admin)


R, N = Need.READ, Need.RUN
# name -> endpoint. Comments say why an entry departs from the default (reads retried and harmless,
# writes neither).
ENDPOINTS: dict[str, Endpoint] = {
    "server_version": _e("GET", "/server/version", None, R),
    "server_features": _e("GET", "/server/features", None, R),
    "server_config": _e("GET", "/server/config", None, R),  # the trash days
    "me": _e("GET", "/users/me", "user.read", R),
    "key_me": _e("GET", "/api-keys/me", None, R),  # tells a key's permissions without needing any
    "users": _e("GET", "/admin/users", "adminUser.read", Need.OPTIONAL, admin=True),  # names, for messages
    "libraries": _e("GET", "/libraries", "library.read", Need.OPTIONAL, admin=True),
    "library": _e("GET", "/libraries/{id}", "library.read", Need.OPTIONAL, admin=True),
    # searches read, though they are POSTs
    "search": _e("POST", "/search/metadata", "asset.read", R, retry=True, changes=False),
    "statistics": _e("POST", "/search/statistics", "asset.statistics", Need.OPTIONAL, retry=True, changes=False),
    "asset": _e("GET", "/assets/{id}", "asset.read", R),
    "original": _e("GET", "/assets/{id}/original", "asset.download", N),
    "original_head": _e("HEAD", "/assets/{id}/original", "asset.download", N),
    "metadata": _e("GET", "/assets/{id}/metadata", "asset.read", R),
    "edits": _e("GET", "/assets/{id}/edits", "asset.edit.get", Need.EDITS, since=(2, 5, 0)),
    "albums": _e("GET", "/albums", "album.read", R),
    "faces": _e("GET", "/faces", "face.read", N),
    "stack": _e("GET", "/stacks/{id}", "stack.read", N),
    "shared_links": _e("GET", "/shared-links", "sharedLink.read", N),
    "shared_link": _e("GET", "/shared-links/{id}", "sharedLink.read", N),
    "memories": _e("GET", "/memories", "memory.read", Need.OPTIONAL),
    "activity": _e("GET", "/activities/statistics", "activity.statistics", Need.OPTIONAL),
    "person_statistics": _e("GET", "/people/{id}/statistics", "person.statistics", Need.OPTIONAL),
    "queues": _e("GET", "/queues", "queue.read", Need.OPTIONAL, since=(3, 0, 0), admin=True),
    "jobs": _e("GET", "/jobs", "job.read", Need.OPTIONAL, admin=True),
    # a one-shot streamed body: the move repeats the whole transfer instead (dedup makes that safe)
    "upload": _e("POST", "/assets", "asset.upload", N),
    "restore": _e("POST", "/trash/restore/assets", "asset.delete", Need.DELETE, retry=True),
    # NOT repeatable: repeated with stack=true once the target is in the source's stack, it merges the
    # stack into itself and then DELETES it (asset.service.ts copyStack: merge + delete(sourceStackId))
    "copy": _e("PUT", "/assets/copy", "asset.copy", Need.COPY, since=(2, 2, 0)),
    # queue a metadata extraction of a new asset Immich never read (an upload cut by a restart): asking twice
    # only queues it twice
    "asset_jobs": _e("POST", "/assets/jobs", "job.create", Need.OPTIONAL, retry=True),
    "update_assets": _e("PUT", "/assets", "asset.update", N, retry=True),
    "update_asset": _e("PUT", "/assets/{id}", "asset.update", N, retry=True),
    "tag_assets": _e("PUT", "/tags/assets", "tag.asset", N, retry=True),
    "album_add": _e("PUT", "/albums/{id}/assets", "albumAsset.create", Need.NO_COPY, retry=True),
    "album_update": _e("PATCH", "/albums/{id}", "album.update", N, retry=True),
    "link_add": _e("PUT", "/shared-links/{id}/assets", "sharedLink.update", Need.NO_COPY, retry=True),
    "stack_create": _e("POST", "/stacks", "stack.create", Need.NO_COPY),  # a new stack each time
    "stack_update": _e("PUT", "/stacks/{id}", "stack.update", N, retry=True),
    "edits_set": _e("PUT", "/assets/{id}/edits", "asset.edit.create", Need.EDITS, retry=True, since=(2, 5, 0)),
    "metadata_bulk": _e("PUT", "/assets/metadata", "asset.update", N, retry=True, since=(2, 5, 0)),
    "metadata_set": _e("PUT", "/assets/{id}/metadata", "asset.update", N, retry=True),
    "face_create": _e("POST", "/faces", "face.create", N),  # a new face each time
    "face_reassign": _e("PUT", "/faces/{id}", "face.update", N, retry=True),
    "person_update": _e("PUT", "/people/{id}", "person.update", Need.OPTIONAL, retry=True),
    # trashing twice, or deleting what is gone, changes nothing more
    "delete": _e("DELETE", "/assets", "asset.delete", Need.DELETE, retry=True),
    # undo: each removal is idempotent (removing what is no longer there changes nothing)
    "album_remove": _e("DELETE", "/albums/{id}/assets", "albumAsset.delete", Need.UNDO, retry=True),
    "tag_remove": _e("DELETE", "/tags/{id}/assets", "tag.asset", Need.UNDO, retry=True),
    "metadata_delete": _e("DELETE", "/assets/{id}/metadata/{key}", "asset.update", Need.UNDO, retry=True),
    "face_delete": _e("DELETE", "/faces/{id}", "face.delete", Need.UNDO, retry=True),
    "edits_delete": _e("DELETE", "/assets/{id}/edits", "asset.edit.delete", Need.UNDO, retry=True, since=(2, 5, 0)),
    # a second time answers 400 "Asset not in stack": undo looks before it asks
    "stack_remove": _e("DELETE", "/stacks/{id}/assets/{assetId}", "stack.update", Need.UNDO),
}

# What `verify` reads beyond `plan`: a target's whole record, and its bytes when they are hashed again.
VERIFY = ("original", "faces", "stack", "shared_links", "shared_link", "edits")
# What `undo` uses beyond `plan`: restoring, trashing, and each way of taking a value back.
UNDO = ("restore", "delete", "update_assets", "metadata_set", "metadata_bulk", "faces", "stack", "shared_links",
        "shared_link", "edits", "edits_set", "edits_delete", "album_remove", "album_update", "stack_update",
        "tag_remove", "metadata_delete", "face_delete", "stack_remove")


def find(method: str, api_path: str) -> Endpoint | None:
    """The endpoint a request goes to ('/api/...' path, query string ignored)."""
    path = api_path.split("?", 1)[0]
    method = method.upper()
    for endpoint in ENDPOINTS.values():
        if endpoint.method == method and endpoint.regex.match(path):
            return endpoint
    return None


def retry_safe(method: str, api_path: str) -> bool:
    """May this request be sent again when no (or a transient) answer came back? Unknown calls: no."""
    endpoint = find(method, api_path)
    return endpoint is not None and endpoint.retry


def changes(method: str, api_path: str) -> bool:
    """Does this request change anything? Unknown calls are assumed to (a dry run refuses them)."""
    endpoint = find(method, api_path)
    return endpoint is None or endpoint.changes


def required_permissions(command: Command | str, version: tuple[int, int, int], *, copy: bool, edits: bool,
                         delete: bool) -> list[str]:
    """The permissions a key needs for `command` ('run', 'plan', 'verify', 'undo' or 'undo-plan') on a
    server of `version`."""
    command = Command(command)
    wanted = {Need.READ}
    if command is Command.RUN:
        wanted |= {Need.RUN, Need.COPY if copy else Need.NO_COPY}
        if edits:
            wanted.add(Need.EDITS)
        if delete:
            wanted.add(Need.DELETE)
    named = {Command.VERIFY: VERIFY, Command.UNDO_PLAN: VERIFY, Command.UNDO: VERIFY + UNDO}.get(command, ())
    return sorted({e.permission for name, e in ENDPOINTS.items()
                   if (e.need in wanted or name in named) and e.permission and version >= e.since
                   and (edits or e.need is not Need.EDITS)})
