"""The web app in a real browser (Debian's chromium through chromedriver) against a real `videojobs serve`.

One story, in order (the tests share one server and browser): sign in; a field error from the API shown
at its field; a job that fails while the LLM is down, with the API's sentence; a job cancelled from its
page; the main job watched to 100 %, its scenes' thumbnails, its video played (time advances, a subtitle
cue shows, a chapter seeks) and downloaded; the failed job retried from its page until it succeeds; a
revise of one scene; the list filtered and at phone width. Each page is screenshotted to
`test-artifacts/web/` (override with VIDEOJOBS_TEST_ARTIFACTS) once axe-core finds no WCAG 2.2 AA fault.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from api_harness import KEYS, kubernetes_api
from axe import summary, violations
from browser import chrome
from cli_runs import Served, cli_env, serve
from fake_llm import FIXTURES, FakeLLM
from fake_llm import serve as serve_llm
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

pytestmark = pytest.mark.render

KEY = "web-test-key-0123456789abcdef"
MODEL = "openai/gpt-4o-mini"
ARTIFACTS = (
    Path(os.environ.get("VIDEOJOBS_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")) / "web"
)
T = TypeVar("T")


@dataclass
class Page:
    """The browser on a server's web app, signed in with `key`."""

    url: str
    key: str
    browser: webdriver.Chrome

    def open(self, route: str = "") -> None:
        """Show `route` afresh (a URL that differs only by its hash would keep the page as it is)."""
        url = f"{self.url}/{route}"
        if self.browser.current_url == url:
            self.browser.refresh()
        else:
            self.browser.get(url)

    def find(self, css: str) -> WebElement:
        return self.browser.find_element(By.CSS_SELECTOR, css)

    def wait(self, condition: Callable[[webdriver.Chrome], T], timeout: float = 30, what: str = "") -> T:
        redrawn = (StaleElementReferenceException,)  # the page redraws live: look again
        return WebDriverWait(self.browser, timeout, 0.1, redrawn).until(condition, what)

    def wait_for(self, css: str, timeout: float = 30) -> WebElement:
        return self.wait(lambda b: _visible(b, css), timeout, f"no visible {css}")

    def attribute(self, css: str, name: str) -> str | None:
        """An attribute of the first element `css` selects, read at once (the page redraws live)."""
        value: str | None = self.browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e && e.getAttribute(arguments[1])",
            css,
            name,
        )
        return value

    def phase(self) -> str:
        return self.attribute("#view h2 [data-phase]", "data-phase") or ""

    def wait_for_phase(self, *phases: str, timeout: float = 60) -> str:
        return self.wait(lambda b: self.phase() in phases and self.phase(), timeout, f"phase not in {phases}")

    def screenshot(self, name: str) -> None:
        """Save the page as test-artifacts/web/<name>.png, once axe finds no WCAG 2.2 AA fault on it."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        assert summary(violations(self.browser)) == [], name

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def sign_in(self) -> None:
        self.open()
        self.wait_for("#api-key").send_keys(self.key, Keys.ENTER)
        self.wait_for("table.jobs")

    def job_id(self) -> str:
        return self.browser.current_url.rsplit("/", 1)[-1]

    def create(self, topic: str, **fields: str) -> str:
        """Fill the New video form and submit it; the new job's id, once its page shows."""
        self.open("#/new")
        self.fill({"topic": topic, **fields})
        self.find("form button[type=submit]").click()
        self.wait(lambda b: "#/jobs/" in b.current_url, what="the job page did not open")
        self.wait_for("#view h2 [data-phase]")
        return self.job_id()

    def fill(self, fields: dict[str, str]) -> None:
        for name, value in fields.items():
            element = self.wait_for(f"[name='{name}']")
            if element.tag_name == "select":
                Select(element).select_by_value(value)
            else:
                element.clear()
                element.send_keys(value)


@dataclass
class Site(Page):
    """`videojobs serve` with the fake LLM (down until started), the browser and its download folder."""

    served: Served
    llm: FakeLLM
    llm_port: int
    downloads: Path
    log: Path
    held_port: socket.socket | None

    def start_llm(self, delay_seconds: float = 0.0) -> None:
        """Bring the LLM up on the port the server was given (nothing answered there until now)."""
        assert self.held_port is not None
        self.held_port.close()
        self.held_port = None
        self.llm.delay_seconds = delay_seconds
        serve_llm(self.llm, self.llm_port)


def _visible(browser: webdriver.Chrome, css: str) -> WebElement | bool:
    found = [element for element in browser.find_elements(By.CSS_SELECTOR, css) if element.is_displayed()]
    return found[0] if found else False


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    held = socket.socket()  # bound, never listening: the LLM refuses connections until it starts
    held.bind(("127.0.0.1", 0))
    llm_port = held.getsockname()[1]
    env = cli_env(
        OUTPUT_DIR=str(root / "out"),
        VIDEOJOBS_API_KEYS=f"maker:user:{KEY}",
        VIDEOJOBS_API_LOCAL_WORKERS="1",
        VIDEOJOBS_API_SSE_PING_SECONDS="1",
        OPENAI_API_BASE=f"http://127.0.0.1:{llm_port}/v1",
        OPENAI_API_KEY="test-key",
        PLANNER_MODEL=MODEL,
        SCENE_MODEL=MODEL,
        HELPER_MODEL=MODEL,
        LLM_RETRIES="0",
    )
    log = root / "serve.log"
    llm = FakeLLM.from_folder(FIXTURES / "revise")  # three scenes, and their revise
    with serve(env, log) as served:
        (root / "downloads").mkdir()
        browser = chrome(root / "profile", root / "downloads")
        site = Site(served.url, KEY, browser, served, llm, llm_port, root / "downloads", log, held)
        try:
            yield site
        finally:
            browser.quit()
            if site.held_port is not None:
                site.held_port.close()


def test_the_page_is_served_with_a_strict_content_security_policy(site: Site) -> None:
    assert f"Web app: {site.served.url}/ (sign in with an API key)" in site.log.read_text()
    page = httpx.get(f"{site.served.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = dict(
        directive.strip().split(" ", 1) for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert policy["frame-ancestors"] == "'none'" and page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and " on" not in page.text.split("<body", 1)[1].split(">", 1)[0]
    module = httpx.get(f"{site.served.url}/web/js/app.js")
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]
    assert "content-security-policy" not in httpx.get(f"{site.served.url}/livez").headers


def test_sign_in_refuses_a_wrong_key_and_keeps_the_right_one_for_the_tab(site: Site) -> None:
    site.open()
    key = site.wait_for("#api-key")
    site.screenshot("01-sign-in")
    key.send_keys("not-the-key-0123456789")
    site.find("form button[type=submit]").click()
    alert = site.wait_for("[role=alert]")
    assert alert.text == "The API key is not valid."
    assert site.find("#api-key").get_attribute("aria-invalid") == "true"
    key.clear()
    key.send_keys(KEY, Keys.ENTER)  # the keyboard alone signs in
    site.wait_for("table.jobs")
    assert site.browser.execute_script("return sessionStorage.getItem('videojobs.apiKey')") == KEY
    assert site.browser.execute_script("return localStorage.length") == 0
    site.screenshot("02-jobs-empty")


def test_the_form_is_built_from_the_contract_and_shows_api_errors_at_their_fields(site: Site) -> None:
    site.open("#/new")
    for name in ("topic", "description", "quality", "max_scenes", "language", "voice.voice", "max_cost_usd"):
        element = site.wait_for(f"[name='{name}']")
        label = site.find(f"label[for='{element.get_attribute('id')}']")
        assert label.text.strip(), name  # every control is labelled
    scenes = site.find("[name='max_scenes']")
    assert (scenes.get_attribute("min"), scenes.get_attribute("max"), scenes.get_attribute("value")) == (
        "1",
        "12",
        "7",
    )
    assert [o.get_attribute("value") for o in Select(site.find("[name='quality']")).options][1:] == [
        "low",
        "medium",
        "high",
        "production",
    ]
    site.fill({"topic": "Anything", "max_cost_usd": "-1", "language": "not a tag!"})
    site.find("form button[type=submit]").click()
    cost_error = site.wait_for("#field-max_cost_usd-error span")
    assert "greater than 0" in cost_error.text
    assert site.find("[name='max_cost_usd']").get_attribute("aria-invalid") == "true"
    assert "should match pattern" in site.find("#field-language-error").text
    assert site.find("#field-topic-error").text == ""
    assert "#/new" in site.browser.current_url  # nothing was created
    site.screenshot("03-form-errors")
    assert site.api("GET", "/v1/videos/jobs").json()["data"] == []


def test_a_job_that_fails_shows_the_apis_sentence(site: Site) -> None:
    site.create("Failing while the LLM is down", quality="low", max_scenes="3")
    assert site.wait_for_phase("Failed", timeout=120) == "Failed"
    alert = site.wait_for("[role=alert]")
    job = site.api("GET", f"/v1/videos/jobs/{site.job_id()}").json()
    assert alert.text.startswith(job["error"]["message"]) and job["error"]["message"]
    assert site.find("[data-action=retry]").is_displayed()
    site.screenshot("04-job-failed")


def test_a_running_job_is_cancelled_from_its_page(site: Site) -> None:
    site.start_llm(delay_seconds=30)  # up, but slow: the job is still planning when cancelled
    site.create("A job to cancel", quality="low", max_scenes="3")
    site.wait(lambda b: site.phase() == "Running", 60, "the job did not start")
    site.find("[data-action=cancel]").click()
    assert site.wait_for_phase("Cancelled") == "Cancelled"
    assert site.browser.find_elements(By.CSS_SELECTOR, "[data-action=cancel]") == []
    site.screenshot("05-job-cancelled")
    site.llm.delay_seconds = 0


def test_the_main_job_is_watched_to_the_end_played_and_downloaded(site: Site) -> None:
    site.create("The Pythagorean theorem", quality="low", max_scenes="3", description="For pupils of 12.")
    progress_seen: set[int] = set()

    def finished(browser: webdriver.Chrome) -> bool:
        progress_seen.add(int(site.attribute("#view [data-progress]", "data-progress") or 0))
        return site.phase() == "Succeeded"

    site.wait(lambda b: site.phase() == "Running", 60, "the job did not start")
    site.wait(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".scene")) == 3, 120, "no scenes listed")
    site.screenshot("06-job-running")
    site.wait(finished, 600, "the job did not succeed")
    assert max(progress_seen) == 100 and len(progress_seen) >= 3  # live updates, not one final jump
    assert site.find("#view [data-progress]").text == "100 %"
    assert site.attribute("[data-scenes]", "data-scenes") == "3/3"
    assert float(site.attribute("[data-cost]", "data-cost") or 0) > 0
    site.wait(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, ".scene-thumb img")) == 3, 30, "no scene thumbnails"
    )
    assert all(
        site.browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
        for image in site.browser.find_elements(By.CSS_SELECTOR, ".scene-thumb img")
    )

    video = site.wait_for("video")
    site.wait(lambda b: b.execute_script("return arguments[0].readyState", video) >= 2, 30, "video not ready")
    tracks = site.browser.execute_script(
        "return Array.from(arguments[0].textTracks).map(t => [t.kind, t.mode])", video
    )
    assert ["subtitles", "showing"] in tracks and any(kind == "chapters" for kind, _ in tracks)
    site.browser.execute_script("arguments[0].muted = true; return arguments[0].play()", video)
    start = site.browser.execute_script("return arguments[0].currentTime", video)
    site.wait(
        lambda b: b.execute_script("return arguments[0].currentTime", video) > start + 0.5,
        30,
        "video not playing",
    )
    cue = site.wait(
        lambda b: b.execute_script(
            "const t = Array.from(arguments[0].textTracks).find(t => t.kind === 'subtitles');"
            "return t.activeCues && t.activeCues.length ? t.activeCues[0].text : null",
            video,
        ),
        30,
        "no subtitle cue showed",
    )
    subtitles = site.api("GET", f"/v1/videos/jobs/{site.job_id()}/subtitles").text
    assert cue and cue.split("\n")[0] in subtitles
    site.screenshot("07-job-playing")

    chapters = site.browser.find_elements(By.CSS_SELECTOR, "[data-chapter]")
    assert len(chapters) == 3
    chapters[2].click()
    metadata = site.api("GET", f"/v1/videos/jobs/{site.job_id()}/metadata").json()
    third = metadata["scenes"][2]["start_seconds"]
    site.wait(lambda b: b.execute_script("return arguments[0].currentTime", video) >= third, 10, "no seek")

    site.find("[data-link=download]").click()
    expected = site.api("GET", f"/v1/videos/jobs/{site.job_id()}/download").content
    downloaded = site.wait(lambda b: [p for p in site.downloads.glob("*.mp4")], 60, "nothing downloaded")
    site.wait(lambda b: downloaded[0].stat().st_size == len(expected), 30, "download incomplete")
    assert downloaded[0].read_bytes() == expected and downloaded[0].name == "the-pythagorean-theorem.mp4"


def test_the_failed_job_is_retried_from_its_page_until_it_succeeds(site: Site) -> None:
    site.open("#/jobs?status=Failed")
    link = site.wait_for("table.jobs tbody th a")
    assert link.text == "Failing while the LLM is down"
    assert len(site.browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")) == 1
    site.screenshot("08-jobs-filtered")
    link.click()
    site.wait_for("[data-action=retry]").click()
    site.wait(lambda b: site.phase() in ("Queued", "Running"), 30, "the retry did not start")
    assert site.browser.find_elements(By.CSS_SELECTOR, "[role=alert]") == []
    assert site.wait_for_phase("Succeeded", "Failed", timeout=600) == "Succeeded"
    site.wait_for("video")
    site.screenshot("09-job-retried")


def test_a_finished_job_is_revised_scene_by_scene_from_its_page(site: Site) -> None:
    parent = _job_by_topic(site, "The Pythagorean theorem")
    site.open(f"#/jobs/{parent}")
    site.wait_for("#revise-instructions")
    site.find("[data-action=revise]").click()
    assert (
        site.wait_for("form [role=alert]").text == "What to change: String should have at least 1 character"
    )
    assert site.find("#revise-instructions").get_attribute("aria-invalid") == "true"
    boxes = site.browser.find_elements(By.CSS_SELECTOR, "input[name=scene]")
    assert [box.get_attribute("value") for box in boxes] == ["1", "2", "3"]
    boxes[1].click()
    site.find("#revise-instructions").send_keys("Slower, with the squares in colour.")
    site.screenshot("10-revise")
    site.find("[data-action=revise]").click()
    site.wait(lambda b: parent not in b.current_url, 30, "the revised job's page did not open")
    revised = site.api("GET", f"/v1/videos/jobs/{site.job_id()}").json()
    assert revised["request"]["revision"]["scenes"] == [2]
    assert revised["request"]["revision"]["instructions"] == "Slower, with the squares in colour."
    assert site.wait_for_phase("Succeeded", "Failed", timeout=600) == "Succeeded"
    assert site.wait(lambda b: b.find_elements(By.CSS_SELECTOR, "video"), 30, "no player")


def test_the_list_is_newest_first_and_pages_fit_a_phone(site: Site) -> None:
    site.open("#/jobs")
    site.wait(lambda b: len(b.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")) == 4, 10, "four jobs")
    topics = [a.text for a in site.browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody th a")]
    assert topics == [
        "The Pythagorean theorem",  # the revise
        "The Pythagorean theorem",
        "A job to cancel",
        "Failing while the LLM is down",
    ]
    phases = [
        e.get_attribute("data-phase")
        for e in site.browser.find_elements(By.CSS_SELECTOR, "table.jobs [data-phase]")
    ]
    assert phases == ["Succeeded", "Succeeded", "Cancelled", "Succeeded"]
    site.screenshot("11-jobs")

    site.open("#/jobs?limit=3")  # pages of 3: the cursor brings the fourth
    site.wait(lambda b: len(b.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")) == 3, 10, "a page of 3")
    site.wait_for("[data-action=more]").click()
    site.wait(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")) == 4, 10, "the next page"
    )
    assert not site.find("[data-action=more]").is_displayed()

    created = site.api(
        "POST", "/v1/videos/generate", json={"topic": "Made elsewhere", "quality": "low"}
    ).json()
    row = f"table.jobs tbody tr[data-job-id='{created['id']}']"
    site.wait(lambda b: site.attribute("table.jobs tbody tr", "data-job-id") == created["id"], 10, "not live")
    site.api("POST", f"/v1/videos/jobs/{created['id']}/cancel")
    site.wait(
        lambda b: site.attribute(f"{row} [data-phase]", "data-phase") == "Cancelled", 10, "no live change"
    )
    site.browser.set_window_size(390, 844)
    try:
        for route, name in (
            ("#/jobs", "12-phone-jobs"),
            ("#/new", "13-phone-new"),
            (f"#/jobs/{_job_by_topic(site, 'The Pythagorean theorem')}", "14-phone-job"),
        ):
            site.open(route)
            site.wait_for("#view h1")
            time.sleep(0.5)  # let the video and thumbnails lay out
            overflow = site.browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{route} scrolls sideways by {overflow} px"
            site.screenshot(name)
    finally:
        site.browser.set_window_size(1280, 1000)


def test_the_key_never_reached_a_url_and_the_page_broke_no_rule(site: Site) -> None:
    assert KEY not in site.log.read_text()  # the server logs every request line
    problems = [
        entry["message"]
        for entry in site.browser.get_log("browser")
        if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]
    assert problems == []  # no CSP violation, no uncaught error


def _job_by_topic(site: Site, topic: str) -> str:
    jobs = site.api("GET", "/v1/videos/jobs").json()["data"]
    return next(str(job["id"]) for job in jobs if job["request"]["topic"] == topic)


@pytest.mark.k8s
def test_on_the_kubernetes_backend_the_page_follows_videojobs_cancels_and_retries(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The same page over VideoJobs: the real operator, the API's kubernetes backend, the stand-in runner."""
    with kubernetes_api(request, tmp_path, run_jobs=True) as api:
        browser = chrome(tmp_path / "profile")
        page = Page(api.url, KEYS["alice"], browser)
        try:
            page.sign_in()
            page.create("fail once, then finish")
            assert page.wait_for_phase("Failed") == "Failed"
            assert page.wait_for("[role=alert]").text.startswith("scene 2 failed")
            page.find("[data-action=retry]").click()
            page.wait(lambda b: page.phase() != "Failed", 30, "the retry did not start")
            assert page.wait_for_phase("Succeeded", "Failed") == "Succeeded"
            download = page.wait_for("[data-link=download]").get_attribute("href") or ""
            assert download.startswith(f"{api.url}/v1/videos/jobs/{page.job_id()}/download?expires=")
            assert (
                httpx.get(download).content
                == page.api("GET", f"/v1/videos/jobs/{page.job_id()}/download").content
            )
            page.screenshot("k8s-01-retried")

            page.create("hang in rendering")
            message = "[data-message]"
            page.wait(
                lambda b: b.find_element(By.CSS_SELECTOR, message).text == "Rendering scene 1/3", 60, "hung"
            )
            page.find("[data-action=cancel]").click()
            assert page.wait_for_phase("Cancelled") == "Cancelled"

            page.open("#/jobs")
            page.wait(
                lambda b: len(b.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")) == 2, 10, "two jobs"
            )
            phases = [
                e.get_attribute("data-phase")
                for e in browser.find_elements(By.CSS_SELECTOR, "table.jobs [data-phase]")
            ]
            assert phases == ["Cancelled", "Succeeded"]
            page.screenshot("k8s-02-jobs")
        finally:
            browser.quit()
