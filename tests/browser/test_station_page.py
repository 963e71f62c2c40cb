"""The station page in a real headless Chromium: a unit arrives from the simulated line, an operator
overrides it with their key, and the API then reports the operator's verdict."""

import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from tests.browser.station_helpers import api_request

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _make_key(data_dir: Path, name: str, role: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "qc", "keys", "create", name, "--role", role,
         "--database-url", f"sqlite:///{data_dir / 'qc.db'}"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return next(line for line in res.stdout.splitlines() if line.startswith("qc_"))


@pytest.fixture
def station(request, tmp_path, start_station):
    """A running `qc edge` with the simulated line; yields (base URL, operator token). Parametrized
    indirectly, its param is a list of further key=value overrides."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    token = _make_key(data_dir, "op", "operator")
    return start_station(data_dir, *getattr(request, "param", [])), token


def test_override_on_the_station_page_changes_the_verdict(station, pages, screenshots):
    base, token = station
    lot = api_request(f"{base}/api/v1/lots", data={"po": "PO-BROWSER", "style": "polo", "lot_size": 80},
                      token=token)
    deadline = time.monotonic() + 30  # units inspected before the lot opened belong to no lot
    while not api_request(f"{base}/api/v1/units?lot={lot['id']}&limit=1")["items"]:
        assert time.monotonic() < deadline, "no unit recorded in the open lot"
        time.sleep(0.2)
    page = pages.open(f"{base}/")

    page.wait_for_selector("#verdict[data-unit-id]", timeout=30_000)  # a unit arrived from the line
    page.wait_for_function("document.querySelectorAll('#recent .unit').length > 0")
    page.wait_for_function("document.getElementById('lot').textContent.includes('PO-BROWSER')")
    assert page.text_content("#lot").startswith(f"Lot #{lot['id']}")

    page.click("#override")  # no key yet: the page says so and sends nothing
    assert "operator key" in page.text_content("#review-msg")
    pages.expect_console_error("status of 401")  # Chromium logs the refused request below
    page.fill("#op-key", "qc_0000_not-a-key")
    page.click("#override")
    page.wait_for_selector("#review-msg.error >> text=key refused")

    page.fill("#op-key", token)
    page.fill("#review-note", "checked by hand")
    page.click("#override")
    page.wait_for_selector("#review-msg.ok", timeout=10_000)
    unit_id = page.get_attribute("#review-msg", "data-unit-id")
    shown_verdict = page.text_content("#verdict")
    page.screenshot(path=str(screenshots / "qc_station_page.png"), full_page=True)

    unit = api_request(f"{base}/api/v1/units/{unit_id}")
    assert unit["verdict"] in ("pass", "fail")
    assert unit["final_verdict"] != unit["verdict"]  # the click overrode the model
    assert unit["review"]["by"] == "op" and unit["review"]["note"] == "checked by hand"
    assert unit["lot"] == str(lot["id"])
    assert shown_verdict.startswith(unit["final_verdict"].upper())
    assert page.get_attribute("#review-msg", "data-final-verdict") == unit["final_verdict"]
    assert page.evaluate("localStorage.getItem('qc.operatorKey')") == token

    manager = pages.open(f"{base}/manager", height=1000)
    manager.wait_for_selector(f"#lots tr[data-lot-id='{lot['id']}']", timeout=15_000)
    manager.wait_for_selector("#trend svg")
    assert manager.get_attribute(f"#lots tr[data-lot-id='{lot['id']}'] a", "href") == (
        f"/api/v1/lots/{lot['id']}/report.pdf")
    manager.screenshot(path=str(screenshots / "qc_manager_page.png"), full_page=True)


@pytest.mark.parametrize("station", [["api.require_keys=true"]], indirect=True)
def test_pages_of_a_station_that_needs_keys_for_reads_show_everything_with_a_key(station, pages):
    base, token = station
    with pytest.raises(urllib.error.HTTPError, match="401"):
        api_request(f"{base}/api/v1/units?limit=1")
    lot = api_request(f"{base}/api/v1/lots", data={"po": "PO-KEYED", "style": "tee", "lot_size": 20},
                      token=token)
    pages.expect_console_error("status of 401")  # the page's reads before a key is typed
    page = pages.open(f"{base}/", height=1000)
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

    manager = page.context.new_page()  # same context: the key typed above, from localStorage
    manager.goto(f"{base}/manager")
    manager.wait_for_selector(f"#lots tr[data-lot-id='{lot['id']}']", timeout=15_000)
    manager.wait_for_selector("#figures b")
    assert manager.text_content("#error") == ""
