"""Immich's own work, for benchmarks against the fake: what each call costs the server, and the work an
upload leaves in its queues, spent on a few cores as on the machine that runs Immich.

A call waits for a free core and holds it for its cost (the fake sleeps meanwhile: the time is the
server's, not the job's); a new upload then leaves its digestion (metadata, thumbnails) to a background
worker, which holds a core for that long too (a copy's sidecar job is counted in the copy's own cost).
So the job's reads compete with Immich's digestion of earlier uploads, and a benchmark's time until the
fake is idle again (`Costs.idle`) is what a user waits for, as in `bench/real_bench.py`.

The figures are Immich 3.1.0's on the 2-core test machine (README, "On a real Immich"): each read
replayed alone on an idle server, and the floor's phases (an upload with the jobs it queues; a copy).
Calls not listed cost nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

# Seconds of server CPU per call: bench/real_bench.py on 2026-12-03 (3 rounds of 200 photos of ~0.3 MB;
# reads and the key/value write replayed alone, the floor's upload, copy and delete with the jobs they queue)
IMMICH_3_1 = {
    "GET /assets/{id}": 0.0059,
    "GET /assets/{id}/metadata": 0.0030,
    "GET /albums": 0.0134,
    "HEAD /assets/{id}/original": 0.0025,
    "GET /users/me": 0.0026,
    "GET /assets/{id}/original": 0.0069,
    "PUT /assets/metadata": 0.0028,
    "POST /search/metadata": 0.0174,  # a page of 50 with EXIF
    "POST /assets": 0.0200,  # the request itself: hashing, the row, the file written
    "PUT /assets/copy": 0.0072,
    "DELETE /assets": 0.0030,  # a request's own cost, like the smallest calls (0.2 ms per asset in requests of 100)
}
# ... and what a new upload leaves in Immich's queues: its whole cost (144 ms, the floor's upload phase)
# split so that the CLI's shape is kept: its command ends well before Immich is idle (6 s, then 8 to 10 s).
IMMICH_3_1_DIGESTION = 0.1240


class Costs:
    def __init__(self, per_call: Mapping[str, float] = IMMICH_3_1, digestion: float = IMMICH_3_1_DIGESTION,
                 cores: int = 2):
        self.per_call, self.digestion = dict(per_call), digestion
        self._cores = threading.BoundedSemaphore(cores)
        self._background = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="immich-jobs")
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self.spent = 0.0  # server seconds spent, calls and queued work

    def call(self, method: str, route: str) -> None:
        """In the request's thread, before it is answered: the call's own cost."""
        self._spend(self.per_call.get(f"{method} {route}", 0.0))

    def digest(self, world, asset_id: str) -> None:
        """A new upload (the upload route calls this, holding the world's lock): Immich reads it (metadata,
        thumbnails) in the background; until then it shows no EXIF and no size, as the real server
        (`World.is_extracted`)."""
        with world.lock:
            world.assets[asset_id].extracted_at = float("inf")
        with self._lock:
            self._pending += 1
        self._background.submit(self._job, self.digestion, world, asset_id)

    def backlog(self) -> int:
        with self._lock:
            return self._pending

    def idle(self, timeout: float = 600.0) -> None:
        """Until every queued job is done."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self) -> None:
        self._background.shutdown(wait=False, cancel_futures=True)

    def _job(self, seconds: float, world, asset_id: str) -> None:
        try:
            self._spend(seconds)
            with world.lock:
                asset = world.assets.get(asset_id)
                if asset is not None and asset.extracted_at == float("inf"):
                    asset.extracted_at = time.time()
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _spend(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cores:
            time.sleep(seconds)
        with self._lock:
            self.spent += seconds
