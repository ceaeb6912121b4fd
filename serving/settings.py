"""Typed service settings from ``NUDGE_*`` environment variables; bad values fail at start.

API keys are never stored in clear: ``NUDGE_API_KEYS_FILE`` points at a JSON or YAML mapping
``{"<sha256 hex of the key>": "<org_id>"}``, or ``NUDGE_API_KEYS`` holds ``hash=org`` pairs
separated by commas. ``hash_api_key`` computes the hash to put there.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recommender.constants import GLOBAL_ORG

ENV_PREFIX = "NUDGE_"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_ORG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SettingsError(ValueError):
    """Settings that cannot be used; the message names the environment variable."""


def hash_api_key(key: str) -> str:
    """SHA-256 hex digest of an API key, as stored in the key configuration."""
    return hashlib.sha256(key.encode()).hexdigest()


class ServeSettings(BaseSettings):
    """Ranking service settings; every field is read from ``NUDGE_<FIELD NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, protected_namespaces=()
    )

    # model
    model_uri: str = "models:/nudge-ranker@champion"
    """Registry URI of the served model (alias followed by the poller); empty: no model."""
    model_poll_seconds: float = Field(default=60.0, ge=0.0)
    """Seconds between registry polls; 0 disables polling."""
    model_timeout_seconds: float = Field(default=30.0, gt=0.0)
    """Bound on one registry resolve or model load."""
    fallback_catalogue: Path | None = None
    """nudges.csv or nudges.parquet served uniformly at random when no model is loaded."""

    # storage
    db_url: str | None = None
    """SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db); overrides db_path."""
    db_path: Path = Path("nudge_events.db")
    """SQLite file used when db_url is not set."""
    db_table_prefix: str = Field(default="nudge_", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"

    # auth
    api_keys_file: Path | None = None
    api_keys: str | None = None

    # exploration and rules
    policy: Literal["softmax", "epsilon_greedy"] = "softmax"
    epsilon: float = Field(default=0.05, ge=0.0, le=1.0)
    """Uniform exploration share (epsilon-greedy) or uniform floor mixed into softmax."""
    temperature: float = Field(default=0.1, gt=0.0)
    """Softmax temperature in score units."""
    holdout_share: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Probability of a control decision (no nudge) when something is eligible."""
    frequency_cap: int = Field(default=3, ge=1)
    """Maximum decisions with a nudge per manager in the rolling window."""
    frequency_window_hours: float = Field(default=168.0, gt=0.0)
    no_repeat_hours: float = Field(default=336.0, ge=0.0)
    random_seed: int | None = None
    """Seed of the exploration RNG (tests, replays); unset: OS entropy."""

    # http
    max_body_bytes: int = Field(default=65_536, ge=1_024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _keys_parse(self) -> ServeSettings:
        self.tenants()  # fail fast on a bad or missing key configuration
        if self.fallback_catalogue is not None and not self.fallback_catalogue.is_file():
            raise ValueError(f"fallback_catalogue: no file at {self.fallback_catalogue}")
        return self

    def database_url(self) -> str:
        """The SQLAlchemy URL of the event store."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.db_path.expanduser().resolve()}"

    def tenants(self) -> dict[str, str]:
        """Map of SHA-256 key hash -> org id, from the key file and/or ``NUDGE_API_KEYS``."""
        pairs: dict[str, str] = {}
        if self.api_keys_file is not None:
            pairs.update(_read_key_file(self.api_keys_file))
        if self.api_keys:
            for item in self.api_keys.split(","):
                if not item.strip():
                    continue
                digest, sep, org = item.strip().partition("=")
                if not sep:
                    raise ValueError("api_keys: expected comma-separated <sha256 hex>=<org_id>")
                pairs[digest.strip()] = org.strip()
        if not pairs:
            raise ValueError(
                f"api_keys: set {ENV_PREFIX}API_KEYS_FILE or {ENV_PREFIX}API_KEYS (no keys)"
            )
        for digest, org in pairs.items():
            if not _SHA256_HEX.match(digest):
                raise ValueError("api_keys: keys must be lowercase SHA-256 hex digests")
            if not _ORG_ID.match(org) or org == GLOBAL_ORG:
                raise ValueError(f"api_keys: invalid org id {org!r}")
        return pairs


def _read_key_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"api_keys_file: cannot read {path} ({error.strerror})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, ImportError) as error:
        raise ValueError(f"api_keys_file: {path} is not valid JSON/YAML") from error
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"api_keys_file: {path} must map key hashes to org ids")
    return dict(data)


def load_settings(**overrides: object) -> ServeSettings:
    """Settings from the environment (and ``overrides``); SettingsError names the variable."""
    try:
        return ServeSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        lines = []
        for item in error.errors():
            loc = item.get("loc") or ()
            message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
            field = str(loc[0]) if loc else message.split(":", 1)[0]
            lines.append(f"{ENV_PREFIX}{field.upper()}: {message}")
        raise SettingsError("invalid service settings:\n  " + "\n  ".join(lines)) from None
