"""The station page in a real headless Chromium: a unit arrives from the simulated line, an operator
overrides it with their key, and the API then reports the operator's verdict."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("QC_SCREENSHOT_DIR", "/tmp"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, *, data: dict | None = None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=5) as res:
        return json.loads(res.read())


def _make_key(data_dir: Path, name: str, role: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "qc", "keys", "create", name, "--role", role,
         "--database-url", f"sqlite:///{data_dir / 'qc.db'}"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return next(line for line in res.stdout.splitlines() if line.startswith("qc_"))


@pytest.fixture
def station(request, tmp_path, tiny_model_dir):
    """A running `qc edge` on a free port with the simulated line; yields (base URL, operator
    token). Parametrized indirectly, its param is a list of further key=value overrides."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    token = _make_key(data_dir, "op", "operator")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "edge.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qc", "edge", "--config", "configs/edge/default.yaml",
         f"api.port={port}", f"storage.data_dir={data_dir}", f"model.dir={tiny_model_dir}",
         "source.fps=2", "source.size_px=[240,320]", *getattr(request, "param", [])],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                _request(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        yield base, token
    finally:
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


def test_override_on_the_station_page_changes_the_verdict(station, browser):
    base, token = station
    lot = _request(f"{base}/api/v1/lots", data={"po": "PO-BROWSER", "style": "polo", "lot_size": 80},
                   token=token)
    deadline = time.monotonic() + 30  # units inspected before the lot opened belong to no lot
    while not _request(f"{base}/api/v1/units?lot={lot['id']}&limit=1")["items"]:
        assert time.monotonic() < deadline, "no unit recorded in the open lot"
        time.sleep(0.2)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/")

    page.wait_for_selector("#verdict[data-unit-id]", timeout=30_000)  # a unit arrived from the line
    page.wait_for_function("document.querySelectorAll('#recent .unit').length > 0")
    page.wait_for_function("document.getElementById('lot').textContent.includes('PO-BROWSER')")
    assert page.text_content("#lot").startswith(f"Lot #{lot['id']}")

    page.click("#override")  # no key yet: the page says so and sends nothing
    assert "operator key" in page.text_content("#review-msg")
    page.fill("#op-key", "qc_0000_not-a-key")
    page.click("#override")
    page.wait_for_selector("#review-msg.error >> text=key refused")

    page.fill("#op-key", token)
    page.fill("#review-note", "checked by hand")
    page.click("#override")
    page.wait_for_selector("#review-msg.ok", timeout=10_000)
    unit_id = page.get_attribute("#review-msg", "data-unit-id")
    shown_verdict = page.text_content("#verdict")
    page.screenshot(path=str(SCREENSHOTS / "qc_station_page.png"), full_page=True)

    unit = _request(f"{base}/api/v1/units/{unit_id}")
    assert unit["verdict"] in ("pass", "fail")
    assert unit["final_verdict"] != unit["verdict"]  # the click overrode the model
    assert unit["review"]["by"] == "op" and unit["review"]["note"] == "checked by hand"
    assert unit["lot"] == str(lot["id"])
    assert shown_verdict.startswith(unit["final_verdict"].upper())
    assert page.get_attribute("#review-msg", "data-final-verdict") == unit["final_verdict"]
    assert page.evaluate("localStorage.getItem('qc.operatorKey')") == token

    manager = browser.new_page(viewport={"width": 1280, "height": 1000})
    manager.on("pageerror", lambda exc: errors.append(str(exc)))
    manager.goto(f"{base}/manager")
    manager.wait_for_selector(f"#lots tr[data-lot-id='{lot['id']}']", timeout=15_000)
    manager.wait_for_selector("#trend svg")
    assert manager.get_attribute(f"#lots tr[data-lot-id='{lot['id']}'] a", "href") == (
        f"/api/v1/lots/{lot['id']}/report.pdf")
    manager.screenshot(path=str(SCREENSHOTS / "qc_manager_page.png"), full_page=True)
    assert not errors, errors


@pytest.mark.parametrize("station", [["api.require_keys=true"]], indirect=True)
def test_pages_of_a_station_that_needs_keys_for_reads_show_everything_with_a_key(station, browser):
    base, token = station
    with pytest.raises(urllib.error.HTTPError, match="401"):
        _request(f"{base}/api/v1/units?limit=1")
    lot = _request(f"{base}/api/v1/lots", data={"po": "PO-KEYED", "style": "tee", "lot_size": 20},
                   token=token)
    browsing = browser.new_context(viewport={"width": 1280, "height": 1000})  # one localStorage
    page = browsing.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/")
    # Without a key the page says what it needs instead of showing an empty line.
    page.wait_for_function(
        "document.getElementById('health').textContent.includes('needs an API key')")

    page.fill("#op-key", token)  # kept in localStorage, for the manager page too
    page.wait_for_selector("#verdict[data-unit-id]", timeout=30_000)
    page.wait_for_function("document.getElementById('lot').textContent.includes('PO-KEYED')")
    # The pictures come from keyed routes as well: an <img src> cannot send the key.
    page.wait_for_function("document.getElementById('latest-img').naturalWidth > 0", timeout=15_000)
    page.wait_for_function(
        "[...document.querySelectorAll('#recent .unit img')].some((i) => i.naturalWidth > 0)")
    assert "down" not in page.get_attribute("#health", "class")

    manager = browsing.new_page()  # the key typed on the station page, from localStorage
    manager.on("pageerror", lambda exc: errors.append(str(exc)))
    manager.goto(f"{base}/manager")
    manager.wait_for_selector(f"#lots tr[data-lot-id='{lot['id']}']", timeout=15_000)
    manager.wait_for_selector("#figures b")
    assert manager.text_content("#error") == ""
    assert not errors, errors
