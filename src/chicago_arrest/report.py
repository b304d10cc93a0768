"""HTML reports for people (the KFP UI's HTML viewer, MLflow artifacts): self-contained, images inlined.

Only pandas is needed here, so steps that write a report do not pay for importing scikit-learn.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd


def image_tag(path: Path) -> str:
    """An ``<img>`` with the PNG at ``path`` inlined as base64."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def table_html(frame: pd.DataFrame, floats: str = "{:.4f}") -> str:
    """A frame as an HTML table with floats formatted by ``floats``."""
    return frame.to_html(index=False, float_format=lambda v: floats.format(v), border=0, classes="t")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table.t{border-collapse:collapse;font-size:13px}
table.t td,table.t th{padding:3px 9px;border-bottom:1px solid #eee;text-align:right}
table.t th{background:#f6f6f6} img{max-width:48%;margin:4px} .note{color:#555;font-size:13px}
"""


def html_page(title: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained HTML page (images inlined) for the KFP UI's HTML viewer.

    Args:
        title: Page title.
        sections: ``(heading, html body)`` pairs.

    Returns:
        The HTML document.
    """
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{content}" for h, content in sections)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>"
    )
