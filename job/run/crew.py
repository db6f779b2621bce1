"""The users a run acts for: one per API key (IMMICH_API_KEY, or a folder of keys, one per user), each with
the libraries the run moves for them, moved with their own key (an upload belongs to the key's user).

A key that Immich refuses, or that lacks a permission, stops only its user's part when there are several:
the run goes on for the others and says which key (by where it came from, never the key) and why. Every
message names users by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from job.commands import Command
from job.decide import Scope
from job.paths import Aliases, local_identity
from job.immich import errors
from job.immich.client import ImmichClient
from job.immich.models import Library
from job.report import Report
from job.run.session import ConfigurationError, Session, check_permissions, connect, visible_libraries
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


def assemble(settings: Settings, command: Command, open_client: Callable[[str], ImmichClient]) -> Crew:
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
    chosen = choose_libraries(sessions, [str(i) for i in settings.library_ids], visible, owners)
    selected = frozenset(lib.id for libs in chosen.values() for lib in libs)
    acting = frozenset(s.user.id for s in sessions)
    known = tuple(visible if visible is not None else [lib for libs in chosen.values() for lib in libs])
    aliases = Aliases(settings.path_aliases, identity=local_identity)  # one for the run: it caches what it saw
    keyholders = [Keyholder(s, chosen[s.user.id], Scope(
        user_id=s.user.id, selected=selected, libraries=known, complete=visible is not None,
        assume_unshared=settings.assume_unshared, owners=owners, acting=acting, aliases=aliases)) for s in sessions]
    return Crew(keyholders, visible, problems)


def choose_libraries(sessions: list[Session], configured: list[str], visible: list[Library] | None,
                     owners: dict[str, str]) -> dict[str, list[Library]]:
    """Each user's libraries to move, by user id: all their external libraries, or those of
    EXT2INT_LIBRARY_IDS. A library goes to its owner's key only: moved with another user's key, its
    photos would become that user's. `visible`: every library (an admin key), or None (then a library is
    known by an asset of it that a key sees)."""
    chosen: dict[str, list[Library]] = {s.user.id: [] for s in sessions}
    if not configured:
        for s in sessions:
            chosen[s.user.id] = ([lib for lib in visible if lib.ownerId == s.user.id] if visible is not None
                                 else _own_libraries(s))
        return chosen
    for library_id in configured:
        library, owner = _find(sessions, library_id, visible, owners)
        chosen[owner.user.id].append(library)
    return chosen


def _find(sessions: list[Session], library_id: str, visible: list[Library] | None,
          owners: dict[str, str]) -> tuple[Library, Session]:
    """A configured library and its owner's session, or the reason it cannot be moved."""
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
        return library, owner
    for session in sessions:  # one search per key, until one sees it
        page = session.client.search_assets(libraryId=library_id, size=1, with_exif=False)
        if not page.items:
            continue
        library = Library(id=library_id, ownerId=page.items[0].ownerId, name=library_id)
        if library.ownerId != session.user.id:  # a partner's asset, shown to this key
            raise ConfigurationError(
                f"EXT2INT_LIBRARY_IDS: library {library_id} belongs to another user ({library.ownerId}); moving it "
                f"with this key would give their photos to {session.user.email or session.user.id}. Run ext2int with "
                "an API key of the library's owner")
        return library, session
    if len(sessions) == 1:  # a non-admin key sees only its own assets: nothing tells the three apart
        raise ConfigurationError(
            f"EXT2INT_LIBRARY_IDS: this key sees no asset in library {library_id}: it does not exist, holds nothing "
            "to move, or belongs to another user (whose own key is needed)")
    raise ConfigurationError(
        f"EXT2INT_LIBRARY_IDS: no key of this run sees an asset in library {library_id}: it does not exist, "
        "holds nothing to move, or belongs to a user whose key is not given")


def _own_libraries(session: Session) -> list[Library]:
    """A key that may not list libraries: the external libraries its user's assets are in."""
    ids: dict[str, None] = {}
    for asset in session.client.iter_assets(with_exif=False):
        if asset.libraryId and asset.ownerId == session.user.id:
            ids.setdefault(asset.libraryId)
    return [Library(id=i, ownerId=session.user.id, name=i) for i in ids]
