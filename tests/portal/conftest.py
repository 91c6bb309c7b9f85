"""Fixtures of the portal's browser tests: the API under uvicorn in a thread of the test
process, on a free port (as ``mutabaqa api`` runs it), and Debian's Chromium, headless,
driven by Playwright (``executable_path``: no browser is downloaded)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from api.app import create_app
from mutabaqa.devstack import free_port
from mutabaqa.settings import Settings
from tests.conftest import RunningWorker

CHROMIUM = "/usr/bin/chromium"


@dataclass
class Live:
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def live(settings: Settings, worker: RunningWorker) -> Iterator[Live]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="portal-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), "Debian's chromium is needed (.ci/run installs it)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
