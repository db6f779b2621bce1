"""A run's start: connect, learn the server and the user, check the key's permissions, choose the
libraries, and build the scope the move and the delete gate judge against."""

from __future__ import annotations

from dataclasses import dataclass

from job.immich import errors
from job.immich.client import MIN_VERSION, Capabilities, ImmichClient
from job.immich.endpoints import ENDPOINTS, required_permissions
from job.immich.models import Library, User
from job.settings import DeleteMode


class ConfigurationError(Exception):
    """The settings name something that cannot be migrated (exit code 2)."""


@dataclass
class Session:
    """What `connect` learned: the client and the server's shape, and whose key it is."""

    client: ImmichClient
    caps: Capabilities
    user: User
    key_name: str = "IMMICH_API_KEY"  # where the key came from (a variable or a file), never the key
    admin: bool = False  # the key may list every library (learnt when it is first tried)


def connect(client: ImmichClient, key_name: str = "IMMICH_API_KEY") -> Session:
    version = client.server_version()
    if version.tuple < MIN_VERSION:
        raise errors.TooOld(
            ENDPOINTS["server_version"].call,
            f"Immich {version} is older than 2.0, which this job needs (asset metadata, stable API); upgrade Immich first",
        )
    features = client.server_features()
    return Session(client, Capabilities.of(version, features), client.me(), key_name)


def check_permissions(session: Session, command: str, delete: DeleteMode) -> None:
    """Refuse before changing anything when the key lacks a permission the command needs. A server that
    cannot say (no GET /api-keys/me) skips the check: calls then fail one by one, naming the permission."""
    if command not in ("run", "plan", "verify", "undo", "undo-plan"):
        return  # `libraries` reads what a key may read, and says what it may not
    granted = session.client.key_permissions()
    if granted is None or "all" in granted:
        return
    caps = session.caps
    needed = required_permissions(command, caps.version.tuple, copy=caps.copy, edits=caps.edits,
                                  delete=delete is not DeleteMode.KEEP)
    missing = [p for p in needed if p not in granted]
    if missing:
        raise errors.PermissionMissing(ENDPOINTS["key_me"].call, ", ".join(missing))


def visible_libraries(session: Session) -> list[Library] | None:
    """Every library (an admin key sees all users'), or None when the key may not list them."""
    try:
        return session.client.libraries()
    except (errors.Forbidden, errors.PermissionMissing):
        return None


def resolve_libraries(session: Session, configured: list[str], visible: list[Library] | None) -> list[Library]:
    """The external libraries to migrate. Refuses one owned by another user: its photos would be
    uploaded as the key's user's (never hand photos to the wrong person)."""
    client, me = session.client, session.user
    if not configured:
        if visible is not None:
            return [lib for lib in visible if lib.ownerId == me.id]
        return _discover_own_libraries(client, me)
    chosen = []
    for library_id in configured:
        if visible is not None:
            library = next((lib for lib in visible if lib.id == library_id), None)
            if library is None:
                raise ConfigurationError(f"EXT2INT_LIBRARY_IDS: library {library_id} does not exist on this server; "
                                         "run `ext2int libraries` to list them")
        else:
            page = client.search_assets(libraryId=library_id, size=1, with_exif=False)
            if not page.items:  # a non-admin key sees only its own assets: nothing tells the three apart
                raise ConfigurationError(
                    f"EXT2INT_LIBRARY_IDS: this key sees no asset in library {library_id}: it does not exist, "
                    "holds nothing to move, or belongs to another user (whose own key is needed)")
            library = Library(id=library_id, ownerId=page.items[0].ownerId, name=library_id)
        if library.ownerId != me.id:
            raise ConfigurationError(
                f"EXT2INT_LIBRARY_IDS: library {library.name or library_id} belongs to another user "
                f"({library.ownerId}); moving it with this key would give their photos to {me.email or me.id}. "
                "Run ext2int with an API key of the library's owner"
            )
        chosen.append(library)
    return chosen


def _discover_own_libraries(client: ImmichClient, me: User) -> list[Library]:
    ids: dict[str, None] = {}
    for asset in client.iter_assets(with_exif=False):
        if asset.libraryId and asset.ownerId == me.id:
            ids.setdefault(asset.libraryId)
    return [Library(id=i, ownerId=me.id, name=i) for i in ids]
