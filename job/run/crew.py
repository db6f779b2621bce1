"""The users a run acts for: one per API key (IMMICH_API_KEY, or a folder of keys, one per user), each with
the libraries the run moves for them, moved with their own key (an upload belongs to the key's user).

A key that Immich refuses, or that lacks a permission, stops only its user's part when there are several:
the run goes on for the others and says which key (by where it came from, never the key) and why. Every
message names users by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from job.decide import Scope
from job.paths import Aliases, local_identity
from job.immich import errors
from job.immich.client import ImmichClient
from job.immich.models import Library
from job.report import Report
from job.run.session import ConfigurationError, Session, check_permissions, connect, resolve_libraries, visible_libraries
from job.settings import Settings


@dataclass
class Keyholder:
    """A user whose key the run holds, and what it moves for them."""

    session: Session
    libraries: list[Library]
    scope: Scope

    @property
    def user_id(self) -> str:
        return self.session.user.id

    @property
    def name(self) -> str:
        return self.session.user.name or self.session.user.email or self.session.user.id


@dataclass
class Crew:
    keyholders: list[Keyholder]
    visible: list[Library] | None  # every library (an admin's key lists them all); None: no key may
    problems: list[str] = field(default_factory=list)  # keys that could not be used: their users' parts stopped

    @property
    def lead(self) -> Session:
        """The session for run-wide reads (the server, its queues, the libraries): an admin's if any."""
        return next((k.session for k in self.keyholders if k.scope.complete and k.session.admin), self.keyholders[0].session)

    @property
    def libraries(self) -> list[Library]:
        return [lib for k in self.keyholders for lib in k.libraries]

    def of(self, user_id: str) -> Keyholder:
        return next(k for k in self.keyholders if k.user_id == user_id)

    def owner_of(self, library_id: str) -> Keyholder:
        return next(k for k in self.keyholders if any(lib.id == library_id for lib in k.libraries))

    def refreshed(self) -> dict[str, Scope]:
        """Each keyholder's scope with the libraries as they are now (the gate's view when it deletes)."""
        libraries = visible_libraries(self.lead) if self.keyholders[0].scope.complete else None
        return {k.user_id: k.scope if libraries is None else replace(k.scope, libraries=tuple(libraries))
                for k in self.keyholders}

    def close(self) -> None:
        for k in self.keyholders:
            k.session.client.close()


# --- what the run reads once per user ---------------------------------------------------------------


def shared_link_map(client: ImmichClient) -> dict[str, frozenset[str]]:
    """Asset id -> the user's individual shared links holding it."""
    links: dict[str, set[str]] = {}
    for link in client.shared_links():
        if link.type.upper() == "INDIVIDUAL":
            for asset in link.assets:
                links.setdefault(asset.id, set()).add(link.id)
    return {k: frozenset(v) for k, v in links.items()}


def memory_map(client: ImmichClient, report: Report) -> dict[str, int]:
    """Asset id -> how many of the user's memories show it (reported: memories do not move)."""
    try:
        memories = client.memories()
    except (errors.Forbidden, errors.PermissionMissing):
        note = "memories not checked: the key lacks memory.read"
        if note not in report.notes:
            report.notes.append(note)
        return {}
    shown: dict[str, int] = {}
    for memory in memories:
        for asset in memory.assets:
            shown[asset.id] = shown.get(asset.id, 0) + 1
    return shown


def remaining(client: ImmichClient, libraries: list[Library]) -> dict[str, int]:
    """External assets left per library."""
    out = {}
    for library in libraries:
        try:
            out[library.id] = client.count_assets(library.id)
        except errors.ImmichError:
            continue
    return out


# --- assembling the crew ---------------------------------------------------------------------------


def assemble(settings: Settings, command: str, open_client: Callable[[str], ImmichClient]) -> Crew:
    """Connect every key, check its permissions for `command`, and choose each user's libraries."""
    sessions: list[Session] = []
    problems: list[str] = []
    first_error: errors.ImmichError | None = None
    for where, secret in settings.keys:
        client = open_client(secret.get_secret_value())
        try:
            session = connect(client, where)
            check_permissions(session, command, settings.delete)
        except (errors.KeyRefused, errors.PermissionMissing) as exc:
            client.close()
            if len(settings.keys) == 1:
                raise
            first_error = first_error or exc
            problems.append(f"the key in {where} cannot be used, its user's libraries are not moved: {exc}")
            continue
        except BaseException:
            client.close()
            for s in sessions:
                s.client.close()
            raise
        twin = next((s for s in sessions if s.user.id == session.user.id), None)
        if twin is not None:
            client.close()
            problems.append(f"the keys in {twin.key_name} and {where} are both {session.user.name or session.user.email}'s: "
                            f"{twin.key_name} is used")
            continue
        sessions.append(session)
    if not sessions:
        assert first_error is not None
        raise first_error
    try:
        return _crew(sessions, settings, problems)
    except BaseException:
        for s in sessions:
            s.client.close()
        raise


def _crew(sessions: list[Session], settings: Settings, problems: list[str]) -> Crew:
    visible = None
    for session in sorted(sessions, key=lambda s: not s.admin):
        visible = visible_libraries(session)
        if visible is not None:
            session.admin = True
            break
    owners = {s.user.id: s.user.name or s.user.email for s in sessions}
    if visible is not None:
        lead = next(s for s in sessions if s.admin)
        try:
            owners = {**lead.client.user_names(), **owners}
        except (errors.Forbidden, errors.PermissionMissing):
            pass
    chosen = _choose(sessions, [str(i) for i in settings.library_ids], visible, owners)
    selected = frozenset(lib.id for libs in chosen.values() for lib in libs)
    acting = frozenset(s.user.id for s in sessions)
    known = tuple(visible if visible is not None else [lib for libs in chosen.values() for lib in libs])
    aliases = Aliases(settings.path_aliases, identity=local_identity)  # one for the run: it caches what it saw
    keyholders = [Keyholder(s, chosen[s.user.id], Scope(
        user_id=s.user.id, selected=selected, libraries=known, complete=visible is not None,
        assume_unshared=settings.assume_unshared, owners=owners, acting=acting, aliases=aliases)) for s in sessions]
    return Crew(keyholders, visible, problems)


def _choose(sessions: list[Session], configured: list[str], visible: list[Library] | None,
            owners: dict[str, str]) -> dict[str, list[Library]]:
    """Each user's libraries to move: all their external libraries, or those of EXT2INT_LIBRARY_IDS. A
    configured library whose owner's key the run lacks is refused (its photos would go to the wrong user)."""
    if not configured:
        return {s.user.id: resolve_libraries(s, [], visible) for s in sessions}
    chosen: dict[str, list[Library]] = {s.user.id: [] for s in sessions}
    for library_id in configured:
        owner = None
        if visible is not None:
            library = next((lib for lib in visible if lib.id == library_id), None)
            if library is None:
                raise ConfigurationError(f"EXT2INT_LIBRARY_IDS: library {library_id} does not exist on this server; "
                                         "run `ext2int libraries` to list them")
            owner = next((s for s in sessions if s.user.id == library.ownerId), None)
            if owner is None:
                name = owners.get(library.ownerId, library.ownerId)
                raise ConfigurationError(
                    f"EXT2INT_LIBRARY_IDS: library {library.name or library_id} belongs to {name}, whose API key this run "
                    f"does not have: moving it with another user's key would give {name}'s photos to that user. Add "
                    f"{name}'s key (IMMICH_API_KEYS_DIR holds one key per user), or leave the library out")
        else:
            owner = next((s for s in sessions if _sees(s, library_id)), None)
        if owner is None and len(sessions) == 1:
            resolve_libraries(sessions[0], [library_id], visible)  # raises, with the message for one key
        if owner is None:
            raise ConfigurationError(
                f"EXT2INT_LIBRARY_IDS: no key of this run sees an asset in library {library_id}: it does not exist, "
                "holds nothing to move, or belongs to a user whose key is not given")
        chosen[owner.user.id] += resolve_libraries(owner, [library_id], visible)
    return chosen


def _sees(session: Session, library_id: str) -> bool:
    return bool(session.client.search_assets(libraryId=library_id, size=1, with_exif=False).items)
