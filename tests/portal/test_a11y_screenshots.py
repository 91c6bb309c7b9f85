"""``mutabaqa screenshots`` against a running portal: one PNG per role and language, the demo
users made once (a second run reuses them), refused outside development."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from typer.testing import CliRunner

from mutabaqa.cli import app
from mutabaqa.screenshots import LANGUAGES, ROLES
from tests.portal.conftest import Live

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _environment(live: Live) -> dict[str, str]:
    return {
        "MUTABAQA_ENV": "development",
        "MUTABAQA_ADMIN_EMAIL": live.settings.admin_email,
        "MUTABAQA_ADMIN_PASSWORD": live.settings.admin_password.get_secret_value(),
    }


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _changed_share(first: Path, second: Path, height: int = 600) -> float:
    """The share of pixels that differ in the top ``height`` pixels of two pictures."""
    with Image.open(first) as one, Image.open(second) as two:
        box = (0, 0, min(one.width, two.width), min(one.height, two.height, height))
        diff = ImageChops.difference(one.convert("L").crop(box), two.convert("L").crop(box))
        changed = sum(diff.histogram()[1:])
    return changed / (box[2] * box[3])


@pytest.mark.timeout(600)
def test_screenshots_of_every_role_in_every_language(live: Live, tmp_path: Path) -> None:
    out = tmp_path / "shots"
    result = CliRunner().invoke(
        app, ["screenshots", "--out", str(out), "--url", live.url], env=_environment(live)
    )
    assert result.exit_code == 0, result.output
    names = [role.name for role in ROLES] + ["public"]
    expected = {f"{name}-{language}.png" for name in names for language in LANGUAGES}
    assert {path.name for path in out.iterdir()} == expected
    for path in out.iterdir():
        width, height = _png_size(path)
        assert width >= 1000 and height >= 600, (path, width, height)
        assert path.stat().st_size > 5_000, path  # a page, not a blank image
    # The Arabic and French pictures of a page differ visibly (other words, the layout
    # mirrored): a good share of the header's pixels changed, not a stray few.
    assert _changed_share(out / "manufacturer-ar.png", out / "manufacturer-fr.png") > 0.01

    again = CliRunner().invoke(
        app,
        ["screenshots", "--out", str(tmp_path / "again"), "--url", live.url],
        env=_environment(live) | {"MUTABAQA_ADMIN_PASSWORD": "not-the-admin-password-at-all"},
    )
    assert again.exit_code == 0, again.output  # the demo users exist: no admin needed


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("http://127.0.0.1:9", {"MUTABAQA_ENV": "production"}),
        ("https://portal.example.ma", {"MUTABAQA_ENV": "development"}),
    ],
)
def test_screenshots_refuse_outside_development(
    tmp_path: Path, url: str, env: dict[str, str]
) -> None:
    result = CliRunner().invoke(
        app, ["screenshots", "--out", str(tmp_path / "shots"), "--url", url], env=env
    )
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "shots").exists()


@pytest.mark.stack
@pytest.mark.timeout(600)
def test_screenshots_with_a_stack_of_their_own(tmp_path: Path) -> None:
    """``--embedded``: ``mutabaqa dev`` in a temporary directory on free ports, stopped after."""
    out = tmp_path / "shots"
    result = CliRunner().invoke(app, ["screenshots", "--embedded", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len([path for path in out.iterdir() if _png_size(path)[0] >= 1000]) == 15
