"""The fake Immich HTTP server: real HTTP on 127.0.0.1, Immich's routes, permissions, status codes and
error bodies, streaming uploads and downloads, and the fault plan. Started in-process by the tests."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, parse_qs, urlsplit

from tests.fake_immich import render
from tests.fake_immich.blobs import Blob
from tests.fake_immich.faults import Fault, FaultPlan
from tests.fake_immich.state import (
    Album, ApiError, Face, Person, User, World, new_id, not_found_asset,
)

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
READ_ONLY_POSTS = {"/search/metadata", "/search/statistics", "/assets/bulk-upload-check"}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass
class Logged:
    method: str
    path: str
    route: str
    status: int | None = None
    at: float = field(default_factory=time.time)
    body: Any = None
    query: str = ""

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING and not (self.method == "POST" and self.route in READ_ONLY_POSTS)


@dataclass
class Route:
    method: str
    template: str
    handler: str
    permission: str | None  # None: public
    admin: bool = False
    feature: str | None = None
    regex: re.Pattern = field(init=False)

    def __post_init__(self) -> None:
        self.regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


ROUTES = [
    Route("GET", "/server/version", "server_version", None),
    Route("GET", "/server/features", "server_features", None),
    Route("GET", "/server/config", "server_config", None),
    Route("GET", "/server/ping", "ping", None),
    Route("GET", "/users/me", "users_me", "user.read"),
    Route("GET", "/admin/users", "admin_users", "adminUser.read", admin=True),
    Route("GET", "/system-config", "system_config", "systemConfig.read", admin=True),
    Route("PUT", "/system-config", "set_system_config", "systemConfig.update", admin=True),
    Route("GET", "/api-keys/me", "api_key_me", ""),
    Route("GET", "/libraries", "libraries", "library.read", admin=True),
    Route("GET", "/libraries/{id}", "library", "library.read", admin=True),
    Route("GET", "/libraries/{id}/statistics", "library_statistics", "library.statistics", admin=True),
    Route("POST", "/libraries", "create_library", "library.create", admin=True),
    Route("POST", "/libraries/{id}/scan", "scan_library", "library.update", admin=True),
    Route("POST", "/albums", "create_album", "album.create"),
    Route("PUT", "/tags", "upsert_tags", "tag.create"),
    Route("POST", "/people", "create_person", "person.create"),
    Route("POST", "/api-keys", "create_api_key", "apiKey.create"),
    Route("DELETE", "/api-keys/{id}", "delete_api_key", "apiKey.delete"),
    Route("POST", "/search/metadata", "search_metadata", "asset.read"),
    Route("POST", "/search/statistics", "search_statistics", "asset.statistics"),
    Route("POST", "/assets", "upload", "asset.upload"),
    Route("PUT", "/assets", "update_assets", "asset.update"),
    Route("DELETE", "/assets", "delete_assets", "asset.delete"),
    Route("PUT", "/assets/copy", "copy", "asset.copy", feature="copy"),
    Route("POST", "/assets/jobs", "asset_jobs", "job.create"),
    Route("PUT", "/assets/metadata", "bulk_metadata", "asset.update", feature="bulk_metadata"),
    Route("GET", "/assets/{id}", "get_asset", "asset.read"),
    Route("PUT", "/assets/{id}", "update_asset", "asset.update"),
    Route("GET", "/assets/{id}/original", "original", "asset.download"),
    Route("HEAD", "/assets/{id}/original", "original", "asset.download"),  # Express answers HEAD for GET routes
    Route("GET", "/assets/{id}/metadata", "get_metadata", "asset.read"),
    Route("PUT", "/assets/{id}/metadata", "put_metadata", "asset.update"),
    Route("DELETE", "/assets/{id}/metadata/{key}", "delete_metadata_key", "asset.update"),
    Route("GET", "/assets/{id}/edits", "get_edits", "asset.edit.get", feature="edits"),
    Route("PUT", "/assets/{id}/edits", "put_edits", "asset.edit.create", feature="edits"),
    Route("DELETE", "/assets/{id}/edits", "delete_edits", "asset.edit.delete", feature="edits"),
    Route("POST", "/trash/restore/assets", "restore", "asset.delete"),
    Route("GET", "/albums", "albums", "album.read"),
    Route("GET", "/albums/{id}", "album", "album.read"),
    Route("PATCH", "/albums/{id}", "update_album", "album.update"),
    Route("PUT", "/albums/{id}/assets", "album_add", "albumAsset.create"),
    Route("DELETE", "/albums/{id}/assets", "album_remove", "albumAsset.delete"),
    Route("GET", "/tags", "tags", "tag.read"),
    Route("PUT", "/tags/assets", "tag_assets", "tag.asset"),
    Route("DELETE", "/tags/{id}/assets", "tag_remove", "tag.asset"),
    Route("GET", "/stacks/{id}", "stack", "stack.read"),
    Route("POST", "/stacks", "create_stack", "stack.create"),
    Route("PUT", "/stacks/{id}", "update_stack", "stack.update"),
    Route("DELETE", "/stacks/{id}/assets/{assetId}", "stack_remove_asset", "stack.update"),
    Route("GET", "/faces", "faces", "face.read"),
    Route("POST", "/faces", "create_face", "face.create"),
    Route("PUT", "/faces/{id}", "reassign_face", "face.update"),
    Route("DELETE", "/faces/{id}", "delete_face", "face.delete"),
    Route("GET", "/people/{id}/statistics", "person_statistics", "person.statistics"),
    Route("PUT", "/people/{id}", "update_person", "person.update"),
    Route("GET", "/shared-links", "shared_links", "sharedLink.read"),
    Route("GET", "/shared-links/{id}", "shared_link", "sharedLink.read"),
    Route("PUT", "/shared-links/{id}/assets", "shared_link_add", "sharedLink.update"),
    Route("GET", "/memories", "memories", "memory.read"),
    Route("GET", "/activities/statistics", "activity_statistics", "activity.statistics"),
    Route("GET", "/queues", "queues", "queue.read", admin=True, feature="queues"),
    Route("GET", "/jobs", "jobs", "job.read", admin=True),
]


class Dropped(Exception):
    """Close the connection without an answer."""


class _Answered(Exception):
    """A fault already sent the whole answer."""


@dataclass
class Call:
    """One request, as the route handlers see it."""

    handler: Handler
    method: str
    route: str
    params: dict[str, str]
    query: dict[str, list[str]]
    user: User
    faults: list[Fault]

    def json(self) -> Any:
        return self.handler.read_json()


class FakeImmich:
    """Start with `start()`; `url` is the base URL (without /api)."""

    def __init__(self, version: tuple[int, int, int] = (3, 1, 0)):
        self.world = World(version)
        self.faults = FaultPlan()
        self.log: list[Logged] = []
        self._log_lock = threading.Lock()
        self.on_kill: Callable[[], None] | None = None
        self.on_notify: Callable[[], None] | None = None
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self._handling = threading.local()

    def current_request(self) -> Logged | None:
        """The request a hook (on_notify, on_kill) is called for: they run in its handler's thread."""
        return getattr(self._handling, "entry", None)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeImmich:
        fake = self

        class _Handler(Handler):
            server_fake = fake

        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="fake-immich", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    @property
    def url(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- the request log -------------------------------------------------------------------------

    def record(self, entry: Logged) -> None:
        with self._log_lock:
            self.log.append(entry)

    def requests(self, method: str | None = None, route: str | None = None) -> list[Logged]:
        with self._log_lock:
            return [e for e in self.log if (method is None or e.method == method) and (route is None or e.route == route)]

    def mutating_requests(self) -> list[Logged]:
        with self._log_lock:
            return [e for e in self.log if e.mutating]

    def clear_log(self) -> None:
        with self._log_lock:
            self.log.clear()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """Clients that go away mid-request are part of the tests; stay quiet about them."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, OSError)):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes: without this, 40 ms each
    server_fake: FakeImmich

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    # --- dispatch --------------------------------------------------------------------------------

    def dispatch(self) -> None:
        fake = self.server_fake
        world = fake.world
        self._body_read = False
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query)
        method = self.command
        if not path.startswith("/api/"):
            return self.send_json(404, {"message": f"Cannot {method} {path}", "error": "Not Found", "statusCode": 404})
        sub = path[4:]
        route, params = self.match(method, sub)
        entry = Logged(method, path, route.template if route else sub, query=split.query)
        fake.record(entry)
        fake._handling.entry = entry
        faults = fake.faults.take(method, entry.route, self.headers.get("x-api-key"))
        if world.latency:
            time.sleep(world.latency)
        if world.costs is not None:  # benchmarks: Immich's own work for the call, on its few cores
            world.costs.call(method, entry.route)
        try:
            self.pre_faults(faults)
            if route is None:
                raise ApiError(404, f"Cannot {method} {path}")
            if route.feature and not world.has(route.feature):
                raise ApiError(404, f"Cannot {method} {path}")
            user = self.authenticate(route)
            for name, value in params.items():
                if name == "id" and not _UUID.match(value):
                    raise ApiError(400, "Validation failed", [{"origin": "string", "code": "invalid_format",
                                                              "format": "uuid", "path": ["id"], "message": "Invalid UUID"}])
            call = Call(self, method, route.template, params, query, user, faults)
            with world.lock:
                if entry.mutating:
                    world.search_cache.clear()
                result = getattr(Routes, route.handler)(world, call)
            if any(f.action in ("kill_after", "drop_after") for f in faults):
                self.drain_body()
                for f in faults:
                    if f.action == "kill_after" and fake.on_kill:
                        fake.on_kill()
                raise Dropped()
            self.drain_body()  # Immich's body parser reads every body, used or not (keep-alive depends on it)
            status, body = result if isinstance(result, tuple) else (200, result)
            entry.status = status
            if isinstance(body, Stream):
                return self.send_stream(status, body, faults)
            self.send_json(status, body, faults)
        except ApiError as err:
            entry.status = err.status
            self.drain_body()
            self.send_json(err.status, err.body(), faults)
        except _Answered:
            entry.status = faults[0].status if faults else None
        except Dropped:
            entry.status = None
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (ConnectionError, BrokenPipeError, TimeoutError):
            entry.status = None
            self.close_connection = True

    def match(self, method: str, sub: str) -> tuple[Route | None, dict[str, str]]:
        for route in ROUTES:
            if route.method == method:
                m = route.regex.match(sub)
                if m:
                    return route, m.groupdict()
        for route in ROUTES:
            if route.regex.match(sub):
                return None, {}
        return None, {}

    def pre_faults(self, faults: list[Fault]) -> None:
        for fault in faults:
            if fault.action == "notify" and self.server_fake.on_notify:
                self.server_fake.on_notify()  # before any other fault acts: the test sees the request at once
        for fault in faults:
            if fault.action == "respond":
                self.drain_body()
                self.send_response(fault.status)
                self.send_header("Content-Type", fault.content_type)
                self.send_header("Content-Length", str(len(fault.body)))
                for name, value in fault.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(fault.body)
                raise _Answered()
            if fault.action == "delay":
                time.sleep(fault.seconds)
            elif fault.action in ("hold", "meet"):
                fault.wait()
            elif fault.action == "status":
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                message = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable",
                           504: "Gateway Timeout"}.get(fault.status, "Internal server error")
                raise _StatusFault(fault.status, message, headers)
            elif fault.action == "drop":
                raise Dropped()
            elif fault.action == "kill":
                if self.server_fake.on_kill:
                    self.server_fake.on_kill()
                raise Dropped()

    def authenticate(self, route: Route) -> User:
        world = self.server_fake.world
        if route.permission is None:
            return User("", "", "")
        key = world.keys.get(self.headers.get("x-api-key", ""))
        if key is None:
            raise ApiError(401, "Invalid API key")
        user = world.users[key.user_id]
        if route.permission and "all" not in key.permissions and route.permission not in key.permissions:
            raise ApiError(403, f"Missing required permission: {route.permission}")
        if route.admin and not user.is_admin:
            raise ApiError(403, "Forbidden")
        return user

    # --- bodies ----------------------------------------------------------------------------------

    def read_json(self) -> Any:
        raw = self.read_body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "Unexpected token in JSON") from None

    def read_body(self) -> bytes:
        if self._body_read:
            return b""
        self._body_read = True
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def drain_body(self) -> None:
        if self._body_read:
            return
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            for _ in ChunkedReader(self.rfile).chunks():
                pass
            self._body_read = True
            return
        self.read_body()

    def body_stream(self) -> Any:
        self._body_read = True
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            return ChunkedReader(self.rfile)
        return LengthReader(self.rfile, int(self.headers.get("content-length") or 0))

    # --- answers ---------------------------------------------------------------------------------

    def send_json(self, status: int, body: Any, faults: list[Fault] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        extra = {}
        if isinstance(body, _Headers):
            extra = body.headers
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        length = len(data) + sum(f.delta for f in faults or () if f.action == "wrong_length")
        self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        truncate = next((f for f in faults or () if f.action == "truncate"), None)
        if truncate is not None:
            self.wfile.write(data[: truncate.after_bytes])
            raise Dropped()
        self.wfile.write(data)
        if length != len(data):
            raise Dropped()

    def send_stream(self, status: int, stream: Stream, faults: list[Fault]) -> None:
        blob = stream.blob
        delta = sum(f.delta for f in faults if f.action == "wrong_length")
        truncate = next((f for f in faults if f.action == "truncate"), None)
        kill = next((f for f in faults if f.action == "kill_mid_body"), None)
        slow = next((f for f in faults if f.action == "slow"), None)
        self.send_response(status)
        self.send_header("Content-Type", stream.content_type)
        self.send_header("Content-Length", str(blob.size + delta))
        if stream.etag:
            self.send_header("ETag", stream.etag)
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = 0
        for chunk in blob.chunks():
            limit = truncate.after_bytes if truncate else kill.after_bytes if kill else None
            if limit is not None and sent + len(chunk) >= limit:
                self.wfile.write(chunk[: max(0, limit - sent)])
                self.wfile.flush()
                if kill and self.server_fake.on_kill:
                    self.server_fake.on_kill()
                raise Dropped()
            if slow:
                for offset in range(0, len(chunk), 8192):
                    self.wfile.write(chunk[offset:offset + 8192])
                    self.wfile.flush()
                    time.sleep(slow.seconds)
            else:
                self.wfile.write(chunk)
            sent += len(chunk)
        if delta:
            raise Dropped()


class _StatusFault(ApiError):
    def __init__(self, status: int, message: str, headers: dict[str, str]):
        super().__init__(status, message)
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return _Headers({"message": self.message, "statusCode": self.status}, self.headers)


class _Headers(dict):
    def __init__(self, body: dict[str, Any], headers: dict[str, str]):
        super().__init__(body)
        self.headers = headers


@dataclass
class Stream:
    blob: Blob
    content_type: str
    etag: str | None = None


class LengthReader:
    def __init__(self, rfile, length: int):
        self.rfile, self.left = rfile, length

    def read(self, size: int) -> bytes:
        if self.left <= 0:
            return b""
        data = self.rfile.read(min(size, self.left))
        if not data:
            raise ConnectionError("client went away")
        self.left -= len(data)
        return data


class ChunkedReader:
    def __init__(self, rfile):
        self.rfile, self.buffer, self.done = rfile, b"", False

    def chunks(self):
        while not self.done:
            line = self.rfile.readline()
            if not line:
                raise ConnectionError("client went away")
            size = int(line.strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                self.done = True
                return
            data = self.rfile.read(size)
            self.rfile.readline()
            yield data

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size and not self.done:
            chunk = next(self.chunks(), b"")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def parse_multipart(reader, boundary: bytes, on_file: Callable[[bytes], None], kill_at: int | None, on_kill) -> tuple[dict[str, str], str | None]:
    """Stream a multipart body: small fields are kept, the file part goes to `on_file` block by block."""
    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"
    fields: dict[str, str] = {}
    filename = None
    received = 0

    def fill() -> bool:
        nonlocal buffer, received
        data = reader.read(256 * 1024)
        if not data:
            return False
        received += len(data)
        if kill_at is not None and received >= kill_at and on_kill:
            on_kill()
            raise Dropped()
        buffer += data
        return True

    while True:
        while delimiter not in buffer:
            if not fill():
                raise ApiError(400, "Unexpected end of form")
        _, buffer = buffer.split(delimiter, 1)
        while len(buffer) < 2 and fill():
            pass
        if buffer.startswith(b"--"):
            return fields, filename
        while b"\r\n\r\n" not in buffer:
            if not fill():
                raise ApiError(400, "Unexpected end of form")
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        file_match = re.search(r'filename="([^"]*)"', disposition)
        if file_match:
            filename = file_match.group(1)
            while True:
                index = buffer.find(delimiter)
                if index >= 0:
                    on_file(buffer[:index])
                    buffer = buffer[index:]
                    break
                keep = len(delimiter)
                if len(buffer) > keep:
                    on_file(buffer[:-keep])
                    buffer = buffer[-keep:]
                if not fill():
                    raise ApiError(400, "Unexpected end of form")
        else:
            while delimiter not in buffer:
                if not fill():
                    raise ApiError(400, "Unexpected end of form")
            index = buffer.find(delimiter)
            fields[name.group(1) if name else ""] = buffer[:index].decode("utf-8")
            buffer = buffer[index:]


def _asset_of(world: World, call: Call, asset_id: str, permission: str = "asset.read"):
    asset = world.assets.get(asset_id)
    # 3.1.0 access.repository.ts checkOwnerAccess: a locked asset only with an elevated session (PIN),
    # which an API key never has
    if asset is None or asset.owner_id != call.user.id or asset.visibility == "locked":
        if permission == "asset.read":
            raise not_found_asset()
        raise ApiError(400, f"Not found or no {permission} access")
    return asset


def _instant(text: str) -> float:
    return __import__("datetime").datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def _ids_of(world: World, call: Call, ids: list[str], permission: str):
    return [_asset_of(world, call, i, permission) for i in ids]


class Routes:
    """Route handlers: (world, call) -> body, or (status, body). Run under the world's lock."""

    @staticmethod
    def server_version(world: World, call: Call):
        major, minor, patch = world.version
        return {"major": major, "minor": minor, "patch": patch, "prerelease": None}

    @staticmethod
    def server_config(world: World, call: Call):
        """server.service getConfig: the trash days among the public settings."""
        return {"trashDays": world.trash_days, "loginPageMessage": "", "isInitialized": True, "isOnboarded": True,
                "externalDomain": "", "publicUsers": True, "mapDarkStyleUrl": "", "mapLightStyleUrl": "",
                "oauthButtonText": "", "userDeleteDelay": 7, "maintenanceMode": False}

    @staticmethod
    def server_features(world: World, call: Call):
        return {"smartSearch": world.features["smartSearch"], "facialRecognition": world.features["facialRecognition"],
                "duplicateDetection": False, "map": True, "reverseGeocoding": True, "importFaces": False,
                "sidecar": True, "search": True, "trash": world.features["trash"], "oauth": False, "oauthAutoLaunch": False,
                "ocr": world.features["ocr"], "passwordLogin": True, "configFile": False, "email": False,
                "realtimeTranscoding": False}

    @staticmethod
    def ping(world: World, call: Call):
        return {"res": "pong"}

    @staticmethod
    def users_me(world: World, call: Call):
        return render.me(call.user)

    @staticmethod
    def system_config(world: World, call: Call):
        """Only the part the job and its tests touch; the real one holds every setting."""
        return {"trash": {"enabled": world.features["trash"], "days": world.trash_days}}

    @staticmethod
    def set_system_config(world: World, call: Call):
        trash = call.json().get("trash", {})
        world.features["trash"] = bool(trash.get("enabled", world.features["trash"]))
        world.trash_days = trash.get("days", world.trash_days)
        return Routes.system_config(world, call)

    @staticmethod
    def admin_users(world: World, call: Call):
        return [render.me(u) for u in world.users.values()]

    @staticmethod
    def api_key_me(world: World, call: Call):
        key = world.keys[call.handler.headers.get("x-api-key", "")]
        return {"id": key.id, "name": "test", "createdAt": "2026-11-25T00:00:00.000Z",
                "updatedAt": "2026-11-25T00:00:00.000Z", "permissions": key.permissions}

    # --- libraries -------------------------------------------------------------------------------

    @staticmethod
    def _library(world: World, library) -> dict[str, Any]:
        return {"id": library.id, "ownerId": library.owner_id, "name": library.name, "createdAt": render.iso(library.created_at),
                "updatedAt": render.iso(library.created_at), "refreshedAt": render.iso(library.created_at),
                "assetCount": 0, "importPaths": library.import_paths, "exclusionPatterns": library.exclusion_patterns}

    @staticmethod
    def libraries(world: World, call: Call):
        return [Routes._library(world, lib) for lib in world.libraries.values()]

    @staticmethod
    def library(world: World, call: Call):
        library = world.libraries.get(call.params["id"])
        if library is None:
            raise ApiError(400, "Library not found")
        return Routes._library(world, library)

    @staticmethod
    def library_statistics(world: World, call: Call):
        if call.params["id"] not in world.libraries:
            raise ApiError(400, "Library not found")
        assets = [a for a in world.assets.values() if a.library_id == call.params["id"] and a.deleted_at is None]
        photos = sum(1 for a in assets if a.type == "IMAGE")
        return {"photos": photos, "videos": len(assets) - photos, "usage": sum(a.blob.size for a in assets), "total": len(assets)}

    @staticmethod
    def create_library(world: World, call: Call):
        body = call.json()
        owner = world.users.get(body.get("ownerId", ""))
        if owner is None:
            raise ApiError(400, "User not found")
        library = world.add_library(owner, body.get("name", "Library"), body.get("importPaths", []),
                                    exclusion_patterns=body.get("exclusionPatterns"))
        return 201, Routes._library(world, library)

    @staticmethod
    def scan_library(world: World, call: Call):
        library = world.libraries.get(call.params["id"])
        if library is None:
            raise ApiError(400, "Library not found")
        world.scan(library)
        return 204, None

    @staticmethod
    def create_album(world: World, call: Call):
        body = call.json()
        album = Album(new_id(), call.user.id, body.get("albumName", ""), {call.user.id: "owner"},
                      list(dict.fromkeys(body.get("assetIds", []))))
        album.thumbnail_asset_id = album.asset_ids[0] if album.asset_ids else None  # album.service.ts create
        world.albums[album.id] = album
        return 201, render.album(world, album)

    @staticmethod
    def upsert_tags(world: World, call: Call):
        return [render.tag(world.upsert_tag(call.user.id, value)) for value in call.json().get("tags", [])]

    @staticmethod
    def create_person(world: World, call: Call):
        person = Person(new_id(), call.user.id, call.json().get("name", ""))
        world.people[person.id] = person
        return 201, render.person(person)

    @staticmethod
    def create_api_key(world: World, call: Call):
        body = call.json()
        secret = world.add_key(call.user, body.get("permissions") or ["all"])
        key = world.keys[secret]
        return 201, {"secret": secret, "apiKey": {"id": key.id, "name": body.get("name", ""), "permissions": key.permissions,
                                                  "createdAt": "2026-11-25T00:00:00.000Z", "updatedAt": "2026-11-25T00:00:00.000Z"}}

    @staticmethod
    def delete_api_key(world: World, call: Call):
        for secret, key in list(world.keys.items()):
            if key.id == call.params["id"] and key.user_id == call.user.id:
                del world.keys[secret]
                return 204, None
        raise ApiError(400, "API Key not found")

    # --- search ----------------------------------------------------------------------------------

    @staticmethod
    def _search(world: World, call: Call, body: dict[str, Any]):
        if body.get("visibility") == "locked":
            raise ApiError(401, "Elevated permission is required")
        if not world.cache_searches:
            return Routes._search_uncached(world, call, body)
        # Benchmarks only: Immich pages through an index; this fake would filter and sort the whole
        # library for every page, which made a 100k-asset plan measure the fake instead of the job.
        key = (call.user.id, json.dumps({k: v for k, v in body.items() if k not in ("page", "size", "withExif")}, sort_keys=True))
        if key not in world.search_cache:
            world.search_cache[key] = Routes._search_uncached(world, call, body)
        return world.search_cache[key]

    @staticmethod
    def _flat(world: World, body: dict[str, Any]) -> dict[str, Any]:
        """3.2's `filter` tree as the flat fields it stands for (the comparisons the job sends). Older
        servers do not know it: zod drops the key, and the search lists everything (3.1.0 source)."""
        tree = body.get("filter")
        if not tree or not world.has("filter_tree"):
            return body
        flat = {k: v for k, v in body.items() if k != "filter"}
        for name, comparison in tree.items():
            if name in ("trashedAt", "updatedAt", "takenAt"):  # a time window: DateFilter(Nullable) {gte, lte}
                prefix = name[:-2]
                flat.update({{"gte": f"{prefix}After", "lte": f"{prefix}Before"}[op]: v for op, v in comparison.items()})
                continue
            (op, value), = comparison.items()
            if (name, op, value) == ("hasAlbums", "eq", False):  # the same as 3.1's isNotInAlbum (SDK 3.2.2)
                flat["isNotInAlbum"] = True
                continue
            if (name, op, value) == ("hasTags", "eq", False):  # the same as 3.1's `tagIds: null` (SDK 3.2.2)
                flat["tagIds"] = None
                continue
            if (name, op) not in {("libraryId", "eq"), ("originalPath", "eq"), ("checksum", "eq"), ("id", "eq"),
                                  ("albumIds", "any"), ("isMotion", "eq"), ("originalPath", "startsWith"),
                                  ("originalFileName", "eq")}:
                raise ApiError(400, "Validation failed", [{"code": "unrecognized_keys", "path": ["filter", name],
                                                          "message": "not modelled by the fake"}])
            flat[{"eq": "exactPath", "startsWith": "pathStartsWith"}[op] if name == "originalPath" else
                 "exactFileName" if name == "originalFileName" else name] = value
        return flat

    @staticmethod
    def _search_uncached(world: World, call: Call, body: dict[str, Any]):
        body = Routes._flat(world, body)
        assets = [a for a in world.assets.values() if a.owner_id == call.user.id]
        if body.get("libraryId"):  # a null libraryId is no filter (3.1.0: `$if(!!options.libraryId)`)
            assets = [a for a in assets if a.library_id == body["libraryId"]]
        if body.get("originalPath"):  # f_unaccent(originalPath) ILIKE '%' || value || '%'
            assets = [a for a in assets if body["originalPath"].lower() in a.original_path.lower()]
        if body.get("originalFileName"):  # f_unaccent(originalFileName) ILIKE '%' || value || '%'
            assets = [a for a in assets if body["originalFileName"].lower() in a.original_file_name.lower()]
        if body.get("exactFileName"):
            assets = [a for a in assets if a.original_file_name == body["exactFileName"]]
        if body.get("pathStartsWith"):  # f_unaccent(originalPath) ILIKE value || '%'
            assets = [a for a in assets if a.original_path.lower().startswith(body["pathStartsWith"].lower())]
        if body.get("exactPath"):
            assets = [a for a in assets if a.original_path == body["exactPath"]]
        if body.get("id"):
            assets = [a for a in assets if a.id == body["id"]]
        if "isMotion" in body:  # livePhotoVideoId is (not) null
            assets = [a for a in assets if (a.live_photo_video_id is not None) == body["isMotion"]]
        # searchAssetBuilder: `withDeleted ||= !!(trashedAfter || trashedBefore || isOffline)`
        if not (body.get("withDeleted") or body.get("trashedAfter") or body.get("trashedBefore") or body.get("isOffline")):
            assets = [a for a in assets if a.deleted_at is None]
        for name, keep in (("trashedAfter", lambda at, bound: at >= bound), ("trashedBefore", lambda at, bound: at <= bound)):
            if body.get(name):  # asset.deletedAt >= / <= the bound: live assets (null) never match
                bound = _instant(body[name])
                assets = [a for a in assets if a.deleted_at is not None and keep(a.deleted_at, bound)]
        # searchAssetBuilder: asset.updatedAt, asset.fileCreatedAt >= / <= the bound
        for prefix, at in (("updated", lambda a: a.updated_at), ("taken", lambda a: _instant(a.file_created_at))):
            for name, keep in ((f"{prefix}After", lambda t, bound: t >= bound), (f"{prefix}Before", lambda t, bound: t <= bound)):
                if body.get(name):
                    bound = _instant(body[name])
                    assets = [a for a in assets if keep(at(a), bound)]
        visibility = body.get("visibility")
        assets = [a for a in assets if (a.visibility == visibility if visibility else a.visibility != "locked")]
        if body.get("checksum"):
            text = body["checksum"]
            wanted = __import__("base64").b64decode(text) if len(text) == 28 else bytes.fromhex(text)
            assets = [a for a in assets if a.checksum == wanted]
        if body.get("albumIds"):
            members = set()
            for album_id in body["albumIds"]:
                album = world.albums.get(album_id)
                if album is None or call.user.id not in album.users:
                    raise ApiError(400, "Not found or no album.read access")
                members |= set(album.asset_ids)
            assets = [a for a in assets if a.id in members]
        if body.get("isNotInAlbum") and not body.get("albumIds"):  # no album_asset row, whoever's album
            in_albums = {i for album in world.albums.values() for i in album.asset_ids}
            assets = [a for a in assets if a.id not in in_albums]
        if body.get("withStacked") is False:
            assets = [a for a in assets if not a.stack_id]
        if "tagIds" in body and body["tagIds"] is None:  # 3.1.0: `options.tagIds === null`: no tag_asset row
            assets = [a for a in assets if not any(t in world.tags for t in a.tag_ids)]
        if "isOffline" in body:
            assets = [a for a in assets if a.is_offline == body["isOffline"]]
        reverse = body.get("order", "desc") == "desc"
        assets.sort(key=lambda a: (a.file_created_at, a.id), reverse=reverse)
        return assets

    @staticmethod
    def search_metadata(world: World, call: Call):
        body = call.json()
        entry = call.handler.server_fake.current_request()
        if entry is not None:
            entry.body = body  # the log shows what each search asked (tests tell the gate's listing apart)
        size = body.get("size", 250)
        if not isinstance(size, int) or not 1 <= size <= 1000:
            raise ApiError(400, "Validation failed", [{"code": "too_big", "path": ["size"], "message": "Too big: expected number to be <=1000"}])
        page = body.get("page", 1)
        found = Routes._search(world, call, body)
        chunk = found[(page - 1) * size: page * size]
        with_exif = bool(body.get("withExif"))
        items = [render.asset(world, a, call.user, full=False, with_exif=with_exif, with_people=bool(body.get("withPeople")))
                 for a in chunk]
        next_page = str(page + 1) if len(found) > page * size else None
        return {"albums": {"total": 0, "count": 0, "items": [], "facets": []},
                "assets": {"total": len(chunk), "count": len(chunk), "items": items, "facets": [], "nextPage": next_page}}

    @staticmethod
    def search_statistics(world: World, call: Call):
        return {"total": len(Routes._search(world, call, call.json()))}

    # --- assets ----------------------------------------------------------------------------------

    @staticmethod
    def get_asset(world: World, call: Call):
        asset = _asset_of(world, call, call.params["id"])
        world.detect_faces(asset)
        return render.asset(world, asset, call.user)

    @staticmethod
    def original(world: World, call: Call):
        """The file as it is on disk NOW (for an external asset, whatever Immich recorded at its last scan),
        with Express's ETag of its size and modification time."""
        asset = _asset_of(world, call, call.params["id"], "asset.download")
        if asset.internal:
            return Stream(asset.blob, asset.mime, f'W/"{asset.blob.size:x}-{int(asset.created_at * 1000):x}"')
        if asset.is_offline or world.on_disk(asset.original_path) is None:
            raise ApiError(500, "Internal server error")  # sendFile on a missing file
        return Stream(world.on_disk(asset.original_path), asset.mime, world.etag(asset.original_path))

    @staticmethod
    def upload(world: World, call: Call):
        handler = call.handler
        content_type = handler.headers.get("content-type", "")
        match = re.search(r"boundary=([^;]+)", content_type)
        if not match:
            raise ApiError(400, "Multipart: Boundary not found")
        checksum = handler.headers.get("x-immich-checksum")
        if checksum:  # AssetUploadInterceptor: a known checksum answers before the body is read
            digest = __import__("base64").b64decode(checksum) if len(checksum) == 28 else bytes.fromhex(checksum)
            duplicate = world.find_upload_duplicate(call.user.id, digest)
            if duplicate is not None:
                handler.close_connection = True
                return 200, {"status": "duplicate", "id": duplicate.id}
        sha = hashlib.sha1()
        size = 0
        kept: list[bytes] | None = []

        def on_file(data: bytes) -> None:
            nonlocal size, kept
            sha.update(data)
            size += len(data)
            if kept is not None:
                kept.append(data)
                if size > world.keep_uploads_up_to:
                    kept = None

        kill = next((f for f in call.faults if f.action == "kill_mid_body"), None)
        world.lock.release()  # receiving a large body must not stop other requests
        try:
            fields, filename = parse_multipart(handler.body_stream(), match.group(1).strip().strip('"').encode(), on_file,
                                               kill.after_bytes if kill else None, call.handler.server_fake.on_kill)
        finally:
            world.lock.acquire()
        if filename is None or size == 0:
            raise ApiError(400, "File is empty or missing")
        missing = [f for f in ("fileCreatedAt", "fileModifiedAt") if not fields.get(f)]
        if world.version < (3, 0, 0):
            missing += [f for f in ("deviceAssetId", "deviceId") if not fields.get(f)]
        if missing:
            raise ApiError(400, "Validation failed", [{"code": "invalid_type", "path": [f], "message": "Required"} for f in missing])
        fields.setdefault("filename", filename)
        blob = Blob.received(sha.digest(), size, b"".join(kept) if kept is not None else None)
        duplicate = world.find_upload_duplicate(call.user.id, blob.sha1)
        if duplicate is not None:
            return 200, {"status": "duplicate", "id": duplicate.id}
        asset = world.create_upload(call.user, blob, fields)
        if world.restarts_in_upload > 0:
            world.restarts_in_upload -= 1
            asset.extracted_at = float("inf")  # the extraction job was lost: only a refresh reads it
            raise Dropped()
        if fields.get("metadata"):
            for item in json.loads(fields["metadata"]):
                asset.metadata[item["key"]] = (item["value"], time.time())
        if world.costs is not None:  # benchmarks: read only once its queued jobs have run
            world.costs.digest(world, asset.id)
        return 201, {"id": asset.id, "status": "created"}

    @staticmethod
    def _validate_update(body: dict[str, Any]) -> None:
        if "rating" in body and body["rating"] is not None and (body["rating"] == 0 or not -1 <= body["rating"] <= 5):
            raise ApiError(400, "Validation failed", [{"code": "custom", "path": ["rating"], "message":
                           "Rating must be -1 (rejected), 1–5 (starred), or null (unrated); 0 is not valid"}])
        if ("latitude" in body) != ("longitude" in body):
            raise ApiError(400, "Validation failed", [{"code": "custom", "path": [], "message":
                           "Latitude and longitude must be provided together"}])
        if body.get("visibility") not in (None, "timeline", "archive", "hidden", "locked"):
            raise ApiError(400, "Validation failed", [{"code": "invalid_value", "path": ["visibility"], "message": "Invalid option"}])

    @staticmethod
    def update_assets(world: World, call: Call):
        body = call.json()
        Routes._validate_update(body)
        for asset in _ids_of(world, call, body.get("ids", []), "asset.update"):
            world.write_fields(asset, {k: v for k, v in body.items() if k != "ids"})
        return 204, None

    @staticmethod
    def update_asset(world: World, call: Call):
        asset = _asset_of(world, call, call.params["id"], "asset.update")
        body = call.json()
        Routes._validate_update(body)
        if "livePhotoVideoId" in body:
            if body["livePhotoVideoId"]:
                world.before_link(call.user.id, body["livePhotoVideoId"])
            asset.live_photo_video_id = body["livePhotoVideoId"]
        world.write_fields(asset, body)
        return render.asset(world, asset, call.user)

    @staticmethod
    def copy(world: World, call: Call):
        body = call.json()
        source = world.assets.get(body.get("sourceId", ""))
        target = world.assets.get(body.get("targetId", ""))
        if source is None or target is None or call.user.id not in (source.owner_id,) or target.owner_id != call.user.id:
            raise ApiError(400, "Not found or no asset.copy access")
        if source.id == target.id:
            raise ApiError(400, "Source and target id must be distinct")
        world.copy_asset(source, target, albums=body.get("albums", True), shared_links=body.get("sharedLinks", True),
                         stack=body.get("stack", True), favorite=body.get("favorite", True), sidecar=body.get("sidecar", True))
        return 204, None

    @staticmethod
    def delete_assets(world: World, call: Call):
        body = call.json()
        assets = _ids_of(world, call, body.get("ids", []), "asset.delete")
        if world.at_delete is not None:  # a test's seam: what a user or a sync tool does at this very moment
            world.at_delete(assets)
        world.trash(assets, force=bool(body.get("force")))
        return 204, None

    @staticmethod
    def asset_jobs(world: World, call: Call):
        """asset.service run(): each id needs asset.update access; refresh-metadata queues an extraction
        (here it lands at once)."""
        body = call.json()
        if body.get("name") not in ("refresh-faces", "refresh-metadata", "regenerate-thumbnail", "transcode-video"):
            raise ApiError(400, "Validation failed", [{"code": "invalid_value", "path": ["name"], "message": "Invalid option"}])
        for asset in _ids_of(world, call, body.get("assetIds", []), "asset.update"):
            if body["name"] == "refresh-metadata":
                world.extract(asset)
        return 204, None

    @staticmethod
    def restore(world: World, call: Call):
        body = call.json()
        assets = _ids_of(world, call, body.get("ids", []), "asset.delete")
        for asset in assets:
            asset.deleted_at = None
        return {"count": len(assets)}

    # --- key/values and edits --------------------------------------------------------------------

    @staticmethod
    def _items(asset) -> list[dict[str, Any]]:
        return [{"key": k, "value": v, "updatedAt": render.iso(t)} for k, (v, t) in asset.metadata.items()]

    @staticmethod
    def delete_metadata_key(world: World, call: Call):
        asset = _asset_of(world, call, call.params["id"], "asset.update")
        asset.metadata.pop(unquote(call.params["key"]), None)
        return 204, None

    @staticmethod
    def get_metadata(world: World, call: Call):
        return Routes._items(_asset_of(world, call, call.params["id"]))

    @staticmethod
    def put_metadata(world: World, call: Call):
        asset = _asset_of(world, call, call.params["id"], "asset.update")
        for item in call.json().get("items", []):
            if not isinstance(item.get("value"), dict):
                raise ApiError(400, "Validation failed", [{"code": "invalid_type", "path": ["items", "value"], "message": "expected record"}])
            asset.metadata[item["key"]] = (item["value"], time.time())
        return Routes._items(asset)

    @staticmethod
    def bulk_metadata(world: World, call: Call):
        items = call.json().get("items", [])
        assets = {a.id: a for a in _ids_of(world, call, [i.get("assetId", "") for i in items], "asset.update")}
        out = []
        for item in items:
            if not isinstance(item.get("value"), dict):
                raise ApiError(400, "Validation failed", [{"code": "invalid_type", "path": ["items", "value"], "message": "expected record"}])
            now = time.time()
            assets[item["assetId"]].metadata[item["key"]] = (item["value"], now)
            out.append({"assetId": item["assetId"], "key": item["key"], "value": item["value"], "updatedAt": render.iso(now)})
        return out

    @staticmethod
    def get_edits(world: World, call: Call):
        asset = _asset_of(world, call, call.params["id"])
        return {"assetId": asset.id, "edits": asset.edits}

    @staticmethod
    def put_edits(world: World, call: Call):
        asset = _asset_of(world, call, call.params["id"], "asset.update")
        edits = call.json().get("edits", [])
        if not edits:  # editing.dto.ts: min(1); DELETE /assets/{id}/edits removes them
            raise ApiError(400, "Validation failed", [{"code": "too_small", "path": ["edits"], "message": "Too small"}])
        for edit in edits:
            if edit.get("action") not in ("crop", "rotate", "mirror"):
                raise ApiError(400, "Validation failed", [{"code": "invalid_value", "path": ["edits", "action"], "message": "Invalid option"}])
        asset.edits = [{"id": new_id(), "action": e["action"], "parameters": e["parameters"]} for e in edits]
        return {"assetId": asset.id, "edits": asset.edits}

    @staticmethod
    def delete_edits(world: World, call: Call):
        asset = _asset_of(world, call, call.params["id"], "asset.update")
        asset.edits = []
        return 204, None

    # --- albums, tags, stacks --------------------------------------------------------------------

    @staticmethod
    def albums(world: World, call: Call):
        world.update_thumbnails()
        asset_id = call.query.get("assetId", [None])[0]
        found = [a for a in world.albums.values() if call.user.id in a.users]
        if asset_id:
            found = [a for a in found if asset_id in a.asset_ids]
        return [render.album(world, a) for a in sorted(found, key=lambda a: a.created_at, reverse=True)]

    @staticmethod
    def album(world: World, call: Call):
        world.update_thumbnails()
        album = world.albums.get(call.params["id"])
        if album is None or call.user.id not in album.users:
            raise ApiError(400, "Not found or no album.read access")
        return render.album(world, album)

    @staticmethod
    def update_album(world: World, call: Call):
        album = world.albums.get(call.params["id"])
        if album is None or album.users.get(call.user.id) != "owner":
            raise ApiError(400, "Not found or no album.update access")
        body = call.json()
        if "albumThumbnailAssetId" in body:
            if body["albumThumbnailAssetId"] not in album.asset_ids:
                raise ApiError(400, "Invalid album thumbnail")
            album.thumbnail_asset_id = body["albumThumbnailAssetId"]
        album.updated_at = time.time()  # the album_updatedAt trigger
        return render.album(world, album)

    @staticmethod
    def album_add(world: World, call: Call):
        album = world.albums.get(call.params["id"])
        if album is None or album.users.get(call.user.id) not in ("owner", "editor"):
            raise ApiError(400, "Not found or no albumAsset.create access")
        results = []
        for asset_id in call.json().get("ids", []):
            if asset_id in album.asset_ids:
                results.append({"id": asset_id, "success": False, "error": "duplicate"})
            else:
                album.asset_ids.append(asset_id)
                results.append({"id": asset_id, "success": True})
        added = [r["id"] for r in results if r["success"]]
        if added:  # album.service.ts addAssets: one UPDATE of the album, and its first new asset as the cover if none
            album.updated_at = time.time()
            album.thumbnail_asset_id = album.thumbnail_asset_id or added[0]
        return results

    @staticmethod
    def album_remove(world: World, call: Call):
        """album.service.ts removeAssets: per id, removed or "not_found"; a removed cover is re-picked
        (updateThumbnails)."""
        album = world.albums.get(call.params["id"])
        if album is None or album.users.get(call.user.id) not in ("owner", "editor"):
            raise ApiError(400, "Not found or no albumAsset.delete access")
        results = []
        for asset_id in call.json().get("ids", []):
            if asset_id in album.asset_ids:
                album.asset_ids.remove(asset_id)
                results.append({"id": asset_id, "success": True})
            else:
                results.append({"id": asset_id, "success": False, "error": "not_found"})
        world.update_thumbnails()
        return results

    @staticmethod
    def tag_remove(world: World, call: Call):
        """tag.service.ts removeAssets: per id, removed or "not_found"; the sidecar is written again."""
        tag = world.tags.get(call.params["id"])
        if tag is None or tag.owner_id != call.user.id:
            raise ApiError(400, "Not found or no tag.asset access")
        results = []
        for asset_id in call.json().get("ids", []):
            asset = world.assets.get(asset_id)
            if asset is not None and asset.owner_id == call.user.id and tag.id in asset.tag_ids:
                asset.tag_ids.remove(tag.id)
                world.tags_changed(asset)
                results.append({"id": asset_id, "success": True})
            else:
                results.append({"id": asset_id, "success": False, "error": "not_found"})
        return results

    @staticmethod
    def tags(world: World, call: Call):
        return [render.tag(t) for t in world.tags.values() if t.owner_id == call.user.id]

    @staticmethod
    def tag_assets(world: World, call: Call):
        body = call.json()
        count = 0
        for asset in _ids_of(world, call, body.get("assetIds", []), "asset.update"):
            for tag_id in body.get("tagIds", []):
                if tag_id in world.tags and world.tags[tag_id].owner_id == call.user.id and tag_id not in asset.tag_ids:
                    asset.tag_ids.append(tag_id)
                    count += 1
            world.tags_changed(asset)
        return {"count": count}

    @staticmethod
    def _stack(world: World, stack) -> dict[str, Any]:
        members = world.stack_members(stack.id)
        return {"id": stack.id, "primaryAssetId": stack.primary_asset_id,
                "assets": [render.asset(world, a, world.users[stack.owner_id]) for a in members]}

    @staticmethod
    def stack(world: World, call: Call):
        stack = world.stacks.get(call.params["id"])
        if stack is None or stack.owner_id != call.user.id:
            raise ApiError(400, "Not found or no stack.read access")
        return Routes._stack(world, stack)

    @staticmethod
    def create_stack(world: World, call: Call):
        ids = call.json().get("assetIds", [])
        _ids_of(world, call, ids, "asset.update")
        if len(ids) < 2:
            raise ApiError(400, "Validation failed", [{"code": "too_small", "path": ["assetIds"], "message": "Too small"}])
        return 201, Routes._stack(world, world.create_stack(call.user.id, ids))

    @staticmethod
    def update_stack(world: World, call: Call):
        stack = world.stacks.get(call.params["id"])
        if stack is None or stack.owner_id != call.user.id:
            raise ApiError(400, "Not found or no stack.update access")
        primary = call.json().get("primaryAssetId")
        if primary and primary not in [a.id for a in world.stack_members(stack.id)]:
            raise ApiError(400, "Primary asset must be in the stack")
        if primary:
            stack.primary_asset_id = primary
        return Routes._stack(world, stack)

    @staticmethod
    def stack_remove_asset(world: World, call: Call):
        """stack.service.ts removeAsset: 400 when the asset is not in the stack, or is its primary."""
        stack = world.stacks.get(call.params["id"])
        if stack is None or stack.owner_id != call.user.id:
            raise ApiError(400, "Not found or no stack.update access")
        asset = world.assets.get(call.params["assetId"])
        if asset is None or asset.stack_id != stack.id:
            raise ApiError(400, "Asset not in stack")
        if stack.primary_asset_id == asset.id:
            raise ApiError(400, "Cannot remove stack's primary asset")
        asset.stack_id = None
        return 204, None

    # --- faces and people --------------------------------------------------------------------------

    @staticmethod
    def faces(world: World, call: Call):
        asset = _asset_of(world, call, call.query.get("id", [""])[0])
        world.detect_faces(asset)
        return [render.face(world, f, call.user) for f in world.faces.values() if f.asset_id == asset.id]

    @staticmethod
    def create_face(world: World, call: Call):
        body = call.json()
        asset = _asset_of(world, call, body.get("assetId", ""), "asset.update")
        person = world.people.get(body.get("personId", ""))
        if person is None or person.owner_id != call.user.id:
            raise ApiError(400, "Not found or no person.read access")
        if asset.edits and (not asset.width or not world.is_extracted(asset)):
            raise ApiError(400, "Asset does not have valid dimensions")
        x, y, w, h = body["x"], body["y"], body["width"], body["height"]
        face = Face(new_id(), asset.id, person.id, (round(x), round(y), round(x + w), round(y + h)),
                    body["imageWidth"], body["imageHeight"], "manual")
        world.faces[face.id] = face
        if person.feature_face_id is None:
            person.feature_face_id = face.id
        return 201, None

    @staticmethod
    def delete_face(world: World, call: Call):
        """person.service.ts deleteFace: for good with force, else soft-deleted (gone from listings alike)."""
        face = world.faces.get(call.params["id"])
        if face is None or face.asset_id not in world.assets or world.assets[face.asset_id].owner_id != call.user.id:
            raise ApiError(400, "Not found or no face.delete access")
        del world.faces[face.id]
        for person in world.people.values():
            if person.feature_face_id == face.id:
                person.feature_face_id = None
        return 204, None

    @staticmethod
    def reassign_face(world: World, call: Call):
        person = world.people.get(call.params["id"])
        face = world.faces.get(call.json().get("id", ""))
        if person is None or person.owner_id != call.user.id or face is None:
            raise ApiError(400, "Not found or no person.update access")
        face.person_id = person.id
        if person.feature_face_id is None:
            person.feature_face_id = face.id
        return render.person(person)

    @staticmethod
    def person_statistics(world: World, call: Call):
        person = world.people.get(call.params["id"])
        if person is None or person.owner_id != call.user.id:
            raise ApiError(400, "Not found or no person.read access")
        assets = {f.asset_id for f in world.faces.values() if f.person_id == person.id
                  and f.asset_id in world.assets and world.assets[f.asset_id].deleted_at is None}
        return {"assets": len(assets)}

    @staticmethod
    def update_person(world: World, call: Call):
        person = world.people.get(call.params["id"])
        if person is None or person.owner_id != call.user.id:
            raise ApiError(400, "Not found or no person.update access")
        body = call.json()
        if body.get("featureFaceAssetId"):
            face = next((f for f in world.faces.values() if f.person_id == person.id and f.asset_id == body["featureFaceAssetId"]), None)
            if face is None:
                raise ApiError(400, "Invalid assetId for feature face or asset is offline")
            person.feature_face_id = face.id
        if "name" in body:
            person.name = body["name"]
        return render.person(person)

    # --- shared links, memories, activity, queues --------------------------------------------------

    @staticmethod
    def shared_links(world: World, call: Call):
        return [render.shared_link(world, link, call.user) for link in world.links.values() if link.owner_id == call.user.id]

    @staticmethod
    def shared_link(world: World, call: Call):
        link = world.links.get(call.params["id"])
        if link is None or link.owner_id != call.user.id:
            raise ApiError(400, "Not found or no sharedLink.read access")
        return render.shared_link(world, link, call.user)

    @staticmethod
    def shared_link_add(world: World, call: Call):
        link = world.links.get(call.params["id"])
        if link is None or link.owner_id != call.user.id:
            raise ApiError(400, "Not found or no sharedLink.update access")
        out = []
        for asset_id in call.json().get("assetIds", []):
            added = asset_id not in link.asset_ids
            if added:
                link.asset_ids.append(asset_id)
            out.append({"assetId": asset_id, "success": added})
        return out

    @staticmethod
    def memories(world: World, call: Call):
        return [{"id": m.id, "type": "on_this_day", "data": {"year": 2019}, "isSaved": False, "ownerId": m.owner_id,
                 "assets": [render.asset(world, world.assets[i], call.user, full=False) for i in m.asset_ids if i in world.assets]}
                for m in world.memories.values() if m.owner_id == call.user.id]

    @staticmethod
    def activity_statistics(world: World, call: Call):
        album_id = call.query.get("albumId", [""])[0]
        asset_id = call.query.get("assetId", [None])[0]
        found = [a for a in world.activities.values() if a.album_id == album_id and (asset_id is None or a.asset_id == asset_id)]
        return {"comments": sum(1 for a in found if a.kind == "comment"), "likes": sum(1 for a in found if a.kind == "like")}

    @staticmethod
    def _backlog(world: World) -> dict[str, int]:
        value = world.queue_backlog
        if callable(value):
            value = value()
        if isinstance(value, int):
            return {"thumbnailGeneration": value}
        return dict(value or {})

    @staticmethod
    def queues(world: World, call: Call):
        backlog = Routes._backlog(world)
        names = ["thumbnailGeneration", "metadataExtraction", "videoConversion", "faceDetection", "facialRecognition",
                 "smartSearch", "duplicateDetection", "backgroundTask", "storageTemplateMigration", "migration",
                 "search", "sidecar", "library", "notifications", "backupDatabase", "ocr"]
        return [{"name": n, "isPaused": False, "statistics": {"active": 0, "completed": 0, "failed": 0, "delayed": 0,
                                                               "waiting": backlog.get(n, 0), "paused": 0}} for n in names]

    @staticmethod
    def jobs(world: World, call: Call):
        backlog = Routes._backlog(world)
        return {n: {"queueStatus": {"isPaused": False, "isActive": False},
                    "jobCounts": {"active": 0, "completed": 0, "failed": 0, "delayed": 0, "waiting": backlog.get(n, 0), "paused": 0}}
                for n in ["thumbnailGeneration", "metadataExtraction", "faceDetection", "sidecar"]}
