"""The newest local run's HTML reports, opened where a desktop browser exists (``make report``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Reports:
    """The HTML reports of the newest local run: ``name`` → path (``validate``, ``evaluate``, ``gate``...)."""

    run_dir: Path
    pages: dict[str, Path] = field(default_factory=dict)

    @property
    def main(self) -> Path:
        """The training report when there is one, else the last report of the run."""
        return self.pages.get("evaluate") or list(self.pages.values())[-1]


def latest_reports(root: Path) -> Reports | None:
    """The reports (``*.html`` copies) of the newest run folder under ``root`` that has any."""
    runs = sorted((p for p in root.glob("*-*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for run in runs:
        pages = sorted(run.rglob("*.html"), key=lambda p: p.stat().st_mtime)
        if pages:
            return Reports(run, {str(p.parent.relative_to(run)): p for p in pages})
    return None


def browser_command() -> list[str] | None:
    """The command that opens a file in the desktop's browser, if there is one.

    ``open`` on macOS, ``xdg-open`` in a Linux desktop session (``DISPLAY`` or ``WAYLAND_DISPLAY`` set);
    ``None`` elsewhere (ssh, containers, CI), where only the path is printed. (The standard library's
    ``webbrowser`` falls back to a text browser in the terminal there.)
    """
    if sys.platform == "darwin" and shutil.which("open"):
        return ["open"]
    desktop = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and desktop and shutil.which("xdg-open"):
        return ["xdg-open"]
    return None


def open_in_browser(path: Path) -> bool:
    """Open ``path`` in the desktop's browser without waiting for it; ``False`` when no browser can be opened."""
    command = browser_command()
    if command is None:
        return False
    subprocess.Popen(
        [*command, str(path.resolve())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return True
