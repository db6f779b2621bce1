"""Baselines the benchmarks compare the job with, run as separate processes like the job itself.

  raw    download each original and upload the same bytes, streamed, nothing else (the floor)
  naive  what a first script would do: sequentially, read each original whole into memory, upload it,
         copy albums/favourite with PUT /assets/copy, then delete the external asset (no proof, no
         journal, no verification, no other metadata)

    python bench/baselines.py raw|naive URL KEY LIBRARY_ID [CONCURRENCY]
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def assets(session: requests.Session, url: str, library: str) -> list[dict]:
    items, page = [], 1
    while page:
        data = session.post(f"{url}/api/search/metadata", json={"libraryId": library, "page": page, "size": 1000}).json()["assets"]
        items += data["items"]
        page = int(data["nextPage"]) if data["nextPage"] else None
    return items


def form(asset: dict) -> dict:
    return {"fileCreatedAt": asset["fileCreatedAt"], "fileModifiedAt": asset["fileModifiedAt"],
            "deviceAssetId": asset["id"], "deviceId": "baseline"}


def raw(session: requests.Session, url: str, asset: dict) -> int:
    with session.get(f"{url}/api/assets/{asset['id']}/original", stream=True) as response:
        response.raise_for_status()
        upload = session.post(f"{url}/api/assets", data=form(asset),
                              files={"assetData": (asset["originalFileName"], response.raw, asset["originalMimeType"])})
        upload.raise_for_status()
    return int(response.headers["content-length"])


def naive(session: requests.Session, url: str, asset: dict) -> int:
    data = session.get(f"{url}/api/assets/{asset['id']}/original").content
    created = session.post(f"{url}/api/assets", data=form(asset),
                           files={"assetData": (asset["originalFileName"], data, asset["originalMimeType"])}).json()
    session.put(f"{url}/api/assets/copy", json={"sourceId": asset["id"], "targetId": created["id"]})
    session.delete(f"{url}/api/assets", json={"ids": [asset["id"]], "force": False})
    return len(data)


def main() -> None:
    mode, url, key, library = sys.argv[1:5]
    concurrency = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    session = requests.Session()
    session.headers["x-api-key"] = key
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=concurrency + 2)
    session.mount("http://", adapter)
    started = time.perf_counter()
    todo = assets(session, url, library)
    work = {"raw": raw, "naive": naive}[mode]
    with ThreadPoolExecutor(concurrency) as pool:
        moved = sum(pool.map(lambda a: work(session, url, a), todo))
    print(f"{len(todo)} {moved} {time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
