"""Every setting of the job, read from environment variables only.

The variable names are the documentation: README.md lists each one. Validation happens once, at start;
a bad value becomes one line per variable that says what is wrong and how to fix it (see
`SettingsError`). Nothing is contacted before the settings are valid.

`Settings` is the one typed, frozen options object of a run: every module reads its values from it,
and each default is written here, once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated
from uuid import UUID

from pydantic import (
    AliasChoices, ByteSize, Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from job.paths import parse_aliases
from job.record import Policy
from job.values import (
    DURATION_FLOOR, RANGES, DeleteMode, LogFormat, Pools, QueueAction, Switch, api_key, base_url, cron_expression, host,
    key_from_file, keys_from_dir, library_ids, log_level, parse_duration, share, time_zone, writable_file,
)

__all__ = ["DeleteMode", "LogFormat", "Pools", "QueueAction", "Settings", "SettingsError", "Switch", "load_settings",
           "parse_duration"]


_MISSING_KEY = (
    "IMMICH_API_KEY is not set: create an API key in Immich (Account Settings > API Keys) "
    "and set IMMICH_API_KEY, or IMMICH_API_KEY_FILE to a file holding it (or IMMICH_API_KEYS_DIR to a folder "
    "of key files, one per user)"
)


def _env(name: str, *more: str):
    return AliasChoices(name, *more) if more else name


class Settings(BaseSettings):
    """The job's configuration. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", populate_by_name=True, frozen=True,
    )

    immich_url: str = Field(validation_alias=_env("IMMICH_URL", "IMMICH_INSTANCE_URL"))
    api_key: SecretStr | None = Field(default=None, validation_alias=_env("IMMICH_API_KEY"), repr=False)
    api_key_file: Path | None = Field(default=None, validation_alias=_env("IMMICH_API_KEY_FILE"))
    api_keys_dir: Path | None = Field(default=None, validation_alias=_env("IMMICH_API_KEYS_DIR"))
    _keys: tuple[tuple[str, SecretStr], ...] = PrivateAttr(default=())  # (where from, key): see `keys`

    library_ids: Annotated[list[UUID], NoDecode] = Field(default_factory=list, validation_alias="EXT2INT_LIBRARY_IDS")
    batch_size: int = Field(default=100, validation_alias="EXT2INT_BATCH_SIZE")
    max_bytes: ByteSize | None = Field(default=None, validation_alias="EXT2INT_MAX_BYTES")
    max_duration: Annotated[float | None, NoDecode] = Field(default=None, validation_alias="EXT2INT_MAX_DURATION")
    concurrency: int = Field(default=2, validation_alias="EXT2INT_CONCURRENCY")
    delete: DeleteMode = Field(default=DeleteMode.TRASH, validation_alias="EXT2INT_DELETE")
    on_conflict: Policy = Field(default=Policy.HOLD, validation_alias="EXT2INT_ON_CONFLICT")
    join_descriptions: bool = Field(default=False, validation_alias="EXT2INT_JOIN_DESCRIPTIONS")
    assume_unshared: bool = Field(default=False, validation_alias="EXT2INT_ASSUME_UNSHARED")
    path_aliases: Annotated[tuple[tuple[str, str], ...], NoDecode] = Field(default=(), validation_alias="EXT2INT_PATH_ALIASES")
    rehash_after: Annotated[float, NoDecode] = Field(default=600.0, validation_alias="EXT2INT_REHASH_AFTER")
    claim_wait: Annotated[float, NoDecode] = Field(default=2.0, validation_alias="EXT2INT_CLAIM_WAIT")
    claim_ttl: Annotated[float, NoDecode] = Field(default=120.0, validation_alias="EXT2INT_CLAIM_TTL")
    trash_watch: Annotated[float, NoDecode] = Field(default=172800.0, validation_alias="EXT2INT_TRASH_WATCH")
    report_path: Path | None = Field(default=None, validation_alias="EXT2INT_REPORT")
    run_id: UUID | None = Field(default=None, validation_alias="EXT2INT_RUN_ID")  # verify, undo: one run's moves
    verify_hash: Annotated[float, NoDecode] = Field(default=0.0, validation_alias="EXT2INT_VERIFY_HASH")
    move_undone: bool = Field(default=False, validation_alias="EXT2INT_MOVE_UNDONE")

    schedule: str | None = Field(default=None, validation_alias="EXT2INT_SCHEDULE")
    timezone: str | None = Field(default=None, validation_alias=_env("EXT2INT_TIMEZONE", "TZ"))
    run_at_start: bool = Field(default=False, validation_alias="EXT2INT_RUN_AT_START")

    metrics_port: int = Field(default=9807, validation_alias="EXT2INT_METRICS_PORT")
    metrics_addr: str = Field(default="0.0.0.0", validation_alias="EXT2INT_METRICS_ADDR")
    pushgateway_url: str | None = Field(default=None, validation_alias="EXT2INT_PUSHGATEWAY_URL")

    queue_threshold: int = Field(default=500, validation_alias="EXT2INT_QUEUE_THRESHOLD")
    queue_action: QueueAction = Field(default=QueueAction.PAUSE, validation_alias="EXT2INT_QUEUE_ACTION")
    queue_max_pause: Annotated[float, NoDecode] = Field(default=600.0, validation_alias="EXT2INT_QUEUE_MAX_PAUSE")
    queue_poll: Annotated[float, NoDecode] = Field(default=10.0, validation_alias="EXT2INT_QUEUE_POLL")

    settle_timeout: Annotated[float, NoDecode] = Field(default=60.0, validation_alias="EXT2INT_SETTLE_TIMEOUT")
    settle_confirm: Annotated[float, NoDecode] = Field(default=5.0, validation_alias="EXT2INT_SETTLE_CONFIRM")
    face_wait: Annotated[float, NoDecode] = Field(default=6 * 3600.0, validation_alias="EXT2INT_FACE_WAIT")
    shutdown_grace: Annotated[float, NoDecode] = Field(default=25.0, validation_alias="EXT2INT_SHUTDOWN_GRACE")

    http_timeout: Annotated[float, NoDecode] = Field(default=60.0, validation_alias="EXT2INT_HTTP_TIMEOUT")
    http_retries: int = Field(default=5, validation_alias="EXT2INT_HTTP_RETRIES")
    transfer_retries: int = Field(default=3, validation_alias="EXT2INT_TRANSFER_RETRIES")

    log_format: LogFormat = Field(default=LogFormat.AUTO, validation_alias="EXT2INT_LOG_FORMAT")
    log_level: str = Field(default="INFO", validation_alias="EXT2INT_LOG_LEVEL")
    progress: Switch = Field(default=Switch.AUTO, validation_alias="EXT2INT_PROGRESS")

    # --- validation: each message names the fix -------------------------------------------------

    @field_validator("immich_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = base_url(value, "http://immich-server:2283 (the address your browser opens Immich at)")
        return value[: -len("/api")] if value.endswith("/api") else value  # people paste the API root; accept both

    @field_validator("library_ids", mode="before")
    @classmethod
    def _library_ids(cls, value: object) -> list[str]:
        return library_ids(value)

    @field_validator(*RANGES)
    @classmethod
    def _in_range(cls, value: int, info: ValidationInfo) -> int:
        low, high, message = RANGES[info.field_name]
        if value < low or (high is not None and value > high):
            raise ValueError(message)
        return value

    @field_validator("path_aliases", mode="before")
    @classmethod
    def _path_aliases(cls, value: object) -> tuple[tuple[str, str], ...]:
        return parse_aliases(value) if isinstance(value, str) else tuple(value or ())

    @field_validator("max_bytes")
    @classmethod
    def _max_bytes(cls, value: ByteSize | None) -> ByteSize | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive size such as 500MB or 20GiB")
        return value

    @field_validator("max_duration", mode="before")
    @classmethod
    def _max_duration(cls, value: object) -> float | None:
        return parse_duration(value)

    @field_validator(
        "queue_max_pause", "queue_poll", "settle_timeout", "settle_confirm", "face_wait", "shutdown_grace", "http_timeout",
        "rehash_after", "claim_wait", "claim_ttl", "trash_watch", mode="before",
    )
    @classmethod
    def _durations(cls, value: object, info: ValidationInfo) -> float:
        if isinstance(value, str) and value.strip() in {"0", "0s", "0m", "0h"}:
            value = 0.0
        else:
            value = parse_duration(value)
            if value is None:
                raise ValueError("must be a duration such as 90, 90s, 30m or 2h")
        floor, why = DURATION_FLOOR.get(info.field_name, (0.0, ""))
        if value < floor:
            raise ValueError(f"must be {why}")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else cron_expression(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else time_zone(value)

    @field_validator("pushgateway_url")
    @classmethod
    def _pushgateway(cls, value: str | None) -> str | None:
        return base_url(value, "http://pushgateway:9091") if value else value

    @field_validator("verify_hash", mode="before")
    @classmethod
    def _verify_hash(cls, value: object) -> float:
        return share(value)

    @field_validator("report_path")
    @classmethod
    def _report(cls, value: Path | None) -> Path | None:
        return writable_file(value) if value is not None else value

    @field_validator("metrics_addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        return host(value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return log_level(value)

    @model_validator(mode="after")
    def _key(self) -> Settings:
        """One key (IMMICH_API_KEY or the file IMMICH_API_KEY_FILE) or a folder of keys, one per user
        (IMMICH_API_KEYS_DIR): exactly one of the three. (The model is frozen: the keys are set once,
        here, while the object is being built.)"""
        given = [name for name, value in (("IMMICH_API_KEY", self.api_key), ("IMMICH_API_KEY_FILE", self.api_key_file),
                                          ("IMMICH_API_KEYS_DIR", self.api_keys_dir)) if value is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} are all set: keep only one (one key, its file, or a folder of keys)")
        if self.api_key_file is not None:
            keys = [(str(self.api_key_file), key_from_file(self.api_key_file, "IMMICH_API_KEY_FILE"))]
        elif self.api_keys_dir is not None:
            keys = keys_from_dir(self.api_keys_dir)
        elif self.api_key is not None and self.api_key.get_secret_value().strip():
            keys = [("IMMICH_API_KEY", api_key(self.api_key.get_secret_value(), "IMMICH_API_KEY"))]
        else:
            raise ValueError(_MISSING_KEY)
        self._keys = tuple((where, SecretStr(key)) for where, key in keys)
        return self

    @property
    def keys(self) -> tuple[tuple[str, SecretStr], ...]:
        """Every API key the run holds, with where it came from (a variable, a file): one per user."""
        return self._keys

    @property
    def claim_read_write(self) -> float:
        """The longest a claim's read-then-write may take (Fischer's mutual exclusion needs it below the
        wait after writing; see job/move/claim.py)."""
        return self.claim_wait * 2 / 3

    @property
    def claim_margin(self) -> float:
        """A holder stops acting on a claim this long before it expires: room for the clocks of two
        processes to disagree (claims compare wall-clock times)."""
        return min(300.0, self.claim_ttl / 4)

    @property
    def pools(self) -> Pools:
        return Pools.of(self.concurrency)


class SettingsError(Exception):
    """Invalid configuration: `lines` holds one human sentence per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self.lines = lines


_ALIASES = {
    name: (field.validation_alias if isinstance(field.validation_alias, str) else field.validation_alias.choices[0])
    for name, field in Settings.model_fields.items()
}


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read and validate the environment (or `env`, for tests). Raises SettingsError."""
    try:
        if env is None:
            return Settings()
        return Settings.model_validate({k: v for k, v in env.items() if v != ""})
    except ValidationError as exc:
        lines = [_explain(err) for err in exc.errors()]
        source = os.environ if env is None else env
        key_lines = [line for line in lines if line.startswith("IMMICH_API_KEY")]
        if not key_lines and not any(source.get(v, "").strip() for v in ("IMMICH_API_KEY", "IMMICH_API_KEY_FILE",
                                                                            "IMMICH_API_KEYS_DIR")):
            lines.append(_MISSING_KEY)  # field errors stop the model check: say it now, not on the next try
        raise SettingsError(lines) from None


# pydantic's error types, said the way a person fixes them
_BY_TYPE = {"int_parsing": "must be a whole number", "int_from_float": "must be a whole number",
            "byte_size": "must be a size such as 500MB or 20GiB", "bool_parsing": "must be true or false"}


def _explain(err: dict) -> str:
    loc = [str(part) for part in err.get("loc", ())]
    variable = _ALIASES.get(loc[0], loc[0]) if loc else ""
    message = re.sub(r"^(Value error|Assertion failed), ", "", err.get("msg", "is invalid"))
    kind = err.get("type")
    if kind == "missing":
        return f"{variable} is not set (or is empty): it is required"
    if not variable:  # model-level checks already name their variable
        return message
    if kind in ("literal_error", "enum"):
        message = message.replace("Input should be", "must be")
    return f"{variable}: {_BY_TYPE.get(kind, message)}"
