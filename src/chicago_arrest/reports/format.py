"""Numbers and tables for people: the one set of formatting helpers of every report, the model card and the CLI.

A value is shown according to its *kind*:

========== ================================================ =====================
kind       rule                                             example
========== ================================================ =====================
``count``  integer, thousands separators                    ``225381.0`` → ``225,381``
``rate``   a share as a percentage, 1 decimal               ``0.2346`` → ``23.5 %``
``metric`` a score (ROC-AUC, ECE, Brier, PSI): 3 decimals,  ``0.81234`` → ``0.812``,
           at least 3 significant digits below 0.1          ``0.01234`` → ``0.0123``
``number`` anything else: 3 significant digits, separators  ``1234.5`` → ``1,234``, ``12.345`` → ``12.3``
``text``   as it is                                         ``THEFT``
========== ================================================ =====================

A missing value (``None``, NaN, text that is not a number) is shown as :data:`MISSING`. Tables
(:func:`html_table`, :func:`md_table`) take a :class:`Column` per shown column: a short header, the kind, and
one line for the legend printed under the table. This module imports only the standard library and pandas, so
any layer above ``reports`` (release, steps, CLI) may use it for its one-line summaries.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

Kind = Literal["count", "rate", "metric", "number", "text"]
#: How a missing value is shown.
MISSING = "-"


def _float(value: Any) -> float | None:
    """``value`` as a finite float (numbers and numeric text), else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def count(value: Any) -> str:
    """An integer with thousands separators: ``225381.0`` → ``225,381`` (rounded; missing → ``-``)."""
    v = _float(value)
    return MISSING if v is None else f"{round(v):,}"


def rate(value: Any, decimals: int = 1) -> str:
    """A share as a percentage: ``0.2346`` → ``23.5 %`` (``decimals`` after the point)."""
    v = _float(value)
    return MISSING if v is None else f"{v * 100:,.{decimals}f} %"


def number(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits and thousands separators, never in exponent form.

    ``1234.5`` → ``1,234``, ``12.345`` → ``12.3``, ``0.012345`` → ``0.0123``, ``2.0`` → ``2``.
    """
    v = _float(value)
    if v is None:
        return MISSING
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def metric(value: Any, decimals: int = 3) -> str:
    """A score in the units of its metric (ROC-AUC, ECE, PSI...): ``0.81234`` → ``0.812``.

    Three decimals, so the values of a column line up; below 0.1 as many more as keep three significant
    digits (``0.01234`` → ``0.0123``), so a small calibration error does not read as ``0.012``.
    """
    v = _float(value)
    if v is None:
        return MISSING
    if v != 0 and abs(v) < 0.1:
        decimals = max(decimals, 2 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


def interval(value: Any, low: Any, high: Any, kind: Kind = "metric") -> str:
    """A value and its interval: ``0.812 (0.805–0.819)``; just the value when the bounds are missing."""
    shown = fmt(value, kind)
    if _float(low) is None or _float(high) is None:
        return shown
    return f"{shown} ({fmt(low, kind)}\N{EN DASH}{fmt(high, kind)})"


def fmt(value: Any, kind: Kind = "number") -> str:
    """``value`` shown as its ``kind`` (see the module's table); ``text`` shows it as it is."""
    if kind == "count":
        return count(value)
    if kind == "rate":
        return rate(value)
    if kind == "metric":
        return metric(value)
    if kind == "number":
        return number(value)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    return str(value)


@dataclass(frozen=True)
class Column:
    """How a table shows one column.

    Attributes:
        header: The short header.
        kind: How its values are shown (:func:`fmt`).
        legend: One line under the table saying what the header means (none when empty).
    """

    header: str
    kind: Kind = "number"
    legend: str = ""


#: The columns every report shares, by the name the figures carry in frames and JSON (one home for each
#: header and its legend).
COLUMNS: dict[str, Column] = {
    "rows": Column("rows", "count", "test rows"),
    "arrest_rate": Column("arrests", "rate", "observed arrest rate"),
    "mean_predicted": Column("predicted", "rate", "mean predicted probability of arrest"),
    "gap": Column("gap", "rate", "predicted minus observed arrest rate (percentage points)"),
    "roc_auc": Column(
        "ROC-AUC", "metric", "area under the ROC curve: 1 ranks every arrest first, 0.5 is chance"
    ),
    "pr_auc": Column("PR-AUC", "metric", "area under the precision-recall curve (average precision)"),
    "ece": Column(
        "ECE", "metric", "expected calibration error: mean |predicted - observed| over 15 probability bins"
    ),
    "brier": Column("Brier", "metric", "mean squared error of the probability"),
    "f1": Column("F1", "metric", "harmonic mean of precision and recall at the threshold"),
    "precision": Column("precision", "rate", "share of predicted arrests that were arrests"),
    "recall": Column("recall", "rate", "share of arrests that were predicted"),
    "fpr": Column("FPR", "rate", "false-positive rate at the threshold: no arrest, predicted arrest"),
    "fnr": Column("FNR", "rate", "false-negative rate at the threshold: arrest, predicted none"),
    "threshold": Column("threshold", "metric", "probability at or above which the model predicts an arrest"),
    "psi": Column("PSI", "metric", "population stability index of the current records against the reference"),
}


def _columns(
    frame: pd.DataFrame, columns: Mapping[str, Column | str] | Sequence[str] | None
) -> dict[str, Column]:
    """The shown columns in order.

    A mapping gives each frame column a :class:`Column` (a plain string: a header of kind ``text``); a sequence
    names frame columns, shown as :data:`COLUMNS` has them (as text under their own name otherwise); ``None``
    shows every column, its kind guessed from the dtype.
    """
    if columns is None:
        out = {}
        for name in frame.columns:
            dtype = frame[name].dtype
            kind: Kind = (
                "count"
                if pd.api.types.is_integer_dtype(dtype)
                else "number"
                if pd.api.types.is_float_dtype(dtype)
                else "text"
            )
            out[str(name)] = COLUMNS.get(str(name), Column(str(name), kind))
        return out
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise KeyError(f"table columns {missing} are not in the frame (it has {list(frame.columns)})")
    if not isinstance(columns, Mapping):
        return {name: COLUMNS.get(name, Column(name, "text")) for name in columns}
    return {name: Column(c, "text") if isinstance(c, str) else c for name, c in columns.items()}


def worst_first(
    frame: pd.DataFrame, by: str, *, ascending: bool = False, min_rows: int = 0, rows: str = "rows"
) -> pd.DataFrame:
    """The rows worst first: by ``by``, the largest first (``ascending``: the smallest, as for ROC-AUC).

    Missing values come after the others, and rows with fewer than ``min_rows`` in ``rows`` after all of them.
    """
    small = (frame[rows] < min_rows) if min_rows and rows in frame.columns else pd.Series(False, frame.index)
    value = pd.to_numeric(frame[by], errors="coerce")
    order = pd.DataFrame(
        {"small": small.to_numpy(), "missing": value.isna().to_numpy(), "value": value.to_numpy()},
        index=frame.index,
    ).sort_values(["small", "missing", "value"], ascending=[True, True, ascending], kind="stable")
    return frame.loc[order.index]


def cells(
    frame: pd.DataFrame, columns: Mapping[str, Column | str] | Sequence[str] | None = None
) -> pd.DataFrame:
    """The frame's shown columns as text (renamed to their headers), each value formatted by its kind."""
    cols = _columns(frame, columns)
    return pd.DataFrame(
        {c.header: [fmt(v, c.kind) for v in frame[name].tolist()] for name, c in cols.items()},
        index=range(len(frame)),
    )


def legend_items(columns: Mapping[str, Column] | None) -> list[tuple[str, str]]:
    """``(header, meaning)`` of the columns that have a legend."""
    return [(c.header, c.legend) for c in (columns or {}).values() if c.legend]


def html_table(
    frame: pd.DataFrame,
    columns: Mapping[str, Column | str] | Sequence[str] | None = None,
    *,
    legend: bool = True,
    caption: str = "",
) -> str:
    """An HTML table of ``frame`` (escaped), numbers right-aligned, with its legend under it.

    Args:
        frame: The rows, already in the order to show (worst first where there is a worst).
        columns: Frame column → :class:`Column` (or a header for text), in the order shown; or frame column
            names shown as :data:`COLUMNS` has them; ``None``: every column, its kind guessed from the dtype.
        legend: Print the columns' legends under the table.
        caption: A line above the table.

    Returns:
        ``<table class="t">...</table>`` (and ``<p class="legend">``).
    """
    cols = _columns(frame, columns)
    head = "".join(
        f'<th class="{"l" if c.kind == "text" else "n"}"'
        + (f' title="{html.escape(c.legend)}"' if c.legend else "")
        + f">{html.escape(c.header)}</th>"
        for c in cols.values()
    )
    rows = []
    for record in frame[list(cols)].itertuples(index=False):
        tds = "".join(
            f'<td class="{"l" if c.kind == "text" else "n"}">{html.escape(fmt(v, c.kind))}</td>'
            for v, c in zip(record, cols.values(), strict=True)
        )
        rows.append(f"<tr>{tds}</tr>")
    top = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    out = f'<table class="t">{top}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    items = legend_items(cols) if legend else []
    if items:
        out += (
            '<p class="legend">'
            + "; ".join(f"<b>{html.escape(h)}</b>: {html.escape(m)}" for h, m in items)
            + ".</p>"
        )
    return out


def md_table(
    frame: pd.DataFrame,
    columns: Mapping[str, Column | str] | Sequence[str] | None = None,
    *,
    legend: bool = True,
) -> str:
    """The same table as Markdown (pipes escaped), numbers right-aligned, the legend as a line under it."""
    cols = _columns(frame, columns)
    shown = cells(frame, cols)
    head = "| " + " | ".join(c.header.replace("|", "\\|") for c in cols.values()) + " |"
    rule = "| " + " | ".join("---" if c.kind == "text" else "---:" for c in cols.values()) + " |"
    body = [
        "| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in shown.itertuples(index=False)
    ]
    out = "\n".join([head, rule, *body])
    items = legend_items(cols) if legend else []
    if items:
        out += "\n\n" + "; ".join(f"**{h}**: {m}" for h, m in items) + "."
    return out


def title_name(name: Any) -> str:
    """An area's name as people write it: the City's ``WEST GARFIELD PARK`` → ``West Garfield Park``."""
    text = str(name).strip()
    return text.title() if text.isupper() else text


def image_tag(path: Path, alt: str = "") -> str:
    """An ``<img>`` with the PNG at ``path`` inlined as base64."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt or path.stem)}" src="data:image/png;base64,{data}">'


def paragraph(text: str, css: str = "") -> str:
    """A paragraph of plain text (escaped)."""
    return f'<p class="{css}">{html.escape(text)}</p>' if css else f"<p>{html.escape(text)}</p>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;color:#222;max-width:1100px;
padding:0 16px;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:30px;border-bottom:1px solid #ddd}
table.t{border-collapse:collapse;font-size:13px;margin:6px 0}
table.t td,table.t th{padding:3px 9px;border-bottom:1px solid #eee}
table.t th{background:#f3f5f7;font-weight:600;vertical-align:bottom}
table.t td{white-space:nowrap} table.t .n{text-align:right;font-variant-numeric:tabular-nums}
table.t .l{text-align:left}
table.t caption{text-align:left;color:#555;font-size:13px;padding:4px 0}
img{max-width:100%;margin:4px 0} .note,.legend{color:#555;font-size:12.5px} .legend{margin-top:2px}
.verdict{font-size:15px} .summary{font-size:14px;background:#f6f8fa;padding:8px 12px;border-radius:4px}
"""


def html_page(title: str, sections: Sequence[tuple[str, str]], summary: str = "") -> str:
    """A self-contained HTML page (images inlined) for the KFP UI's HTML viewer and MLflow.

    Args:
        title: Page title.
        sections: ``(heading, html body)`` pairs.
        summary: A few plain-text words under the title (escaped).

    Returns:
        The HTML document.
    """
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{content}" for h, content in sections)
    lead = paragraph(summary, "summary") if summary else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{lead}\n{body}\n</body></html>"
    )
