"""Settings read from the environment (the table in the README's "Configuration")."""

from __future__ import annotations

import ipaddress
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
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
    # Log lines (app/logs.py): one JSON object each, or readable text for a terminal.
    log_format: Literal["json", "console"] = "json"
    database_url: str = Field(default=f"sqlite://{DATA_DIR}/creditline.sqlite3")
    database_pool_size: int = Field(default=20, ge=1, le=500)
    # HS256 secrets, comma-separated: the first signs, every one verifies (rotation).
    auth_jwt_secret: str = ""
    # The host platform's identity provider (app/teams/tokens.py): RS256/ES256 tokens are
    # verified with the keys of this JWKS document, and must name this issuer and audience.
    auth_jwks_url: str = ""
    auth_issuer: str = ""
    auth_audience: str = ""
    # How old the JWKS copy may grow before it is fetched again, and how often at most an
    # unknown `kid` fetches it (rotation picked up without a fetch per forged token).
    auth_jwks_refresh_seconds: float = Field(default=300.0, gt=0, le=86_400)
    auth_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0, le=3600)
    # Tracing (app/tracing.py) is on when this is set; the other OTEL_* variables apply.
    otel_exporter_otlp_endpoint: str = ""
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

    # Abuse limits (app/http/auth.py, app/graphql/throttle.py): mutations (and /v1 requests)
    # a minute, across the cluster when BROKER_URL is Redis (app/kit/ratelimit.py).
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    rate_limit_enabled: bool = True
    # Where the counts live in Redis: replicas of one deployment share the prefix.
    rate_limit_redis_prefix: str = "creditline:ratelimit"
    rate_limit_user_per_minute: int = Field(default=120, ge=1)
    rate_limit_team_per_minute: int = Field(default=300, ge=1)
    rate_limit_operator_per_minute: int = Field(default=600_000, ge=1)
    # Requests to /v1 with missing or bad credentials, per client address (app/http/auth.py).
    rate_limit_unauthenticated_per_minute: int = Field(default=600, ge=1)

    # The seller printed on every invoice and receipt (app/invoices/seller.py). The address
    # is multi-line: real newlines, or "\n" written out in a one-line variable.
    seller_name: str = Field(default="Creditline (development)", min_length=1, max_length=200)
    seller_address: str = Field(
        default="1 Example Street\nSan Francisco, CA 94105\nUnited States", max_length=1000
    )
    seller_tax_id: str = Field(default="US EIN 00-0000000", max_length=100)
    seller_email: str = Field(default="billing@creditline.example", max_length=254)

    @field_validator("seller_name", "seller_address", "seller_tax_id", "seller_email")
    @classmethod
    def _printable(cls, value: str) -> str:
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            raise ValueError("must not hold NUL bytes or lone surrogates")
        return value.replace("\\n", "\n").strip()

    # Notifications (docs/notifications.md): the outbox, email over SMTP, webhooks.
    # NOTIFICATIONS=off writes no outbox rows (nothing is sent) and runs no notifier.
    notifications: bool = True
    # smtp://HOST:PORT or smtps://USER:PASS@HOST:PORT; unset: no email is sent.
    smtp_url: str = ""
    email_from: str = "Creditline <billing@localhost>"
    # The first retry waits this long, each next one twice as long (capped at an hour);
    # a delivery is given up 3 days after its event.
    notify_retry_base_seconds: float = Field(default=30.0, gt=0, le=3600)
    # The notifier's timer: it is also woken after each commit that wrote to the outbox.
    notify_interval_seconds: float = Field(default=5.0, gt=0, le=3600)

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

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: str) -> str:
        if value and not value.startswith(("smtp://", "smtps://")):
            raise ValueError("must be smtp://HOST:PORT or smtps://USER:PASS@HOST:PORT")
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

    @model_validator(mode="after")
    def _jwks_names_its_tokens(self) -> Settings:
        # Without both, a token the provider issued for another application would do.
        if self.auth_jwks_url and not (self.auth_issuer and self.auth_audience):
            raise ValueError("AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite://")

    def jwt_secrets(self) -> list[str]:
        """Every HS256 secret, the signing one first (AUTH_JWT_SECRET, comma-separated)."""
        self.jwt_secret()
        return [s for s in (part.strip() for part in self.auth_jwt_secret.split(",")) if s]

    def jwt_secret(self) -> str:
        """The signing secret (the first listed); in development one is generated once
        and kept under data/."""
        if self.auth_jwt_secret:
            return self.auth_jwt_secret.split(",", 1)[0].strip()
        if self.environment is Environment.PRODUCTION:
            raise RuntimeError("AUTH_JWT_SECRET must be set in production")
        path = DATA_DIR / "jwt-secret"
        if not path.exists():
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        self.auth_jwt_secret = path.read_text().strip()
        return self.auth_jwt_secret


MIN_SECRET_BYTES = 32
MIN_METRICS_TOKEN_BYTES = 16


def production_problems(settings: Settings) -> list[str]:
    """What makes these settings unfit to serve real customers; empty when fit, and
    always empty outside production (docs/deploy.md, "Configuration")."""
    if settings.environment is not Environment.PRODUCTION:
        return []
    problems: list[str] = []
    secrets_ = [part.strip() for part in settings.auth_jwt_secret.split(",")]
    if not settings.auth_jwt_secret.strip():
        problems.append("AUTH_JWT_SECRET is not set (it signs tokens and invoice links)")
    elif any(len(s.encode()) < MIN_SECRET_BYTES for s in secrets_):
        problems.append(
            f"AUTH_JWT_SECRET: each secret needs at least {MIN_SECRET_BYTES} bytes "
            "(openssl rand -base64 48)"
        )
    if settings.is_sqlite:
        problems.append("DATABASE_URL is SQLite; production needs postgres://")
    key = settings.stripe_api_key
    if not key.startswith(("sk_live_", "rk_live_")):
        what = "is not set" if not key else "is not a live key (sk_live_ or rk_live_)"
        problems.append(f"STRIPE_API_KEY {what}")
    if settings.stripe_api_base:
        problems.append("STRIPE_API_BASE is set: production talks to Stripe, not an emulator")
    if not settings.stripe_webhook_secret.startswith("whsec_"):
        problems.append("STRIPE_WEBHOOK_SECRET is not a webhook signing secret (whsec_...)")
    if settings.stripe_publishable_key and not settings.stripe_publishable_key.startswith(
        "pk_live_"
    ):
        problems.append("STRIPE_PUBLISHABLE_KEY is not a live key (pk_live_)")
    if settings.metrics_token and len(settings.metrics_token.encode()) < MIN_METRICS_TOKEN_BYTES:
        problems.append(f"METRICS_TOKEN needs at least {MIN_METRICS_TOKEN_BYTES} bytes")
    if settings.auth_jwks_url and not settings.auth_jwks_url.startswith("https://"):
        problems.append("AUTH_JWKS_URL must be https:// (the keys that sign tokens)")
    if "*" in settings.cors_allow_origins:
        problems.append("CORS_ALLOW_ORIGINS lists '*': name the console's origins")
    return problems


def refuse_weak_production(settings: Settings) -> None:
    """Stops start-up (SystemExit: one message, no traceback) when `production_problems`
    finds any."""
    problems = production_problems(settings)
    if problems:
        lines = "".join(f"\n  - {problem}" for problem in problems)
        raise SystemExit(f"configuration error: ENVIRONMENT=production refuses:{lines}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
