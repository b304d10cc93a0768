"""Headless Chromium for the web page's tests and its screenshot: Debian's browser, driven by Playwright.

Playwright's own browser download cannot run here (and is not needed): the tests launch the system's Chromium
(``/usr/bin/chromium``, Debian's ``chromium`` package; ``UI_TEST_CHROMIUM`` names another binary). Without it,
or without the ``playwright`` package, the tests skip and say how to get them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

#: Flags of every launch: headless, no sandbox (root in CI), and nothing that talks to the internet.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
HOW_TO_GET_IT = (
    "the web page's browser tests need Chromium: `apt-get install -y chromium` (Debian/Ubuntu; .ci/run does it), "
    "or UI_TEST_CHROMIUM=/path/to/chromium, and the dev dependencies (`make install`: playwright)"
)


def chromium_path() -> str | None:
    """The Chromium binary to drive, or ``None`` when there is none."""
    named = os.environ.get("UI_TEST_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the browser tests cannot run here (``None``: they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"playwright is not installed: {HOW_TO_GET_IT}"
    if chromium_path() is None:
        return f"no Chromium found: {HOW_TO_GET_IT}"
    return None


def launch(playwright: Any) -> Any:
    """Start headless Chromium (the caller closes it)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
