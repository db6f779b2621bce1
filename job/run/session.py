"""A run's start: connect, learn the server and the user, check the key's permissions, choose the
libraries, and build the scope the move and the delete gate judge against."""

from __future__ import annotations

from dataclasses import dataclass

from job.commands import Command
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


def check_permissions(session: Session, command: Command, delete: DeleteMode) -> None:
    """Refuse before changing anything when the key lacks a permission the command needs. A server that
    cannot say (no GET /api-keys/me) skips the check: calls then fail one by one, naming the permission."""
    if not Command(command).acts_on_assets:
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
