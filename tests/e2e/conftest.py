"""End-to-end tests against a real Immich. They run when IMMICH_E2E_URL is set (with IMMICH_E2E_API_KEY,
IMMICH_E2E_OTHER_API_KEY, IMMICH_E2E_OTHER_USER_ID, IMMICH_E2E_IMPORT_ROOT, as the test server's env file
sets them), or when IMMICH_E2E_WAIT_FOR names the folder where .ci/run is starting one. Configured but
unreachable is a failure, never a skip. NEVER point them at an Immich whose photos you care about."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.immich import Api, E2E

WAIT_SECONDS = float(os.environ.get("IMMICH_E2E_WAIT_SECONDS", "1500"))


def _from_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            values[name] = shlex.split(value)[0] if value else ""
    return values


def _locate() -> dict[str, str] | None:
    if os.environ.get("IMMICH_E2E_URL"):
        return {k: v for k, v in os.environ.items() if k.startswith("IMMICH_E2E_")}
    folder = os.environ.get("IMMICH_E2E_WAIT_FOR")
    if not folder:
        return None
    home = Path(folder)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if (home / "e2e.env.failed").exists():
            pytest.fail("the real Immich did not start:\n" + (home / "e2e.env.failed").read_text(), pytrace=False)
        if (home / "e2e.env.ready").exists():
            return _from_env_file(home / "e2e.env")
        time.sleep(2)
    pytest.fail(f"the real Immich did not start within {WAIT_SECONDS:.0f}s (see {home}.start.log)", pytrace=False)


@pytest.fixture(scope="session")
def e2e() -> E2E:
    env = _locate()
    if env is None:
        pytest.skip("set IMMICH_E2E_URL (and the other IMMICH_E2E_* variables) to run the end-to-end tests")
    for name in ("IMMICH_E2E_URL", "IMMICH_E2E_API_KEY", "IMMICH_E2E_OTHER_API_KEY", "IMMICH_E2E_IMPORT_ROOT"):
        if not env.get(name):
            pytest.fail(f"{name} is not set: the end-to-end tests need all IMMICH_E2E_* variables", pytrace=False)
    try:
        requests.get(env["IMMICH_E2E_URL"] + "/api/server/ping", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        pytest.fail(f"IMMICH_E2E_URL={env['IMMICH_E2E_URL']} is set but unreachable: {exc}", pytrace=False)
    return E2E(
        url=env["IMMICH_E2E_URL"],
        admin=Api(env["IMMICH_E2E_URL"], env["IMMICH_E2E_API_KEY"]),
        other=Api(env["IMMICH_E2E_URL"], env["IMMICH_E2E_OTHER_API_KEY"]),
        import_root=Path(env["IMMICH_E2E_IMPORT_ROOT"]),
    )
