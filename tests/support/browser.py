"""Debian's chromium, headless, driven through its chromedriver by Selenium (no browser download)."""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = "chromium and chromium-driver are not installed (make test installs them)"


def chrome(
    profile: Path, downloads: Path | None = None, size: tuple[int, int] = (1280, 1000)
) -> webdriver.Chrome:
    """A headless Chromium with its own profile; files it downloads land in `downloads`."""
    assert CHROMIUM is not None and CHROMEDRIVER is not None, MISSING
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the suite may run as root, where Chromium's own sandbox cannot start
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    if downloads is not None:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
