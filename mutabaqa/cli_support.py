"""Helpers shared by the ``mutabaqa`` command's modules: settings per process (each refuses
only the placeholder secrets it uses) and failing with a message."""

from __future__ import annotations

import os
from typing import NoReturn

import typer

from mutabaqa.settings import SECRETS, Environment, Settings, SettingsError, load_settings_for

#: The worker's secrets (the JWT secret and the admin password are the API's only).
WORKER_SECRETS = ("s3_secret_key", "audit_key", "temporal_seal_key", "temporal_payload_keys")
#: What a command that talks to the product's workflows needs.
TEMPORAL_SECRETS = ("temporal_seal_key", "temporal_payload_keys")


def settings(secrets: tuple[str, ...] = (), **overrides: object) -> Settings:
    """The settings of a command that uses ``secrets`` (placeholders refused outside
    development), or exit 2 with the configuration error."""
    try:
        return load_settings_for(secrets, {k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"mutabaqa: {exc}", err=True)
        raise typer.Exit(2) from None


def dev_settings(**overrides: object) -> Settings:
    """``mutabaqa dev`` runs in development unless ``MUTABAQA_ENV`` says otherwise."""
    if "MUTABAQA_ENV" not in os.environ:
        overrides["env"] = Environment.DEVELOPMENT
    return settings(SECRETS, **overrides)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"mutabaqa: {message}", err=True)
    raise typer.Exit(code)
