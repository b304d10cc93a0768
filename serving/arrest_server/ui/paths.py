"""Where the web page lives and which of its paths are open without the token (no imports of the server)."""

from __future__ import annotations

import re
from pathlib import Path

#: Where the page lives (KServe uses ``/``, ``/metrics``, ``/v1``, ``/v2``, ``/docs`` and ``/openapi.json``).
UI_PREFIX = "/ui"
#: The page's files (package data of ``arrest_server``).
STATIC_DIR = Path(__file__).with_name("static")
#: ``/ui``, ``/ui/`` and ``/ui/<file>`` (never ``/ui/api/...``): the paths of the static files.
_STATIC = re.compile(r"^/ui(?:/|/(?!api$)[A-Za-z0-9_-][A-Za-z0-9_.-]*)?$")


def is_static(method: str, path: str) -> bool:
    """Whether ``method path`` asks for one of the page's static files (open without the token)."""
    return method in ("GET", "HEAD") and bool(_STATIC.match(path))
