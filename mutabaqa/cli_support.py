"""Helpers shared by the ``mutabaqa`` command's modules."""

from __future__ import annotations

from typing import NoReturn

import typer

from mutabaqa.settings import Settings, SettingsError, load_settings


def settings(**overrides: object) -> Settings:
    """The settings, or exit 2 with the configuration error."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"mutabaqa: {exc}", err=True)
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"mutabaqa: {message}", err=True)
    raise typer.Exit(code)
