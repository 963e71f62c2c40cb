"""Browser fixtures: Debian's chromium through Playwright, a running `qc edge`, and pages that fail
the test on any console error or uncaught exception."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from tests.browser.station_helpers import api_request, free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def screenshots() -> Path:
    return Path(os.environ.get("QC_SCREENSHOT_DIR", "/tmp"))


@pytest.fixture
def start_station(tmp_path, tiny_model_dir):
    """``start_station(data_dir, *overrides)`` runs `qc edge` on a free port with the simulated line
    and returns its base URL once /healthz answers; every station is stopped at teardown."""
    running = []

    def start(data_dir: Path, *overrides: str) -> str:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = tmp_path / f"edge-{port}.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "qc", "edge", "--config", "configs/edge/default.yaml",
             f"api.port={port}", f"storage.data_dir={data_dir}", f"model.dir={tiny_model_dir}",
             "source.fps=2", "source.size_px=[240,320]", *overrides],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
        )
        running.append((proc, log))
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                api_request(f"{base}/healthz")
                return base
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)

    yield start
    for proc, log in running:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class WatchedPages:
    """Opens pages and records every console error and uncaught exception on them.

    A page can break without the test's own assertions noticing (a chart that threw, a failed
    fetch); ``check`` fails the test on any such problem, and the fixture calls it at teardown.
    """

    def __init__(self, browser):
        self.browser = browser
        self.problems: list[str] = []
        self._expected: list[str] = []

    def open(self, url: str, *, width: int = 1280, height: int = 900):
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.on("page", self._watch)  # also the pages a link opens (target=_blank)
        page = context.new_page()
        page.goto(url)
        return page

    def _watch(self, page) -> None:
        page.on("console", lambda msg: self._console(msg, page))
        page.on("pageerror", lambda exc: self.problems.append(f"{page.url}: uncaught {exc}"))

    def expect_console_error(self, text: str) -> None:
        """A console error containing ``text`` is part of what the test does (a refused key)."""
        self._expected.append(text)

    def _console(self, msg, page) -> None:
        if msg.type == "error" and not any(text in msg.text for text in self._expected):
            self.problems.append(f"{page.url}: console error {msg.text!r} at {msg.location}")

    def check(self) -> None:
        if self.problems:
            pytest.fail("the browser reported problems:\n" + "\n".join(self.problems))


@pytest.fixture
def pages(browser):
    """``pages.open(url)``: a page whose console errors and uncaught exceptions fail the test."""
    watched = WatchedPages(browser)
    yield watched
    watched.check()
