"""Hearth's settings: ``config/default.toml`` < operator file < ``HEARTH_*`` environment variables.

Built once at the entry point (``bridge.__main__``) and passed down; nothing reads settings at import.
Invalid settings raise :class:`SettingsError` whose message names the key, where it came from and why.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.sanctions import SanctionDefaults

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_FILE = CONFIG_DIR / "default.toml"
PLACEHOLDERS = frozenset({"", "change-me", "changeme", "secret", "password"})


class SettingsError(Exception):
    """Settings could not be loaded; the message is meant for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatrixSettings(_Section):
    homeserver_url: str = "http://127.0.0.1:8008"
    server_name: str = "localhost"
    bot_localpart: str = Field("hearth", pattern=r"^[a-z0-9._=/-]+$")
    bot_password: SecretStr = SecretStr("CHANGE-ME")
    bot_display_name: str = "Hearth"
    sync_timeout_ms: int = Field(30000, ge=0, le=300_000)
    sync_min_interval_ms: int = Field(200, ge=0, le=5000)

    @field_validator("homeserver_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @property
    def bot_user_id(self) -> str:
        return f"@{self.bot_localpart}:{self.server_name}"


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class GateSettings(_Section):
    secret: SecretStr = SecretStr("CHANGE-ME")
    budget_ms: int = Field(250, ge=10, le=55_000)


class StaffApiSettings(_Section):
    """Staff sign-in (Matrix OpenID, bridge/web/auth.py): the key that signs Hearth's session tokens."""

    session_secret: SecretStr = SecretStr("CHANGE-ME")
    session_minutes: int = Field(480, ge=5, le=7 * 24 * 60)  # a sign-in lasts this long (one shift)
    # Failed sign-ins allowed per client address in a moving window, e.g. "10/5minutes".
    failed_sign_in_limit: str = Field("10/5minutes", pattern=r"^\d+/\d*\s*(second|minute|hour|day)s?$")

    @model_validator(mode="before")
    @classmethod
    def _no_shared_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise ValueError(
                "`token` is gone: there is no shared staff token any more; staff sign in with their Matrix "
                "account (POST /api/auth/openid, see the README). Remove the key; set `session_secret`."
            )
        return data


class ModerationSettings(_Section):
    """The screening pipeline: where its tables live and which toxicity scorer to load."""

    config_dir: Path = CONFIG_DIR  # policy.toml and moderation/{rules,crisis}.toml
    toxicity_checkpoint: str = ""  # a Detoxify checkpoint (.ckpt); empty: the offline MiniLM scorer
    # int8 dynamic quantisation of the Detoxify model; "auto": int8 where the CPU has VNNI-like instructions
    quantize: Literal[True, False, "auto"] = "auto"
    toxicity_runtime: Literal["onnx", "torch"] = "onnx"  # runs Detoxify/MiniLM (onnx falls back to torch)
    model_cache_dir: Path | None = None  # exported/quantised models; None: <data_dir>/model-cache
    crisis_learned: bool = True  # the learned support model (crisis, harm, target) beside the rules
    max_batch: int = Field(32, ge=1, le=256)
    flag_retention_days: int = Field(30, ge=1, le=365)  # flagged message text is purged after this
    allow_member_invites: bool = False  # members may invite other members (staff always may)
    # In their trust period (policy.toml [behaviour] new_member_minutes) members may mention at most
    # this many people in one message, and never @room.
    new_member_mention_limit: int = Field(3, ge=0, le=50)
    # Moderators' casework (bridge/moderators): their room, reports, sanctions and appeals.
    moderators_room_alias: str = Field("hearth-moderators", pattern=r"^[a-z0-9._=/-]+$")
    report_poll_seconds: float = Field(10.0, gt=0, le=30)  # reading Synapse's event reports
    sanction_defaults: SanctionDefaults = SanctionDefaults()
    appeal_reminder_hours: float = Field(24.0, gt=0, le=24 * 14)
    appeal_retention_days: int = Field(90, ge=1, le=365)  # a member's appeal words are kept this long
    # Trusted reporters: at least this many upheld reports and this share of their decided ones.
    trusted_reporter_min_upheld: int = Field(3, ge=1, le=1000)
    trusted_reporter_min_share: float = Field(0.7, gt=0, le=1)
    # A message reported by this many trusted reporters is hidden (redacted, its text kept for the
    # moderators) until a moderator decides; 0: never hidden before a moderator looks.
    hide_after_trusted_reports: int = Field(2, ge=0, le=100)


class JoinSettings(_Section):
    """The way in for members: ``GET /join`` and single-use registration tokens (``POST /api/join``)."""

    enabled: bool = True  # false: /join says to ask an operator; `hearth accounts token` still works
    tokens_per_address: str = "3/hour"  # the `limits` syntax: "N/second|minute|hour|day"
    token_expiry_hours: float = Field(24.0, gt=0, le=24 * 30)
    # The homeserver address members type into Element; empty: matrix.homeserver_url.
    public_homeserver_url: str = ""
    # Requests for a code wait for an operator (`hearth accounts approve|refuse <reference>`); the page
    # shows a reference and the code once approved. Pending requests are forgotten after this long.
    require_approval: bool = False
    request_expiry_hours: float = Field(72.0, gt=0, le=24 * 30)
    # Hold a new member's messages in a space until they accept its guidelines (!agree or a reaction
    # on the welcome); a message read as crisis is never held. Off by default: see default.toml.
    hold_until_agreed: bool = False

    @field_validator("tokens_per_address")
    @classmethod
    def _limit(cls, v: str) -> str:
        from limits import parse

        try:
            parse(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a rate like '3/hour'") from None
        return v

    @field_validator("public_homeserver_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be empty or start with http:// or https://")
        return v


class SessionsSettings(_Section):
    """Group sessions (``bridge/sessions``): how far ahead their dates are made, how often new series
    are picked up, and how long who came is kept."""

    horizon_days: int = Field(35, ge=2, le=400)  # dates are made this far ahead (a month and more)
    refresh_seconds: float = Field(60.0, gt=0, le=3600)  # new series and dates get their timers
    attendance_retention_days: int = Field(90, ge=1, le=730)  # who came; the counts stay


class EscalationBridgeSettings(_Section):
    """Where crisis escalations go (the bridge side; tuning lives in ``tuning_file``)."""

    staff_room_alias: str = Field("hearth-staff", pattern=r"^[a-z0-9._=/-]+$")
    staff_file: Path | None = None  # None: config/staff.toml
    tuning_file: Path = CONFIG_DIR / "escalation.toml"
    resources_file: Path = CONFIG_DIR / "crisis_resources.toml"
    # The operator's default region for crisis lines (ISO 3166-1 alpha-2, a region of resources_file),
    # for spaces without a region of their own and members who chose none. Empty: international.
    default_region: str = Field("", pattern=r"^([A-Z]{2})?$")
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None
    sla_imminent_seconds: int | None = Field(None, gt=0)
    sla_high_seconds: int | None = Field(None, gt=0)
    sla_moderate_seconds: int | None = Field(None, gt=0)
    # Empty private rooms kept ready, so a person in crisis gets their resources without waiting for a
    # room to be built (bridge/direct_rooms.py); 0 turns the pool off.
    care_room_pool: int = Field(3, ge=0, le=50)
    sweep_seconds: float = Field(5.0, gt=0, le=300)
    poll_seconds: float = Field(2.0, gt=0, le=60)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_http_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be empty or start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> EscalationBridgeSettings:
        if self.webhook_url and (self.webhook_secret is None or not self.webhook_secret.get_secret_value()):
            raise ValueError("webhook_url is set, so webhook_secret is required (it signs every POST)")
        return self


class Settings(BaseSettings):
    """Everything Hearth's process needs, validated."""

    model_config = SettingsConfigDict(env_prefix="HEARTH_", env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = "production"
    data_dir: Path = Path(".data")
    database_url: str = ""
    database_busy_seconds: float = Field(10.0, gt=0, le=300)
    data_min_free_mb: int = Field(20, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    matrix: MatrixSettings = MatrixSettings()
    http: HttpSettings = HttpSettings()
    gate: GateSettings = GateSettings()
    staff_api: StaffApiSettings = StaffApiSettings()
    moderation: ModerationSettings = ModerationSettings()
    escalation: EscalationBridgeSettings = EscalationBridgeSettings()
    join: JoinSettings = JoinSettings()
    sessions: SessionsSettings = SessionsSettings()
    # For drills and tests only: a file holding seconds added to the wall clock (re-read when it
    # changes), so expiries and SLAs can be walked through without waiting. Empty: the wall clock.
    clock_offset_file: Path | None = None

    @model_validator(mode="after")
    def _separate_rooms(self) -> Settings:
        if self.moderation.moderators_room_alias == self.escalation.staff_room_alias:
            raise ValueError(
                "moderation.moderators_room_alias must differ from escalation.staff_room_alias: "
                "clinical alerts stay with clinicians"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Files are merged by `load_settings` and arrive as init kwargs; the environment wins over them.
        return env_settings, init_settings

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'hearth.db'}"

    @property
    def effective_model_cache_dir(self) -> Path:
        return self.moderation.model_cache_dir or self.data_dir / "model-cache"

    def secrets(self) -> dict[str, SecretStr]:
        return {
            "matrix.bot_password": self.matrix.bot_password,
            "gate.secret": self.gate.secret,
            "staff_api.session_secret": self.staff_api.session_secret,
        } | (
            {"escalation.webhook_secret": self.escalation.webhook_secret}
            if self.escalation.webhook_url and self.escalation.webhook_secret
            else {}
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML: {e}") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _has_key(data: dict[str, Any], path: tuple[str | int, ...]) -> bool:
    node: Any = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _origin(path: tuple[str | int, ...], layers: list[tuple[str, dict[str, Any]]]) -> str:
    env_name = "HEARTH_" + "__".join(str(p) for p in path).upper()
    if env_name in os.environ:
        return f"environment variable {env_name}"
    for name, data in reversed(layers):
        if _has_key(data, path):
            return name
    return "defaults"


def default_operator_file() -> Path | None:
    """The operator file: $HEARTH_CONFIG, else .data/hearth.toml when `make up` generated it."""
    env = os.environ.get("HEARTH_CONFIG")
    if env:
        return Path(env)
    generated = Path(".data/hearth.toml")
    return generated if generated.exists() else None


def load_settings(operator_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the defaults, the operator file and the environment, or raise SettingsError."""
    layers: list[tuple[str, dict[str, Any]]] = [(str(DEFAULT_FILE), _read_toml(DEFAULT_FILE))]
    if operator_file is not None:
        layers.append((str(operator_file), _read_toml(operator_file)))
    merged: dict[str, Any] = {}
    for _name, data in layers:
        merged = _merge(merged, data)
    merged = _merge(merged, overrides)
    try:
        settings = Settings(**merged)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc)
            problems.append(f"`{key}` (from {_origin(loc, layers)}): {err['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None
    if settings.environment != "development":
        weak = [
            k for k, v in settings.secrets().items() if v.get_secret_value().strip().lower() in PLACEHOLDERS
        ]
        if weak:
            raise SettingsError(
                "placeholder secrets are refused outside development: "
                + ", ".join(f"`{k}` (from {_origin(tuple(k.split('.')), layers)})" for k in weak)
                + "; run `make up` to generate them, or set them in your settings file or environment"
            )
    return settings
