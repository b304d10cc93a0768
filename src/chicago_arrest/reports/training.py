"""Every HTML report for people (the KFP UI's HTML viewer, MLflow artifacts): self-contained, images inlined.

The data contract's report (validate step), the training report (evaluate step) and champion vs challenger
(gate step). Only pandas is needed here, so steps that write a report do not pay for importing scikit-learn.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from chicago_arrest.model.evaluate import Evaluation


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


def contract_report(counts: dict[str, Any], quarantined: pd.DataFrame) -> str:
    """The data contract's report: every count, and the quarantined rows given (the first 50)."""
    table = pd.DataFrame([{"count": k, "rows": v} for k, v in counts.items() if isinstance(v, int | float)])
    return html_page(
        "Data contract",
        [
            ("Counts", table_html(table, "{:.0f}")),
            (f"Quarantined rows (first {len(quarantined)})", quarantined.to_html(index=False)),
        ],
    )


def evaluation_sections(
    evaluations: list[Evaluation],
    charts: dict[str, Path],
    selected: str,
    window: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Report sections for a set of candidate evaluations: metric tables, charts and the per-type table."""
    keys = ["roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "ece", "threshold"]
    overall = pd.DataFrame([{"model": e.name, **{k: e.overall[k] for k in keys}} for e in evaluations])
    no_ab = pd.DataFrame(
        [{"model": e.name, **{k: e.without_arrest_based[k] for k in keys}} for e in evaluations]
    )
    chosen = next(e for e in evaluations if e.name == selected)
    cm = pd.DataFrame(
        {
            "": ["actual: no arrest", "actual: arrest"],
            "predicted: no arrest": [chosen.overall["tn"], chosen.overall["fn"]],
            "predicted: arrest": [chosen.overall["fp"], chosen.overall["tp"]],
        }
    )
    sections = []
    if window:
        sections.append(("Data window", table_html(pd.DataFrame([window]))))
    sections += [
        ("Test metrics (every crime type)", table_html(overall)),
        (
            "Test metrics without crime types recorded only upon arrest",
            "<p class='note'>NARCOTICS, PROSTITUTION, GAMBLING, LIQUOR LAW VIOLATION, PUBLIC INDECENCY, CONCEALED "
            "CARRY LICENSE VIOLATION, OTHER NARCOTIC VIOLATION: their arrest rate is ~100 % by construction.</p>"
            + table_html(no_ab),
        ),
        (f"Confusion matrix of {selected} at threshold {chosen.threshold:.2f}", table_html(cm, "{:.0f}")),
        ("Charts", "".join(image_tag(p) for p in charts.values())),
        (f"Per crime type ({selected})", table_html(chosen.per_type)),
    ]
    return sections


def _flow_table(upstream: dict[str, Any]) -> pd.DataFrame:
    """Rows through the main path (ingest → validate → split) and the enrich report branch."""
    ing, val, enr, spl = (upstream.get(k) or {} for k in ("ingest", "validate", "enrich", "split"))
    rows = [
        {"step": "ingest", "rows in": ing.get("rows"), "rows out": ing.get("rows"), "quarantined": 0},
        {
            "step": "validate",
            "rows in": val.get("rows_in"),
            "rows out": val.get("valid"),
            "quarantined": val.get("quarantined"),
        },
        {
            "step": "split (train + test)",
            "rows in": val.get("valid"),
            "rows out": (spl.get("train_rows") or 0) + (spl.get("test_rows") or 0),
            "quarantined": 0,
        },
    ]
    if enr:
        rows.append(
            {
                "step": "enrich (report branch)",
                "rows in": enr.get("rows"),
                "rows out": enr.get("rows"),
                "quarantined": 0,
            }
        )
    return pd.DataFrame(rows)


def training_report(
    evaluations: list[Evaluation],
    charts: dict[str, Path],
    selected: str,
    candidates: pd.DataFrame,
    upstream: dict[str, Any] | None = None,
    insights: list[tuple[str, str]] | None = None,
) -> str:
    """The evaluate step's report: data flow, model selection, test metrics, charts, per-type table.

    Args:
        evaluations: One per candidate.
        charts: PNG charts by name.
        selected: Name of the selected candidate.
        candidates: Per candidate: model, calibration AUC, fit seconds, selected features.
        upstream: Summaries of the earlier steps (``ingest``, ``validate``, ``enrich``, ``split``), if known.
        insights: Sections on the selected model (global importance, per-area tables, maps;
            :func:`chicago_arrest.reports.model_card.insight_sections`).
    """
    upstream = upstream or {}
    sections: list[tuple[str, str]] = []
    if any(upstream.values()):
        sections.append(("Data flow", table_html(_flow_table(upstream), "{:.0f}")))
    sections.append(
        (
            "Model selection (on the calibration month, before the test window)",
            table_html(candidates, "{:.4f}") + f"<p>Selected: <b>{html.escape(selected)}</b></p>",
        )
    )
    sections += evaluation_sections(evaluations, charts, selected, upstream.get("split"))
    sections += insights or []
    return html_page("Chicago arrest model: training report", sections)


def gate_report(decision: dict[str, Any], canary_percent: int) -> str:
    """Champion vs challenger on the same test window, and the verdict."""
    rows = [{"model": f"challenger (v{decision['challenger_version']})", **decision["challenger"]}]
    if decision["champion"]:
        rows.append({"model": f"champion (v{decision['champion_version']})", **decision["champion"]})
    verdict = (
        "promoted to champion"
        if decision["promoted"]
        else f"passed: canary at {canary_percent} %"
        if decision["passed"]
        else "rejected: champion unchanged"
    )
    body = table_html(pd.DataFrame(rows)) + f"<p><b>{verdict}</b>: {html.escape(decision['reason'])}</p>"
    return html_page("Champion vs challenger", [("Same test window", body)])
