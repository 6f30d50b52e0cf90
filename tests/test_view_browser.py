"""`factory view` end to end in a real headless Chromium driven by Selenium: browse, filter, open a row, a diff
and a lineage, review two rows away into a new version; row content with a script stays text.

Debian's `chromium` and `chromium-driver` are installed with apt when missing (as root); screenshots of every
page land in tests/artifacts/view/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from factory.store import Store
from tests.view_support import XSS, ViewServer, build_store

ARTIFACTS = Path(__file__).parent / "artifacts" / "view"
CHROMIUM, DRIVER = "chromium", "chromedriver"


def _install_chromium() -> None:
    if shutil.which(CHROMIUM) and shutil.which(DRIVER):
        return
    if shutil.which("apt-get") is None:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (apt-get install -y chromium "
                    "chromium-driver); no apt-get here")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    sudo = [] if _is_root() else ["sudo", "-n"]
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env, timeout=600)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "chromium", "chromium-driver"], check=True, env=env,
                   timeout=900)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


@pytest.fixture(scope="module")
def browser():
    _install_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    # an explicit driver path: Selenium Manager would otherwise try to download one
    driver = webdriver.Chrome(service=Service(shutil.which(DRIVER)), options=options)
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    home = tmp_path_factory.mktemp("view-browser")
    versions = build_store(home)
    with ViewServer(home, "--review", "--reviewer", "tester") as s:
        yield s, home, versions


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def go(driver, element) -> None:
    """Click a link or submit button and wait until the new page has replaced the old one: reading the page
    straight after the click could otherwise find the old page's elements, which go stale mid-read."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 60, poll_frequency=0.1).until(ec.staleness_of(old))
    WebDriverWait(driver, 60, poll_frequency=0.1).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def text_of(driver, element_id: str, expected) -> str:
    """The text of an element once `expected(text)` holds (a script may still be filling it in)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    seen = []

    def ready(d):
        seen.append(d.find_element(By.ID, element_id).text)
        return expected(seen[-1])

    try:
        WebDriverWait(driver, 20, poll_frequency=0.1,
                      ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(ready)
    except Exception:
        pytest.fail(f"#{element_id} never read as expected; last text: {seen[-1:]!r}")
    return seen[-1]


def test_browse_filter_diff_lineage_and_review(browser, viewer):
    from selenium.webdriver.common.by import By

    server, home, versions = viewer
    b = browser
    b.get(server.url + "/")
    assert {a.text for a in b.find_elements(By.CSS_SELECTOR, "#datasets td:first-child a")} == {
        "seed", "gen", "gen-judged"}
    shot(b, "01-datasets")

    go(b, b.find_element(By.LINK_TEXT, versions["gen"]))
    assert b.find_element(By.ID, "version-id").text == versions["gen"]
    assert len(b.find_elements(By.CSS_SELECTOR, "#rows tbody tr")) == 50
    shot(b, "02-version")

    b.find_element(By.ID, "lo").send_keys("9")
    b.find_element(By.ID, "hi").send_keys("10")
    go(b, b.find_element(By.ID, "apply"))
    assert b.find_element(By.ID, "match-count").text.startswith("24 matching rows")
    scores = [float(td.text) for td in b.find_elements(By.CSS_SELECTOR, "#rows tbody tr td:last-child")]
    assert len(scores) == 24 and all(9 <= s <= 10 for s in scores)
    shot(b, "03-filtered")

    go(b, b.find_element(By.CSS_SELECTOR, "a.row-link"))
    roles = [e.text.lower() for e in b.find_elements(By.CSS_SELECTOR, ".chat .turn .role")]
    assert roles == ["system", "user", "assistant"]
    assert b.find_element(By.CSS_SELECTOR, "pre.code code").text.startswith("print(")
    shot(b, "04-row")

    b.get(f"{server.url}/v/gen-judged/{versions['judged']}")
    go(b, b.find_element(By.ID, "diff-go"))
    assert b.find_element(By.ID, "removed").text == "48" and b.find_element(By.ID, "added").text == "0"
    assert len(b.find_elements(By.CSS_SELECTOR, "#removed-rows tbody tr")) == 20
    shot(b, "05-diff")

    b.get(f"{server.url}/v/gen-judged/{versions['judged']}")
    go(b, b.find_element(By.ID, "lineage-link"))
    nodes = [a.text for a in b.find_elements(By.CSS_SELECTOR, "#lineage a.node-link")]
    assert nodes == [f"gen-judged@{versions['judged']}", f"gen@{versions['gen']}", f"seed@{versions['seed']}"]
    shot(b, "06-lineage")
    go(b, b.find_elements(By.CSS_SELECTOR, "#lineage a.node-link")[2])
    assert b.find_element(By.ID, "version-id").text == versions["seed"]

    b.get(f"{server.url}/v/gen/{versions['gen']}/charts")
    assert len(b.find_elements(By.CSS_SELECTOR, "#charts svg")) >= 3
    shot(b, "07-charts")

    b.get(f"{server.url}/v/gen-judged/{versions['judged']}/review")
    boxes = b.find_elements(By.CSS_SELECTOR, "input.drop")
    first_ids = [tr.find_elements(By.TAG_NAME, "td")[2].text
                 for tr in b.find_elements(By.CSS_SELECTOR, "#rows tbody tr")[:2]]
    boxes[0].click()
    boxes[1].click()
    assert text_of(b, "marked", lambda t: t.startswith("2 ")) == "2 rows marked to drop"
    shot(b, "08-review")
    go(b, b.find_element(By.ID, "save"))
    assert "Saved as a new version" in b.find_element(By.ID, "saved").text
    shot(b, "09-saved")
    go(b, b.find_element(By.ID, "lineage-link"))
    assert "review:human-review@1" in b.find_element(By.ID, "lineage").text

    store = Store(home)
    reviewed, judged = store.latest("gen-judged-reviewed"), store.get("gen-judged", versions["judged"])
    assert reviewed.manifest.rows == judged.manifest.rows - 2 == 70
    assert reviewed.manifest.stage.name == "human-review" and reviewed.manifest.config["reviewer"] == "tester"
    assert set(first_ids) and not set(first_ids) & set(reviewed.read()["id"].to_list())
    assert judged.read().height == 72  # the reviewed version is untouched

    b.get(server.url + "/runs")
    assert "nothing is being written" in b.find_element(By.ID, "writes").text
    shot(b, "10-runs")


def test_script_in_a_row_renders_as_text(browser, viewer):
    from selenium.webdriver.common.by import By

    server, _, versions = viewer
    for path in (f"/v/gen/{versions['gen']}/row/3", f"/v/gen/{versions['gen']}?q=pwned",
                 f"/v/gen/{versions['gen']}/review"):
        browser.get(server.url + path)
        assert browser.execute_script("return typeof window.__pwned") == "undefined"
        assert "<script>window.__pwned=1</script>" in browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_element(By.TAG_NAME, "main").text.count(XSS[:20]) >= 1
    shot(browser, "11-xss-row")


def test_runs_page_follows_a_write_as_it_happens(browser, viewer):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from factory.store import StageInfo

    server, home, _ = viewer
    browser.get(server.url + "/runs")
    browser.execute_script("window.__same_page = 1")  # the table must change without a reload
    writer = Store(home).writer("streaming", stage=StageInfo(kind="scheme", name="lamini", version="1"),
                                config={"n": 40}, shard_bytes=1)
    writer.write([{"instruction": f"q{i}", "response": f"<i>answer {i}</i>"} for i in range(40)])
    wait = WebDriverWait(browser, 20, poll_frequency=0.2)
    wait.until(lambda b: writer.version in b.find_element(By.ID, "writes").text)
    row = browser.find_element(By.CSS_SELECTOR, "#writes tbody tr").text
    assert "running" in row and " 40 " in f" {row} "
    assert "<i>answer 39</i>" in browser.find_element(By.ID, "latest").text  # text, not markup
    shot(browser, "12-runs-live")
    writer.commit()
    wait.until(lambda b: "nothing is being written" in b.find_element(By.ID, "writes").text)
    assert browser.execute_script("return window.__same_page") == 1


def test_review_marks_survive_paging(browser, viewer):
    from selenium.webdriver.common.by import By

    server, home, versions = viewer
    b = browser
    b.get(f"{server.url}/v/gen/{versions['gen']}/review")
    b.find_elements(By.CSS_SELECTOR, "input.drop")[0].click()
    go(b, b.find_element(By.ID, "next"))
    b.find_elements(By.CSS_SELECTOR, "input.drop")[1].click()
    assert text_of(b, "marked", lambda t: t.startswith("2 ")) == "2 rows marked to drop (1 on other pages)"
    b.find_element(By.ID, "out").clear()
    b.find_element(By.ID, "out").send_keys("gen-paged-review")
    go(b, b.find_element(By.ID, "save"))
    assert "Saved as a new version" in b.find_element(By.ID, "saved").text
    out = Store(home).latest("gen-paged-review")
    assert out.manifest.config["dropped"] == [0, 51] and out.manifest.rows == 118
