"""Settings read from the environment (the table in the README's "Configuration")."""

from __future__ import annotations

import ipaddress
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("data")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every knob of the service; unknown variables are ignored."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = Field(default=f"sqlite://{DATA_DIR}/creditline.sqlite3")
    database_pool_size: int = Field(default=20, ge=1, le=500)
    auth_jwt_secret: str = ""
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""
    # The publishable key Stripe.js needs in the console; any pk_ key works on the emulator.
    stripe_publishable_key: str = ""
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10)
    broker_url: str = "memory://"
    # The service's address as its clients see it (https://billing.example.com), for the
    # links it hands out; unset: each link is built from its request's scheme, host, port.
    public_url: str | None = None
    # Peers (IPs or networks, or "*") whose X-Forwarded-Proto/-Host/-Port are believed
    # when links are built from the request: the load balancer's addresses.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Whether this process runs the scheduled jobs (SCHEDULER=on|off); with several
    # replicas on, an advisory lock lets one at a time run each pass.
    scheduler: bool = True
    cors_allow_origins: list[str] = Field(default_factory=list)
    # `/metrics` then needs `Authorization: Bearer METRICS_TOKEN`; in production, without
    # one set, `/metrics` is closed (app/metrics.py `endpoint`).
    metrics_token: str = ""
    # Websocket subscriptions (graphql-transport-ws).
    ws_connection_init_timeout: float = Field(default=10.0, gt=0, le=600)
    ws_max_subscriptions: int = Field(default=20, ge=1, le=1000)
    # Backstop for the membership-changed event: re-check every subscriber's access this often.
    subscription_access_recheck_seconds: float = Field(default=30.0, gt=0, le=3600)

    # API keys (app/teams/keyring.py): how long a process trusts its cached copy of a key
    # (a revocation reaches every process at once through the broker; this bounds it if
    # that message is lost), and how often last uses are written.
    api_key_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    api_key_last_used_flush_seconds: float = Field(default=30.0, gt=0, le=3600)

    purchase_min_cents: int = Field(default=500, ge=1)
    purchase_max_cents: int = Field(default=10_000_000, ge=1)

    # Abuse limits (app/http.py, app/graphql/throttle.py). Mutations a minute, per process.
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    rate_limit_enabled: bool = True
    rate_limit_user_per_minute: int = Field(default=120, ge=1)
    rate_limit_team_per_minute: int = Field(default=300, ge=1)
    rate_limit_operator_per_minute: int = Field(default=600_000, ge=1)

    # Keep the hourly usage rollups in the usage statement (docs/usage-history.md). Off
    # only for the benchmark that measures what they cost: series then miss new usage.
    usage_rollups: bool = True

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgres://", "asyncpg://", "postgresql://")):
            raise ValueError("must start with sqlite:// or postgres://")
        return value

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://HOST:PORT/N")
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")) or "?" in value or "#" in value:
            raise ValueError("must be an http:// or https:// URL without query or fragment")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "*":
                ipaddress.ip_network(item, strict=False)  # raises ValueError when malformed
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite://")

    def jwt_secret(self) -> str:
        """The signing secret; in development one is generated once and kept under data/."""
        if self.auth_jwt_secret:
            return self.auth_jwt_secret
        if self.environment is Environment.PRODUCTION:
            raise RuntimeError("AUTH_JWT_SECRET must be set in production")
        path = DATA_DIR / "jwt-secret"
        if not path.exists():
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        self.auth_jwt_secret = path.read_text().strip()
        return self.auth_jwt_secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
