"""Benchmark: how fast the web app shows a job, in Debian's headless chromium against `videojobs serve`.

For each of N jobs (local backend, the fake LLM's three-scene fixture, low quality), one after another:
1. open the job's page right after creating it (a new tab's load, the modules, the OpenAPI document, the
   job and its event stream) until the page shows its first progress: wall time from `get()`;
2. the delay from each status change the server published to the page showing it (every change the
   page showed, its `data-progress` read every 10 ms and compared with the job's SSE stream read
   beside it by httpx);
3. from the job's completion (its `completed_at`) to the player being ready (`<video>` readyState ≥ 2:
   the signed URL fetched, the subtitles and metadata read, the first frame decoded); and from the
   Succeeded event's arrival at the plain SSE client to the player being ready (the page's own part).

Goal (issue 16): 1 and 3 each ≤ 1 s on the local backend.

Run: `.venv/bin/python bench/web.py [--jobs 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from selenium.webdriver.common.by import By

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from api_harness import server_sent  # noqa: E402
from browser import chrome  # noqa: E402
from cli_runs import cli_env, serve  # noqa: E402
from fake_llm import FIXTURES, FakeLLM  # noqa: E402
from fake_llm import serve as serve_llm  # noqa: E402

KEY = "bench-web-key-0123456789"
MODEL = "openai/gpt-4o-mini"
POLL_SECONDS = 0.01
AUTHORIZATION = {"Authorization": f"Bearer {KEY}"}


def follow(url: str, job_id: str, published: list[tuple[float, int, str]]) -> None:
    """Record (arrival time, progress, phase) of the job's status events, as a plain SSE client sees them."""
    events = f"{url}/v1/videos/jobs/{job_id}/events"
    with httpx.stream("GET", events, headers=AUTHORIZATION, timeout=None) as response:
        for event in server_sent(response.iter_lines()):
            if event is not None:
                published.append((time.time(), int(event.data["progress"]), event.data["phase"]))


def shown(browser: Any) -> tuple[int | None, int]:
    """The progress the page shows (None before any) and the player's readyState (0 without one)."""
    progress, ready = browser.execute_script(
        "const p = document.querySelector('#view [data-progress]');"
        "const v = document.querySelector('video');"
        "return [p && Number(p.getAttribute('data-progress')), v ? v.readyState : 0]"
    )
    return progress, ready


def one_job(browser: Any, url: str, topic: str) -> dict[str, Any]:
    """Create a job, open its page at once, and time what the page shows until its player is ready."""
    created = httpx.post(
        f"{url}/v1/videos/generate",
        headers=AUTHORIZATION,
        json={"topic": topic, "quality": "low", "max_scenes": 3},
    ).json()
    published: list[tuple[float, int, str]] = []
    threading.Thread(target=follow, args=(url, created["id"], published), daemon=True).start()
    browser.get("about:blank")  # so that the job's page is loaded afresh, not routed to within the app
    opened = time.time()
    browser.get(f"{url}/#/jobs/{created['id']}")
    first_shown: float | None = None
    seen: dict[int, float] = {}
    while True:
        progress, ready = shown(browser)
        now = time.time()
        if progress is not None:
            first_shown = first_shown or now
            seen.setdefault(progress, now)
        if ready >= 2:
            break
        failed = browser.find_elements(By.CSS_SELECTOR, "#view h2 [data-phase=Failed]")
        assert not failed, httpx.get(f"{url}/v1/videos/jobs/{created['id']}", headers=AUTHORIZATION).text
        time.sleep(POLL_SECONDS)
    player_ready = time.time()
    job = httpx.get(f"{url}/v1/videos/jobs/{created['id']}", headers=AUTHORIZATION).json()
    completed = datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00")).timestamp()
    first_arrival = {progress: at for at, progress, _ in reversed(published)}
    succeeded = next(at for at, _, phase in published if phase == "Succeeded")
    delays = [seen[p] - at for p, at in first_arrival.items() if p in seen and at >= (first_shown or 0)]
    assert first_shown is not None
    return {
        "open_to_progress": first_shown - opened,
        "update_delays": delays,
        "completion_to_player": player_ready - completed,
        "event_to_player": player_ready - succeeded,
        "phase": job["phase"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    llm = FakeLLM.from_folder(FIXTURES / "three-scenes")
    llm_server = serve_llm(llm)
    with tempfile.TemporaryDirectory(prefix="bench-web-") as folder:
        root = Path(folder)
        env = cli_env(
            OUTPUT_DIR=str(root / "out"),
            VIDEOJOBS_API_KEYS=f"bench:user:{KEY}",
            VIDEOJOBS_API_LOCAL_WORKERS="1",
            OPENAI_API_BASE=llm.url,
            OPENAI_API_KEY="test-key",  # what the fake LLM expects
            PLANNER_MODEL=MODEL,
            SCENE_MODEL=MODEL,
            HELPER_MODEL=MODEL,
        )
        with serve(env, root / "serve.log") as served:
            browser = chrome(root / "profile")
            try:
                browser.get(f"{served.url}/")
                browser.execute_script("sessionStorage.setItem('videojobs.apiKey', arguments[0])", KEY)
                runs = [one_job(browser, served.url, f"Bench topic {n}") for n in range(args.jobs)]
            finally:
                browser.quit()
    llm_server.shutdown()

    def line(name: str, values: list[float]) -> str:
        return (
            f"{name:<38} median {statistics.median(values) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"
            f"   (n={len(values)})"
        )

    print(f"jobs: {len(runs)}, phases: {sorted({run['phase'] for run in runs})}")
    print(line("page opened → first progress shown", [run["open_to_progress"] for run in runs]))
    print(line("status published → shown on the page", [d for run in runs for d in run["update_delays"]]))
    print(line("job completed → player ready", [run["completion_to_player"] for run in runs]))
    print(line("Succeeded event → player ready", [run["event_to_player"] for run in runs]))


if __name__ == "__main__":
    main()
