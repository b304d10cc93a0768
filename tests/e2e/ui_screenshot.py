"""``make ui-screenshot``: the web page of the locally served model, as a PNG (the README's docs/img/ui.png).

Starts ``python -m arrest_server`` on free ports with the environment as it is (the local serving state of
``make pipeline-run``: champion, and the challenger under a canary), opens ``/ui/`` in headless Chromium
(:mod:`tests.e2e.browser`), scores one report (a retail theft in a department store in the Loop, when the model
knows those) and saves the top of the page::

    python tests/e2e/ui_screenshot.py --out docs/img/ui.png [--url http://127.0.0.1:8080]

With ``--url`` it photographs a server that is already running instead of starting one.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.e2e import browser  # noqa: E402

#: The report shown, where the served model knows these values.
REPORT = {
    "f-date": "2017-12-14T21:30",
    "f-type": "THEFT",
    "f-iucr": "0860",
    "f-location": "DEPARTMENT STORE",
    "f-area": "32",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import requests

    port = _free_port()
    argv = [sys.executable, "-m", "arrest_server", "--http_port", str(port), "--grpc_port", str(_free_port())]
    with open(log, "wb") as handle:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the model server stopped:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"the model server was not ready after 180 s (log: {log})")


def take(url: str, out: Path, width: int = 1360, height: int = 1250) -> None:
    """Open the page at ``url``, score :data:`REPORT`, save the top ``width`` x ``height`` pixels to ``out``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = browser.launch(playwright)
        page = chromium.new_page(viewport={"width": width, "height": height})
        page.goto(f"{url}/ui/")
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        page.fill("#f-date", REPORT["f-date"])
        for field in ("f-type", "f-iucr", "f-location", "f-area"):
            values = page.locator(f"#{field} option").evaluate_all("os => os.map(o => o.value)")
            if REPORT[field] in values:
                page.select_option(f"#{field}", REPORT[field])
        page.click("#explain")
        page.wait_for_selector(".answer", timeout=60_000)
        page.evaluate("window.scrollTo(0, 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        chromium.close()
    print(f"screenshot of {url}/ui/ -> {out}")


def main(argv: list[str] | None = None) -> int:
    """Take the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "ui.png")
    parser.add_argument(
        "--url", help="a running model server (default: start one on the local serving state)"
    )
    args = parser.parse_args(argv)
    reason = browser.missing()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    if args.url:
        take(args.url.rstrip("/"), args.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="ui-screenshot-") as tmp:
        proc, url = _start_server(Path(tmp) / "server.log")
        try:
            take(url, args.out)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
