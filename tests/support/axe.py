"""axe-core, the accessibility rules engine, run in the test browser; fetched once from the npm registry."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

from selenium import webdriver

VERSION = "4.11.0"
TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
INTEGRITY = "sha512-ilYanEU8vxxBexpJd8cWM4ElSQq4QctCLKih0TSfjIfCQTeyH/6zVrmIJfLPrKTKJRbiG+cfnZbQIjAlJmF1jQ=="
"""The registry's `dist.integrity` of that tarball: what is run is what was published."""
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def _cache() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "videojobs" / f"axe-core-{VERSION}.min.js"


def axe_script() -> str:
    """axe.min.js of the pinned version, downloaded once and checked against the registry's integrity."""
    cached = _cache()
    if not cached.exists():
        with urllib.request.urlopen(TARBALL, timeout=60) as response:
            tarball = response.read()
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
        assert digest == INTEGRITY, f"axe-core {VERSION} from the registry does not match its integrity"
        with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
            member = archive.extractfile("package/axe.min.js")
            assert member is not None
            script = member.read()
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        partial.write_bytes(script)
        partial.replace(cached)
    return cached.read_text()


def violations(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    """What axe finds against WCAG 2.2 A and AA on the page as it is now."""
    if not browser.execute_script("return typeof window.axe === 'object'"):
        browser.execute_script(axe_script())
    result: dict[str, Any] = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})"
        ".then(done, e => done({error: String(e)}))",
        WCAG_AA,
    )
    assert "error" not in result and result["passes"], result  # it ran its rules
    found: list[dict[str, Any]] = result["violations"]
    return found


def summary(found: list[dict[str, Any]]) -> list[str]:
    """One line per violation: its rule, impact and the elements at fault."""
    return [
        f"{item['id']} ({item['impact']}): {[node['target'] for node in item['nodes']]} — {item['help']}"
        for item in found
    ]
