"""The settings as the hub reads them (§10): misspelt names and invalid values are refused, naming
them, instead of passing silently. The command line's one-line refusals are in tests/test_cli.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, UnknownSettingError


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg,arg-type]


def test_an_unknown_suphub_environment_variable_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPHUB_MAX_BODY_BYTE", "1")
    with pytest.raises(UnknownSettingError) as refused:
        _settings()
    assert refused.value.name == "SUPHUB_MAX_BODY_BYTE" and "SUPHUB_MAX_BODY_BYTE" in str(refused.value)


def test_an_unknown_name_in_the_env_file_is_refused(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("OTHER_TOOL=1\nSUPHUB_ENV=development\nsuphub_trusted_proxy=10.0.0.1\n")
    with pytest.raises(UnknownSettingError) as refused:
        Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert refused.value.name == "SUPHUB_TRUSTED_PROXY" and str(env_file) in str(refused.value)


def test_names_read_by_sources_tests_drills_and_compose_are_not_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "SUPHUB_SOURCE_CITY_TOKEN",
        "SUPHUB_TEST_PG_DSN",
        "SUPHUB_DRILL_HUB_TREE",
        "SUPHUB_DB_PASSWORD",
        "SUPHUB_ALEMBIC_INI",
    ):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("SUPHUB_REPORTING_TZ", "Asia/Urumqi")  # a real setting, of course
    assert _settings().reporting_tz == "Asia/Urumqi"


def test_an_invalid_trusted_proxy_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(trusted_proxies=["10.0.0.0/8", "proxy.example"])
    assert "proxy.example" in str(refused.value) and "trusted_proxies" in str(refused.value)
    accepted = _settings(trusted_proxies=[" 10.0.0.0/8", "192.168.1.7", "fd00::/8"])
    assert accepted.trusted_proxies == ["10.0.0.0/8", "192.168.1.7", "fd00::/8"]


def test_the_data_directory_is_resolved_once_to_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = _settings(data_dir=Path("var"))
    monkeypatch.chdir("/")
    assert settings.data_dir == tmp_path / "var"
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'var' / 'hub.db'}"


def test_production_on_sqlite_warns_and_on_postgresql_does_not() -> None:
    warned = _settings(env="production").startup_warnings()
    assert len(warned) == 1 and "SQLite" in warned[0] and "SUPHUB_ENV=production" in warned[0]
    assert _settings(env="development").startup_warnings() == []
    postgres = "postgresql+asyncpg://hub@db:5432/suphub"
    assert _settings(env="production", database_url=postgres).startup_warnings() == []
