"""Secrets never leave the process: not the API key, not a password in a URL, whatever fails.

One rule, in one place: `guarded()` learns every secret from the raw environment at the very start
(before the settings are parsed, so that not even a message about a bad setting can hold one), and
replaces the process's stdout and stderr with streams that scrub every write: prints, log lines, the
progress bar, and the traceback of any thread. The JSON report is written through the same filter
(`scrubbing`). A secret is replaced in every spelling it may take: as given, stripped, line by line (a
key file with a second line), and percent-encoded or decoded (a URL's password).
"""

from __future__ import annotations

import io
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, unquote

REDACTED = "[redacted]"
MIN_LENGTH = 4  # shorter strings are too common to replace everywhere (and no key or password is that short)
URL_VARIABLES = ("IMMICH_URL", "IMMICH_INSTANCE_URL", "EXT2INT_PUSHGATEWAY_URL")
_USERINFO = re.compile(r"//([^/?#@]*)@")


class Secrets:
    def __init__(self) -> None:
        self._values: list[str] = []
        self._lock = threading.Lock()

    def add(self, value: str | None) -> None:
        if not value:
            return
        spellings = {value, value.strip(), value.strip("\ufeff \t\r\n"), unquote(value), quote(value, safe="")}
        spellings |= {line.strip("\ufeff \t\r") for line in value.splitlines()}
        with self._lock:
            for spelling in spellings:
                if len(spelling) >= MIN_LENGTH and spelling not in self._values:
                    self._values.append(spelling)
            self._values.sort(key=len, reverse=True)  # the longest first: a part never hides the whole

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


SECRETS = Secrets()


def learn(environ: Mapping[str, str]) -> None:
    """Every secret the environment holds: the key (or the contents of the key file, or of every file in
    the folder of keys), and any URL password."""
    SECRETS.add(environ.get("IMMICH_API_KEY"))
    files = [Path(environ["IMMICH_API_KEY_FILE"])] if environ.get("IMMICH_API_KEY_FILE") else []
    if environ.get("IMMICH_API_KEYS_DIR"):
        try:
            files += [p for p in Path(environ["IMMICH_API_KEYS_DIR"]).iterdir() if p.is_file()]
        except OSError:
            pass  # the settings say why
    for key_file in files:
        try:
            SECRETS.add(key_file.read_bytes().decode("utf-8", errors="replace"))
        except OSError:
            pass  # the settings say why; there is nothing to hide
    for name in URL_VARIABLES:
        found = _USERINFO.search(environ.get(name, ""))
        if found:
            userinfo = found.group(1)
            SECRETS.add(userinfo)
            if ":" in userinfo:
                SECRETS.add(userinfo.split(":", 1)[1])


class Scrubbing(io.TextIOBase):
    """A text stream that writes through to `inner` with every secret replaced."""

    def __init__(self, inner: TextIO):
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(SECRETS.scrub(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")


def scrubbing(inner: TextIO) -> Scrubbing:
    return Scrubbing(inner)


@contextmanager
def guarded(environ: Mapping[str, str]) -> Iterator[None]:
    """For the life of a command: secrets learnt, stdout and stderr scrubbed; restored afterwards."""
    SECRETS.clear()
    learn(environ)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Scrubbing(out), Scrubbing(err)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = out, err
