"""``mutabaqa screenshots``: a picture of each role's main portal page in each language.

Against a running portal (``mutabaqa dev`` by default), it makes sure one demo user per
role exists — created through the JSON API with the development admin's account and a
known, development-only password — then logs in as each through the login form, in
Debian's Chromium driven by Playwright (a ``dev`` dependency: no browser is downloaded),
and writes ``DIR/<role>-<language>.png`` for Arabic, French and English, plus the public
verification page (``public-<language>.png``).

Development only: the command refuses to run unless its settings say development
(``MUTABAQA_ENV``, as ``mutabaqa dev`` reads it) and the portal is on this machine (a
loopback address); and a production stack's admin cannot have the development placeholder
password this command logs in with by default.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from mutabaqa.cli_support import dev_settings, fail
from mutabaqa.settings import Environment, Settings

API = "/api/v1"
LANGUAGES = ("ar", "fr", "en")
#: The demo users' password: a placeholder, for development stacks only.
DEMO_PASSWORD = "change-me-demo-portal-user"
DEMO_CENTRE = "CTTH"
DEMO_SCHEME = "FFP2-NM-EN-149"
#: Chromium as Debian installs it (used when present; else Playwright's own, if installed).
CHROMIUM = "/usr/bin/chromium"
#: Demo users are made only in a portal on this machine (``mutabaqa dev``'s).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: A certificate number that exists nowhere: the public page says so when none is issued.
NO_CERTIFICATE = "MA-DEMO-0000-000000"


class ScreenshotError(RuntimeError):
    """The portal could not be reached, or refused the demo set-up."""


@dataclass(frozen=True)
class DemoRole:
    name: str  # in the file name
    role: str  # domain.permissions.Role's value
    path: str = "/"  # the role's main page


#: Each role's main page. Pages added for a role (its own home) go here.
ROLES = (
    DemoRole("manufacturer", "manufacturer"),
    DemoRole("technician", "lab_technician", "/lab"),
    DemoRole("officer", "compliance_officer", "/officer/queue"),
    DemoRole("admin", "admin", "/admin/organizations"),
)


def demo_email(role: DemoRole) -> str:
    return f"demo-{role.name}@mutabaqa.local"


def _check(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise ScreenshotError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def _token(client: httpx.Client, email: str, password: str) -> dict[str, str] | None:
    answer = client.post(f"{API}/auth/token", data={"username": email, "password": password})
    if answer.status_code != 200:
        return None
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _create_demo_user(client: httpx.Client, admin: dict[str, str], role: DemoRole) -> None:
    body: dict[str, Any] = {
        "email": demo_email(role),
        "full_name": f"Demo {role.name}",
        "password": DEMO_PASSWORD,
        "roles": [role.role],
    }
    if role.role == "manufacturer":
        organization = _check(
            client.post(
                f"{API}/organizations",
                headers=admin,
                json={
                    "name": "Fabricant de démonstration",
                    "name_ar": "مصنع تجريبي",
                    "registration_id": f"{uuid.uuid4().int % 10**15:015d}",
                    "address": "Zone industrielle, Casablanca",
                    "country": "MA",
                },
            ),
            201,
        )
        body["organization_id"] = organization["id"]
    if role.role == "lab_technician":
        body["centre_code"] = DEMO_CENTRE
    _check(client.post(f"{API}/users", headers=admin, json=body), 201)


def _demo_request(client: httpx.Client, maker: dict[str, str]) -> None:
    """A product and a draft request, so the lists are not empty (once)."""
    listed = _check(client.get(f"{API}/requests", headers=maker, params={"limit": 1}), 200)
    if listed.get("items"):
        return
    product = _check(
        client.post(
            f"{API}/products",
            headers=maker,
            json={
                "name": "Demi-masque filtrant FFP2",
                "name_ar": "نصف قناع ترشيحي",
                "brand": "Atlas",
                "model": "AT-DEMO",
                "description": "Demi-masque filtrant pliable, sans soupape.",
                "hs_code": "630790",
            },
        ),
        201,
    )
    _check(
        client.post(
            f"{API}/requests",
            headers=maker | {"Idempotency-Key": uuid.uuid4().hex},
            json={"product_id": product["id"], "scheme_code": DEMO_SCHEME, "kind": "certification"},
        ),
        200,
        201,
    )


def ensure_demo_users(url: str, admin_email: str, admin_password: str) -> str:
    """Create what is missing of the demo users (and a demo request); returns a
    certificate number to show on the public page (``NO_CERTIFICATE`` if none exists)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        admin: dict[str, str] | None = None
        tokens: dict[str, dict[str, str]] = {}
        for role in ROLES:
            token = _token(client, demo_email(role), DEMO_PASSWORD)
            if token is None:
                admin = admin or _token(client, admin_email, admin_password)
                if admin is None:
                    raise ScreenshotError(
                        f"cannot log in as the admin {admin_email} at {url} to create the demo "
                        "users (MUTABAQA_ADMIN_EMAIL / MUTABAQA_ADMIN_PASSWORD of the stack)"
                    )
                _create_demo_user(client, admin, role)
                token = _token(client, demo_email(role), DEMO_PASSWORD)
                if token is None:
                    raise ScreenshotError(f"the demo user {demo_email(role)} cannot log in")
            tokens[role.name] = token
        _demo_request(client, tokens["manufacturer"])
        issued = client.get(f"{API}/certificates", headers=tokens["officer"], params={"limit": 1})
        items = issued.json().get("items") if issued.status_code == 200 else None
        return str(items[0]["number"]) if items else NO_CERTIFICATE


def take_screenshots(
    url: str,
    out: Path,
    *,
    admin_email: str,
    admin_password: str,
    certificate: str | None = None,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Write ``out/<role>-<language>.png`` for every role and language, and
    ``out/public-<language>.png``; returns the files written."""
    from playwright.sync_api import Page, expect, sync_playwright

    url = url.rstrip("/")
    found = ensure_demo_users(url, admin_email, admin_password)
    certificate = certificate or found
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def shoot(page: Page, path: str, name: str, language: str, *, portal: bool = True) -> None:
        page.goto(f"{url}{path}?lang={language}")
        if portal:  # (the public page may speak every language at once)
            expect(page.locator("html")).to_have_attribute("lang", language)
        target = out / f"{name}-{language}.png"
        page.screenshot(path=str(target), full_page=True)
        written.append(target)
        say(f"wrote {target}")

    with sync_playwright() as playwright:
        executable = CHROMIUM if shutil.which(CHROMIUM) else None
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            for role in ROLES:
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(f"{url}/?lang=en")
                page.locator("#email").fill(demo_email(role))
                page.locator("#password").fill(DEMO_PASSWORD)
                page.locator("form[action='/login'] button[type=submit]").click()
                expect(page.locator("form[action='/logout']")).to_be_visible()
                for language in LANGUAGES:
                    shoot(page, role.path, role.name, language)
                context.close()
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            for language in LANGUAGES:
                shoot(page, f"/verify/{certificate}", "public", language, portal=False)
            context.close()
        finally:
            browser.close()
    return written


#: How long a stack started here (``--embedded``) may take to answer ``/health``.
STACK_READY_SECONDS = 180.0


@contextmanager
def embedded_stack(data_dir: Path, say: Callable[[str], None] = print) -> Iterator[str]:
    """``mutabaqa dev`` in ``data_dir`` on free ports (development defaults: no
    ``MUTABAQA_*`` variable of this process reaches it), until the block ends; yields its
    URL."""
    from mutabaqa.devstack import S3Ports, TemporalPorts, free_port, spawn, stop_together

    port, temporal, s3 = free_port(), TemporalPorts.free(), S3Ports.free()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MUTABAQA_")}
    argv = [
        sys.executable,
        "-m",
        "mutabaqa",
        "dev",
        f"--data-dir={data_dir}",
        f"--port={port}",
        f"--temporal-port={temporal.grpc}",
        f"--temporal-ui-port={temporal.ui}",
        f"--temporal-http-port={temporal.http}",
        f"--temporal-metrics-port={temporal.metrics}",
        f"--s3-port={s3.s3}",
        f"--s3-internal-port={s3.internal_base}",
    ]
    url = f"http://127.0.0.1:{port}"
    say(f"starting mutabaqa dev in {data_dir} ({url})...")
    child = spawn("dev", argv, log=data_dir / "dev.log", env=env | {"MUTABAQA_ENV": "development"})
    try:
        deadline = time.monotonic() + STACK_READY_SECONDS
        while not _healthy(url):
            if child.popen.poll() is not None or time.monotonic() > deadline:
                raise ScreenshotError(f"mutabaqa dev did not start:\n{child.log_tail(30)}")
            time.sleep(0.5)
        yield url
    finally:
        stop_together([child], 15.0)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def screenshots_command(
    out: Annotated[Path, typer.Option(help="Directory of the PNG files.")] = Path("screenshots"),
    url: Annotated[str, typer.Option(help="The running portal (mutabaqa dev's address).")] = (
        "http://127.0.0.1:8000"
    ),
    embedded: Annotated[
        bool,
        typer.Option(
            help="Start a stack of its own (mutabaqa dev in a temporary directory, free ports) "
            "instead of using --url, and stop it afterwards."
        ),
    ] = False,
    certificate: Annotated[
        str | None, typer.Option(help="Certificate number for the public page.")
    ] = None,
) -> None:
    """Development: picture each role's main portal page in Arabic, French and English.

    Creates one demo user per role if missing (with the admin of MUTABAQA_ADMIN_EMAIL /
    MUTABAQA_ADMIN_PASSWORD, development defaults), logs in as each in Chromium and writes
    OUT/<role>-<language>.png (manufacturer, technician, officer, admin, public).
    """
    try:
        if embedded:
            defaults = Settings.model_fields
            with (
                tempfile.TemporaryDirectory(prefix="mutabaqa-screenshots-") as data,
                embedded_stack(Path(data), say=typer.echo) as stack_url,
            ):
                take_screenshots(
                    stack_url,
                    out,
                    admin_email=str(defaults["admin_email"].default),
                    admin_password=defaults["admin_password"].default.get_secret_value(),
                    certificate=certificate,
                    say=typer.echo,
                )
            return
        settings = dev_settings()
        if settings.env is not Environment.DEVELOPMENT:
            fail("screenshots creates demo users: development only (MUTABAQA_ENV)", 2)
        if httpx.URL(url).host not in LOOPBACK_HOSTS:
            fail(f"screenshots creates demo users: only in a portal on this machine, not {url}", 2)
        take_screenshots(
            url,
            out,
            admin_email=settings.admin_email,
            admin_password=settings.admin_password.get_secret_value(),
            certificate=certificate,
            say=typer.echo,
        )
    except ScreenshotError as exc:
        fail(str(exc))
    except httpx.HTTPError as exc:
        fail(f"cannot reach the portal at {url}: {exc}")
