"""Configuration and the command line, as an operator meets them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mutabaqa.settings import SettingsError, load_settings

COMMANDS = ("dev", "api", "worker", "migrate", "seed", "codec-server")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert set(COMMANDS) <= listed, result.stdout


def test_dev_help_documents_ports_and_data_dir() -> None:
    result = run_cli("dev", "--help")
    assert result.returncode == 0
    for option in ("--data-dir", "--port", "--temporal-port", "--temporal-ui-port", "--s3-port"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("command", "named", "not_named"),
    [
        ("api", ("MUTABAQA_JWT_SECRET", "MUTABAQA_ADMIN_PASSWORD", "MUTABAQA_S3_SECRET_KEY"), ()),
        ("dev", ("MUTABAQA_JWT_SECRET", "MUTABAQA_ADMIN_PASSWORD", "MUTABAQA_S3_SECRET_KEY"), ()),
        # The worker uses the S3 secret, never the JWT secret nor the admin password.
        ("worker", ("MUTABAQA_S3_SECRET_KEY",), ("MUTABAQA_JWT_SECRET", "MUTABAQA_ADMIN_PASSWORD")),
    ],
)
def test_production_with_placeholder_secret_refuses_to_start(
    command: str, named: tuple[str, ...], not_named: tuple[str, ...]
) -> None:
    result = run_cli(command, env={"MUTABAQA_ENV": "production"})
    assert result.returncode == 2
    for variable in named:
        assert variable in result.stderr
    for variable in not_named:
        assert variable not in result.stderr
    assert "placeholder" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrations_need_no_jwt_secret_but_the_audit_key(tmp_path: Path) -> None:
    """The migrate job is given the database and the audit key (a migration links audit
    events), not the API's secrets; it refuses to link under the development key."""
    env = {"MUTABAQA_ENV": "production", "MUTABAQA_DATA_DIR": str(tmp_path)}
    refused = run_cli("migrate", env=env)
    assert refused.returncode == 2 and "MUTABAQA_AUDIT_KEY" in refused.stderr
    assert "MUTABAQA_JWT_SECRET" not in refused.stderr
    assert not (tmp_path / "mutabaqa.db").exists()
    result = run_cli("migrate", env=env | {"MUTABAQA_AUDIT_KEY": "k" * 32})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mutabaqa.db").exists()


def test_production_names_only_the_placeholders_left() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(
            env="production",
            jwt_secret="x" * 40,
            s3_secret_key="real-s3-secret",
        )
    message = str(err.value)
    assert "MUTABAQA_ADMIN_PASSWORD" in message
    assert "MUTABAQA_JWT_SECRET" not in message
    assert "MUTABAQA_S3_SECRET_KEY" not in message


def test_production_accepts_real_secrets() -> None:
    settings = load_settings(
        env="production",
        jwt_secret="x" * 40,
        s3_secret_key="real-s3-secret",
        admin_password="a-real-password",
        audit_key="k" * 32,
        temporal_seal_key="s" * 40,
        temporal_payload_keys="k1:" + "A" * 43 + "=",
    )
    assert not settings.is_development


def test_production_refuses_development_temporal_keys_and_short_seal_keys() -> None:
    real = {
        "jwt_secret": "x" * 40,
        "s3_secret_key": "real",
        "admin_password": "a-real-password",
        "audit_key": "k" * 32,
    }
    with pytest.raises(SettingsError) as err:
        load_settings(env="production", **real)
    assert "MUTABAQA_TEMPORAL_SEAL_KEY" in str(err.value)
    assert "MUTABAQA_TEMPORAL_PAYLOAD_KEYS" in str(err.value)
    # A real key first does not make a development key further down the list acceptable.
    keys = "k1:" + "A" * 43 + "=,change-me-dev:" + "B" * 43 + "="
    with pytest.raises(SettingsError, match="MUTABAQA_TEMPORAL_PAYLOAD_KEYS"):
        load_settings(
            env="production", temporal_seal_key="s" * 40, temporal_payload_keys=keys, **real
        )
    with pytest.raises(SettingsError, match="MUTABAQA_TEMPORAL_SEAL_KEY must be at least 32"):
        load_settings(
            env="production",
            temporal_seal_key="short",
            temporal_payload_keys="k1:" + "A" * 43 + "=",
            **real,
        )


@pytest.mark.parametrize(
    ("keys", "complaint"),
    [
        ("no-colon", "<key id>:<base64 key>"),
        ("k1:not base64!", "not valid base64"),
        ("k1:" + "A" * 8, "16, 24 or 32 bytes"),
        ("k1:" + "A" * 43 + "=,k1:" + "B" * 43 + "=", "appears twice"),
    ],
)
def test_payload_keys_are_checked_at_start(keys: str, complaint: str) -> None:
    with pytest.raises(SettingsError, match="MUTABAQA_TEMPORAL_PAYLOAD_KEYS") as err:
        load_settings(temporal_payload_keys=keys)
    assert complaint in str(err.value)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUTABAQA_TEMPORAL_TASK_QUEUE", "centre-a")
    monkeypatch.setenv("MUTABAQA_RETENTION_DAYS", "30")
    monkeypatch.setenv("MUTABAQA_DATA_DIR", "/srv/mutabaqa")
    settings = load_settings()
    assert settings.temporal_task_queue == "centre-a"
    assert settings.retention_days == 30
    assert settings.resolved_database_url == "sqlite:////srv/mutabaqa/mutabaqa.db"


def test_invalid_value_is_reported_by_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUTABAQA_RETENTION_DAYS", "-1")
    with pytest.raises(SettingsError, match="MUTABAQA_RETENTION_DAYS"):
        load_settings()


@pytest.mark.parametrize("command", ["api", "worker"])
def test_production_without_a_signing_key_refuses_to_start(command: str, tmp_path: Path) -> None:
    result = run_cli(
        command,
        env={
            "MUTABAQA_ENV": "production",
            "MUTABAQA_JWT_SECRET": "x" * 40,
            "MUTABAQA_S3_SECRET_KEY": "real-s3-secret",
            "MUTABAQA_ADMIN_PASSWORD": "a-real-password",
            "MUTABAQA_AUDIT_KEY": "k" * 32,
            "MUTABAQA_TEMPORAL_SEAL_KEY": "s" * 40,
            "MUTABAQA_TEMPORAL_PAYLOAD_KEYS": "k1:" + "A" * 43 + "=",
            "MUTABAQA_DATA_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 2
    # The worker needs the private key; the API only its public half.
    variable = (
        "MUTABAQA_SIGNING_PUBLIC_KEY_PATH" if command == "api" else "MUTABAQA_SIGNING_KEY_PATH"
    )
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "keys").exists(), "a key was generated in production"


@pytest.mark.parametrize("command", ["api", "worker"])
def test_with_no_environment_set_the_services_start_in_production(command: str) -> None:
    result = run_cli(command)  # no MUTABAQA_* variable at all
    assert result.returncode == 2
    assert "placeholder" in result.stderr and "production" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_settings_default_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUTABAQA_ENV", raising=False)
    with pytest.raises(SettingsError, match="placeholder"):
        load_settings()
    assert load_settings(env="development").is_development


def test_dev_runs_in_development_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from mutabaqa.cli_support import dev_settings as _dev_settings

    monkeypatch.delenv("MUTABAQA_ENV", raising=False)
    assert _dev_settings().is_development
    monkeypatch.setenv("MUTABAQA_ENV", "production")
    with pytest.raises(typer.Exit):  # the placeholders refused, as for `api`
        _dev_settings()


def test_image_runs_in_production() -> None:
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^\s*MUTABAQA_ENV=production\b", dockerfile, re.MULTILINE), dockerfile


def test_object_lock_is_compliance_in_production_unless_configured() -> None:
    real = {
        "jwt_secret": "x" * 40,
        "s3_secret_key": "s",
        "admin_password": "a-real-password",
        "audit_key": "k" * 32,
        "temporal_seal_key": "s" * 40,
        "temporal_payload_keys": "k1:" + "A" * 43 + "=",
    }
    assert load_settings(env="production", **real).resolved_object_lock_mode == "COMPLIANCE"
    assert load_settings(env="development").resolved_object_lock_mode == "GOVERNANCE"
    chosen = load_settings(env="production", s3_object_lock_mode="GOVERNANCE", **real)
    assert chosen.resolved_object_lock_mode == "GOVERNANCE"
    with pytest.raises(SettingsError, match="MUTABAQA_S3_OBJECT_LOCK_MODE"):
        load_settings(s3_object_lock_mode="LOOSE")
