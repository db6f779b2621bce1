"""A small helper for building worlds on a real Immich through its public API, as a user would."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

HEAVY = ("thumbnailGeneration", "metadataExtraction", "videoConversion", "faceDetection", "facialRecognition",
         "smartSearch", "duplicateDetection", "sidecar", "library", "backgroundTask", "search", "ocr")


class Api:
    def __init__(self, url: str, key: str):
        self.url = url.rstrip("/") + "/api"
        self.key = key
        self.session = requests.Session()
        self.session.headers["x-api-key"] = key

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201, 204), **kwargs) -> Any:
        response = self.session.request(method, self.url + path, timeout=60, **kwargs)
        if response.status_code not in expect:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.content

    def get(self, path: str, **kwargs) -> Any:
        return self.call("GET", path, **kwargs)

    def me(self) -> dict:
        return self.get("/users/me")

    def asset(self, asset_id: str) -> dict:
        return self.get(f"/assets/{asset_id}")

    def search(self, **body) -> list[dict]:
        items, page = [], 1
        while page:
            result = self.call("POST", "/search/metadata", json={"size": 1000, "page": page, **body})["assets"]
            items += result["items"]
            page = int(result["nextPage"]) if result["nextPage"] else None
        return items

    def by_checksum(self, sha1_b64: str) -> list[dict]:
        return self.search(checksum=sha1_b64, withDeleted=True, withExif=True)

    def wait_idle(self, timeout: float = 180) -> None:
        """Until Immich's queues have nothing waiting or running (twice in a row, a moment apart)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            queues = self.get("/queues")
            busy = sum(q["statistics"]["active"] + q["statistics"]["waiting"] + q["statistics"]["delayed"]
                       for q in queues if q["name"] in HEAVY)
            quiet = quiet + 1 if busy == 0 else 0
            if quiet >= 2:
                return
            time.sleep(0.3)
        raise AssertionError("Immich's queues did not become idle")


@dataclass
class E2E:
    url: str
    admin: Api
    other: Api
    import_root: Path


def sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


@dataclass
class World:
    """An external library on disk and in Immich, with helpers to curate its assets."""

    api: Api
    folder: Path
    library: dict = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    assets: dict[str, dict] = field(default_factory=dict)  # file name -> asset as last listed

    @classmethod
    def create(cls, admin: Api, owner: Api, root: Path, tag: str = "e2e") -> World:
        """A fresh folder under the import root and an external library of `owner` on it (libraries
        are admin endpoints: the admin creates it for the owner)."""
        folder = root / f"{tag}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        world = cls(owner, folder)
        body = {"ownerId": owner.me()["id"], "name": folder.name, "importPaths": [str(folder)]}
        world.library = admin.call("POST", "/libraries", json=body)
        return world

    def write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files[name] = data

    def scan(self, admin: Api) -> None:
        admin.call("POST", f"/libraries/{self.library['id']}/scan")
        time.sleep(1)
        admin.wait_idle()
        self.refresh()

    def refresh(self) -> None:
        listed = self.api.search(libraryId=self.library["id"], withExif=True)
        self.assets = {Path(a["originalPath"]).relative_to(self.folder).as_posix(): a for a in listed}

    def id(self, name: str) -> str:
        return self.assets[name]["id"]


ROOT = Path(__file__).resolve().parents[2]


def job(url: str, key: str, library_ids: list[str], command: str = "run", report: Path | None = None,
        wrap: tuple[str, ...] = (), **env: str) -> subprocess.Popen:
    """The real job in a subprocess, as a user runs it (`wrap`: a command line it runs inside, which ends
    with `exec "$@"`-style arguments: the job's own command line follows it)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("IMMICH_", "EXT2INT_"))}
    full.update({"IMMICH_URL": url, "IMMICH_API_KEY": key, "EXT2INT_LIBRARY_IDS": ",".join(library_ids),
                 "EXT2INT_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT), **env})
    if report:
        full["EXT2INT_REPORT"] = str(report)
    return subprocess.Popen([*wrap, sys.executable, "-m", "job", command], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def run(url: str, key: str, library_ids: list[str], report: Path, wrap: tuple[str, ...] = (), **env: str) -> dict:
    """One run to its end; its JSON report."""
    code, _, err = finish(job(url, key, library_ids, report=report, wrap=wrap, **env))
    assert code in (0, 1), err
    return json.loads(report.read_text())


def upload(api: Api, data: bytes, name: str, content_type: str = "image/jpeg") -> str:
    """An asset uploaded as a phone backs it up; its id."""
    response = api.session.post(api.url + "/assets", files={"assetData": (name, data, content_type)},
                                data={"fileCreatedAt": "2021-06-01T10:00:00.000Z",
                                      "fileModifiedAt": "2021-06-01T10:00:00.000Z",
                                      "deviceAssetId": f"{name}-{uuid.uuid4().hex[:6]}", "deviceId": "phone"})
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]
