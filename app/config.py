"""One place for configuration: environment variables with the ``SUPHUB_`` prefix or a ``.env`` file."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

#: Values that mean "somebody copied the example and forgot to change it".
PLACEHOLDER_SECRETS = frozenset({"", "changethis", "change-me", "changeme", "secret", "placeholder"})

PREFIX = "SUPHUB_"
#: ``SUPHUB_*`` names that are not settings but are read by someone else (§10): a source's
#: credentials (``SUPHUB_SOURCE_<ID>_…``, read by the collectors), the test suite's switches,
#: the drills' (tests/drills) and the PostgreSQL password docker-compose.yml puts into the URL.
EXEMPT_PREFIXES = ("SUPHUB_SOURCE_", "SUPHUB_TEST_", "SUPHUB_DRILL_")
#: ``SUPHUB_ALEMBIC_INI`` is read by app/paths.py before any settings exist (an alembic.ini of
#: the operator's); ``SUPHUB_DB_PASSWORD`` by docker-compose.yml, which reads ``.env`` too.
EXEMPT_NAMES = frozenset({"SUPHUB_ALEMBIC_INI", "SUPHUB_DB_PASSWORD"})


class UnknownSettingError(ValueError):
    """A ``SUPHUB_*`` name that is no setting: a misspelling would otherwise pass silently (§10)."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        super().__init__(f"未知的配置项 {name}（{where}），请检查拼写 (unknown setting {name} in {where})")


class _RefuseUnknownNames(PydanticBaseSettingsSource):
    """Reads nothing; refuses a ``SUPHUB_*`` name of the environment or ``.env`` that is no setting."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._dotenv = dotenv

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        known = {PREFIX + name.upper() for name in self.settings_cls.model_fields}
        dotenv_vars: dict[str, Any] = dict(getattr(self._dotenv, "env_vars", {}) or {})
        places = [(sorted(os.environ), "environment")]
        places.append((sorted(dotenv_vars), f"{getattr(self._dotenv, 'env_file', '.env')}"))
        for names, where in places:
            for raw in names:
                name = raw.upper()
                if not name.startswith(PREFIX) or name in known or name in EXEMPT_NAMES:
                    continue
                if name.startswith(EXEMPT_PREFIXES):
                    continue
                raise UnknownSettingError(name, where)
        return {}


class Settings(BaseSettings):
    """Every knob of the hub; defaults give an embedded SQLite hub under ``./var/``."""

    model_config = SettingsConfigDict(env_prefix="SUPHUB_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    database_read_url: str = ""
    secret_key: SecretStr | None = None
    #: other server keys the hub can decrypt with (during a rotation), e.g. '["<64 hex>"]'
    extra_secret_keys: list[SecretStr] = Field(default_factory=list)
    reporting_tz: str = "Asia/Shanghai"
    public_base_path: str = ""
    trusted_proxies: list[str] = Field(default_factory=list)

    #: freeze start-up objects and collect garbage less often while serving (app/main.py)
    gc_tuning: bool = True

    # push limits (§4)
    max_records_per_batch: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024
    max_log_raw_bytes: int = 16 * 1024
    future_tolerance_s: int = 300

    # raw retention per kind, in days (§4 "older than the raw retention of their kind" is rejected)
    retention_metrics_days: int = 30
    retention_environment_days: int = 30
    retention_logs_days: int = 180
    retention_alarms_days: int = 365
    # rollups are kept longer than raw samples (§5); 0 keeps them for good
    retention_rollup_5m_days: int = 90
    retention_rollup_1h_days: int = 730
    retention_rollup_1d_days: int = 0

    # background jobs (rollups, retention, time partitions), run by ``supervision-hub scheduler``
    # and, unless ``serve --no-scheduler``, inside the API process
    rollup_interval_s: int = 60
    maintenance_interval_s: int = 3600
    #: daily partitions of raw samples created this many days ahead (PostgreSQL)
    partitions_ahead_days: int = 7

    # collectors (§8)
    #: hosts a source's base_url may name (empty: any); e.g. '["10.1.2.3", "cmp.gz.gov.cn"]'
    source_allowed_hosts: list[str] = Field(default_factory=list)
    collector_tick_s: int = 5
    collector_lease_s: int = 120
    collector_request_timeout_s: float = 30.0
    collector_run_timeout_s: int = 3600
    #: first retry delay of a collector request (doubling, with jitter, up to 30 s)
    collector_backoff_s: float = 0.5

    # fields whose changes are stored without history (§4.2)
    history_volatile_fields: list[str] = Field(default_factory=lambda: ["used_gib", "source_updated_at"])

    # exports (§5): more rows than this answer 413 1003
    export_max_rows: int = 5_000_000

    # rate limits (§9): [tokens per second, burst] per role, and per source IP before authentication
    rate_limit_enabled: bool = True
    rate_limit_roles: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "admin": (50.0, 200.0),
            "regulator": (20.0, 100.0),
            "provider": (20.0, 100.0),
            "integrator": (10.0, 50.0),
        }
    )
    rate_limit_ip: tuple[float, float] = (100.0, 400.0)

    # after a key rotation the previous secret stays valid this long
    client_rotation_overlap_s: int = 24 * 3600

    # SQLite waits this long for the write lock before answering 503
    sqlite_busy_timeout_ms: int = 30_000
    db_pool_size: int = 10
    #: how long a request waits for a pooled connection before answering 503 5001 (§13)
    db_pool_timeout_s: float = 10.0
    #: every statement's time limit (§13): the database cancels it and the answer is 400 1005
    statement_timeout_s: float = 30.0
    #: the time limit of an export's statements (§13)
    export_statement_timeout_s: float = 300.0
    #: the time limit of the background jobs' statements (rollups, retention, partitions,
    #: re-evaluation, warnings, periods): a job is not a request, a retention DELETE may be long;
    #: 0 = none (§13)
    job_statement_timeout_s: float = 600.0

    # hostile input (§14)
    #: bodies of the JSON administration endpoints are capped at this many bytes
    admin_max_body_bytes: int = 1024 * 1024
    #: a client that has not sent its request headers, or the next piece of its body, within this
    #: many seconds is disconnected (uvicorn has no such timeout of its own)
    request_read_timeout_s: float = 30.0
    #: bytes a second a body must average once ``request_read_timeout_s`` has passed: the whole body
    #: is answered 408 unless read by ``request_read_timeout_s + bytes received / this``
    request_min_rate_bps: float = Field(default=16384.0, gt=0)
    #: ``/docs``, ``/redoc`` and ``/openapi.json`` without a key; ``None``: open in development only
    docs_public: bool | None = None

    # collectors as untrusted peers (§8)
    #: a source's answer larger than this fails the run without buffering the rest
    source_max_response_bytes: int = 64 * 1024 * 1024

    # audit (§9)
    #: refused writes whose audit events could not be committed (store down) wait in memory, at
    #: most this many, and are chained once the store is back
    audit_backlog_max: int = 10_000

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, after refusing unknown ``SUPHUB_*`` names (§10)."""
        refuse = _RefuseUnknownNames(settings_cls, dotenv_settings)
        return refuse, init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("database_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Resolved once, when the settings are read: a later ``chdir`` cannot move the hub's data."""
        return value.expanduser().absolute()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        """Every entry an address or a network: a typo would silently trust nobody (§9)."""
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} 不是 IP 地址或网段 (not an IP address or network)") from None
        return [entry.strip() for entry in value]

    def startup_warnings(self) -> list[str]:
        """What an operator should know when the hub starts (logged by ``serve`` and ``scheduler``)."""
        warnings = []
        if self.env == "production" and self.is_sqlite:
            warnings.append(
                "SUPHUB_ENV=production 但数据库是 SQLite：生产环境请用 PostgreSQL "
                "(production on SQLite: use PostgreSQL, SUPHUB_DATABASE_URL=postgresql+asyncpg://…)"
            )
        return warnings

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hub.db').as_posix()}"

    def allowed_source_hosts(self) -> frozenset[str] | None:
        """The hosts collectors may reach, lower-cased; ``None`` when any host is allowed."""
        hosts = frozenset(h.strip().lower() for h in self.source_allowed_hosts if h.strip())
        return hosts or None

    @property
    def docs_are_public(self) -> bool:
        """``SUPHUB_DOCS_PUBLIC``, or open in development and closed in production (§14)."""
        if self.docs_public is not None:
            return self.docs_public
        return self.env != "production"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` and pass them explicitly)."""
    return Settings()
