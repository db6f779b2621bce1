"""The values a setting can take: the enums, durations, and the threads and connections a
concurrency makes. Pure; `settings.py` reads the environment into them."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import zoneinfo
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID


class Worded(str, Enum):
    """An enum whose members are written once with their words: `Member = "value", "text"`."""

    def __new__(cls, value: str, text: str) -> Worded:
        member = str.__new__(cls, value)
        member._value_ = value
        member.text = text
        return member


class DeleteMode(str, Enum):
    TRASH = "trash"  # to Immich's trash: restorable until the trash is emptied
    FORCE = "force"  # for good, now
    KEEP = "keep"  # not at all: copy only


class QueueAction(str, Enum):
    PAUSE = "pause"
    STOP = "stop"


class LogFormat(str, Enum):
    AUTO = "auto"
    TEXT = "text"
    JSON = "json"


class Switch(str, Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float | None:
    """'90', '90s', '30m', '2h', '1d' -> seconds. Empty -> None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("must be a duration such as 90, 90s, 30m, 2h or 1d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


class Pools:
    """How many threads and connections a run uses, from EXT2INT_CONCURRENCY (n), in one place:
    - n movers: each reads, claims and transfers one unit; the only threads that hold bytes in flight;
    - 32 + 16n finishers: each waits for its claim to settle and for Immich, carries and verifies; they
      mostly wait (a few seconds each), so there are many: transfers rarely wait for a free one;
    - 3n helpers: independent requests of one move sent side by side (reads of a source and its target);
    - 4n + 4 HTTP connections, so that movers, finishers and helpers rarely wait for a free one."""

    def __init__(self, movers: int, finishers: int, helpers: int, connections: int):
        self.movers, self.finishers, self.helpers, self.connections = movers, finishers, helpers, connections

    @classmethod
    def of(cls, concurrency: int) -> Pools:
        return cls(concurrency, 32 + 16 * concurrency, 3 * concurrency, 4 * concurrency + 4)


# --- checks of a value, offline: each ValueError names the fix, and never echoes a secret ------------

def base_url(value: str, example: str) -> str:
    """An http(s) address with a host and a valid port (a password in it is fine, and never shown)."""
    text = value.strip()
    if re.search(r"\s", text):
        raise ValueError(f"holds a space or a line break; for example {example}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        reason = "the port must be a number from 1 to 65535" if "ort" in str(exc) else str(exc)
        raise ValueError(f"is not a valid address ({reason}); for example {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must start with http:// or https:// and name a host, for example {example}")
    if parts.port == 0:
        raise ValueError(f"is not a valid address (the port must be a number from 1 to 65535); for example {example}")
    if parts.query or parts.fragment:
        raise ValueError(f"must not hold a query (?...) or a fragment (#...); for example {example}")
    return text.rstrip("/")


def api_key(text: str, variable: str) -> str:
    """The key as an HTTP header can carry it: one line, no spaces, printable ASCII (a byte-order mark and
    the surrounding whitespace of a file are dropped). The key itself is never part of a message."""
    key = text.strip().lstrip("\ufeff").strip()
    lines = [line for line in key.splitlines() if line.strip()]
    if len(lines) > 1:
        raise ValueError(f"{variable} holds {len(lines)} lines: put only the API key in it, on one line "
                         "(the key is not shown here)")
    if any(c.isspace() for c in key):
        raise ValueError(f"{variable} holds a space inside the key: paste only the key (it is not shown here)")
    if not key.isascii() or not key.isprintable():
        raise ValueError(f"{variable} holds characters an Immich API key never has: copy the key again from Immich "
                         "(Account Settings > API Keys); it is not shown here")
    return key


def key_from_file(path: Path, variable: str) -> str:
    """The API key in a file (a mounted secret), with a line that names the fix when it cannot be read."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise ValueError(f"{variable}: {path} does not exist; mount the secret there or fix the path") from None
    except PermissionError:
        raise ValueError(f"{variable}: cannot read {path} (permission denied): {_who_may_read(path)}") from None
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {path} ({exc.strerror or exc})") from None
    if not text.strip("\ufeff \t\r\n"):
        raise ValueError(f"{variable}: {path} is empty; put the API key in it")
    return api_key(text, variable)


KEYS_DIR = "IMMICH_API_KEYS_DIR"


def keys_from_dir(folder: Path) -> list[tuple[str, str]]:
    """(file name, key) for every key file in a folder, by name: a Kubernetes Secret or a folder of files
    mounted as it is. Hidden entries (a Secret's ..data links) are not keys; a file repeating another's
    key is dropped. Every problem is said in one line, naming the file, never the key."""
    if not folder.exists():
        raise ValueError(f"{KEYS_DIR}: {folder} does not exist; mount the folder of API keys there or fix the path")
    if not folder.is_dir():
        raise ValueError(f"{KEYS_DIR}: {folder} is not a folder; put one API key per user in files in a folder, "
                         "or use IMMICH_API_KEY_FILE for one key")
    try:
        names = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    except PermissionError:
        raise ValueError(f"{KEYS_DIR}: cannot list {folder} (permission denied): {_who_may_read(folder)}") from None
    if not names:
        raise ValueError(f"{KEYS_DIR}: {folder} holds no key file; put one API key per user in a file of its own")
    keys, problems = [], []
    for name in names:
        try:
            key = key_from_file(folder / name, name)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if all(key != k for _, k in keys):
            keys.append((name, key))
    if problems:
        raise ValueError(f"{KEYS_DIR}: " + "; ".join(problems))
    return keys


def _who_may_read(path: Path) -> str:
    """Why this process may not read `path`, and the fix (a key file written by one user and mounted into
    a container that runs as another: compose keeps a file's owner and mode)."""
    try:
        st = path.stat()
    except OSError:
        return "this process may not look into its folder; make the folder readable by the user ext2int runs as"
    return (f"ext2int runs as user {os.getuid()} and the file belongs to user {st.st_uid} with mode "
            f"{stat.S_IMODE(st.st_mode):o}. Make ext2int's user its owner (chown {os.getuid()} {path}; the image runs "
            "as 10001), or run ext2int as the file's owner")


def share(value: object) -> float:
    """A share of the assets: 'all', 'none', a fraction (0.1) or a percentage (10%)."""
    text = str(value).strip().lower()
    if text in ("all", "1", "100%"):
        return 1.0
    if text in ("", "none", "0", "0%"):
        return 0.0
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise ValueError("must be all, none, a fraction such as 0.1, or a percentage such as 10%")
    return number


def cron_expression(value: str) -> str:
    """Five cron fields that fire at some point (a day no month has never fires)."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(value.strip(), timezone="UTC")
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a cron expression ({exc}); use five fields: minute hour day month weekday, "
            "for example '30 2 * * *' for 02:30 every night"
        ) from None
    if trigger.get_next_fire_time(None, datetime.now(timezone.utc)) is None:
        raise ValueError(f"{value!r} never fires (a day that no month has?); for example '30 2 * * *'")
    return value.strip()


def writable_file(path: Path) -> Path:
    """A file the job can create (its folder is made if missing): checked before anything moves."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder: name a file in it, for example {path / 'report.json'}")
    ancestor = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    try:
        if not ancestor.is_dir():
            raise OSError(20, "not a folder")
        tempfile.TemporaryFile(dir=ancestor).close()
    except OSError as exc:
        raise ValueError(f"cannot write in {ancestor} ({exc.strerror or exc}): mount a writable folder there, "
                         "or point it elsewhere") from None
    return path


# durations with a floor: (seconds, why)
DURATION_FLOOR: dict[str, tuple[float, str]] = {
    "http_timeout": (1.0, "at least 1s (how long to wait for Immich's answer)"),
    "queue_poll": (1.0, "at least 1s (how often Immich's queues are read while paused)"),
    "claim_wait": (0.1, "at least 0.1s (how long a claim settles; see README)"),
    "claim_ttl": (10.0, "at least 10s (how long a claim lasts)"),
}


# whole numbers and the range each must be in, with the message that names the fix
RANGES: dict[str, tuple[int, int | None, str]] = {
    "batch_size": (1, None, "must be 1 or more (the number of assets moved per run)"),
    "concurrency": (1, 32, "must be between 1 and 32 (assets moved at once; 2 to 4 suits most servers)"),
    "metrics_port": (1, 65535, "must be a TCP port between 1 and 65535"),
    "queue_threshold": (0, None, "must be 0 (no throttling) or more (waiting jobs in Immich's queues)"),
    "http_retries": (0, 20, "must be between 0 and 20"),
    "transfer_retries": (0, 20, "must be between 0 and 20"),
}


def library_ids(value: object) -> list[str]:
    """EXT2INT_LIBRARY_IDS: library ids (UUIDs), comma-separated."""
    parts = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else list(value or [])
    for part in parts:
        try:
            UUID(str(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a library id (a UUID such as 1b4d2c5e-...); run `ext2int libraries` to "
                             "list yours") from None
    return parts


def time_zone(value: str) -> str:
    name = value.strip().lstrip(":")  # TZ=":Europe/Paris" is valid POSIX
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone name; use one such as Europe/Paris or UTC") from None
    return name


def host(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"[0-9A-Za-z.:-]+", value):
        raise ValueError("must be an IP address or a host name, for example 0.0.0.0 (every interface) or 127.0.0.1")
    return value


def log_level(value: str) -> str:
    value = value.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return value
