"""The monitoring report (HTML, shown in the KFP UI and logged to MLflow): inline SVG charts, no plotting library.

PSI per field as bars with the threshold line, the reference vs current prediction histograms, the
calibration curve when labels exist, and the decision table. On served traffic also the labels joined, the
realised metrics per version and champion against challenger, as tables here and as terminal lines
(:func:`served_version_line`, :func:`comparison_lines`: ``make monitor``, ``make status``, ``make promote``).
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from chicago_arrest.monitoring.drift import PREDICTION_BINS, MonitorResult
from chicago_arrest.reports.format import (
    COLUMNS,
    Column,
    count,
    html_page,
    html_table,
    interval,
    metric,
    number,
    paragraph,
    rate,
)

_W, _H = 640, 260


def _svg(body: str, height: int = _H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'font-family="sans-serif" font-size="11">{body}</svg>'
    )


def psi_bars(psi: dict[str, float], prediction_psi: float, threshold: float) -> str:
    """Horizontal PSI bars (fields and the prediction) with the threshold as a red line."""
    items = [("prediction", prediction_psi), *sorted(psi.items(), key=lambda kv: -kv[1])]
    top = max(threshold * 1.5, *(v for _, v in items))
    row, left, width = 18, 150, _W - 210
    height = row * len(items) + 30
    parts = []
    for i, (name, value) in enumerate(items):
        y = 10 + i * row
        color = "#d62728" if value >= threshold else "#1f77b4"
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{html.escape(name)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 2}" width="{width * value / top:.1f}" height="{row - 5}" fill="{color}"/>'
        )
        parts.append(f'<text x="{left + width * value / top + 4:.1f}" y="{y + 12}">{metric(value)}</text>')
    x = left + width * threshold / top
    parts.append(
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="5" y2="{height - 15}" stroke="red" stroke-dasharray="4"/>'
    )
    parts.append(f'<text x="{x + 3:.1f}" y="{height - 4}" fill="red">threshold {number(threshold)}</text>')
    return _svg("".join(parts), height)


def histograms(reference: list[float], current: list[float]) -> str:
    """Reference (grey) and current (blue) shares of the predicted probability per bin."""
    n, left, bottom = len(reference), 40, _H - 30
    top = max(*reference, *current, 1e-9)
    step = (_W - left - 10) / n
    parts = [f'<line x1="{left}" x2="{_W - 10}" y1="{bottom}" y2="{bottom}" stroke="#888"/>']
    for i, (r, c) in enumerate(zip(reference, current, strict=True)):
        x = left + i * step
        for j, (value, color) in enumerate(((r, "#999"), (c, "#1f77b4"))):
            h = (bottom - 20) * value / top
            parts.append(
                f'<rect x="{x + j * step / 2:.1f}" y="{bottom - h:.1f}" width="{step / 2 - 1:.1f}" '
                f'height="{h:.1f}" fill="{color}"/>'
            )
        if i % 4 == 0:
            parts.append(f'<text x="{x:.1f}" y="{bottom + 14}">{rate(i / n, 0)}</text>')
    parts.append(f'<text x="{_W - 180}" y="14" fill="#999">■ reference (test window)</text>')
    parts.append(f'<text x="{_W - 180}" y="28" fill="#1f77b4">■ current</text>')
    return _svg("".join(parts))


def calibration_curve(table: pd.DataFrame) -> str:
    """Observed arrest rate against the mean predicted probability per bin, with the diagonal."""
    left, bottom, size = 40, _H - 30, _H - 50
    parts = [
        f'<line x1="{left}" y1="{bottom}" x2="{left + size}" y2="{bottom - size}" stroke="#aaa" '
        'stroke-dasharray="4"/>',
        f'<rect x="{left}" y="{bottom - size}" width="{size}" height="{size}" fill="none" stroke="#888"/>',
    ]
    points = [
        (left + size * p, bottom - size * o)
        for p, o in zip(table["mean_predicted"], table["observed_rate"], strict=True)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    parts.append(f'<polyline points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f77b4"/>' for x, y in points)
    parts.append(f'<text x="{left + size + 10}" y="{bottom}">predicted → (observed ↑)</text>')
    return _svg("".join(parts))


#: The decision's metrics: the test window's figure and the one realised on labelled current records.
REALISED_VIEW = {
    "metric": Column("metric", "text"),
    "reference": Column("test (reference)", "text", "the served version's figure on its test window"),
    "realised": Column(
        "realised", "text", "on the current records whose outcome is known (pending: none yet)"
    ),
}


def monitoring_report(
    result: MonitorResult, *, source: str, calibration: pd.DataFrame | None, retrain_link: str = ""
) -> str:
    """The whole report as one HTML page."""
    t = result.thresholds
    decision = pd.DataFrame(
        [
            {"": "decision", "value": result.decision.upper()},
            *({"": "reason", "value": r} for r in result.reasons),
            {"": "model version", "value": result.model_version},
            {"": "records", "value": f"{count(result.rows)} ({source})"},
            {
                "": "thresholds",
                "value": f"PSI >= {number(t.psi)}; ROC-AUC drop > {number(t.max_auc_drop)}; "
                f"ECE > {number(t.max_ece)}",
            },
            {"": "retrain", "value": result.retrain + (f": {retrain_link}" if retrain_link else "")},
        ]
    )
    rows: list[dict[str, Any]] = []
    for key in ("roc_auc", "pr_auc", "ece"):
        rows.append(
            {
                "metric": COLUMNS[key].header,
                "reference": metric(result.reference.get(key)),
                "realised": "pending" if result.realised is None else metric(result.realised[key]),
            }
        )
    psi_table = pd.DataFrame({"field": list(result.psi), "psi": list(result.psi.values())})
    psi_table = psi_table.sort_values("psi", ascending=False, kind="stable")
    drifted = psi_table[psi_table["psi"] >= t.psi]["field"].tolist()
    summary = (
        f"{result.decision.upper()}: {count(result.rows)} records; "
        + (f"{len(drifted)} field(s) drifted ({', '.join(drifted[:5])})" if drifted else "no field drifted")
        + f"; prediction PSI {metric(result.prediction_psi)}."
    )
    sections = [
        ("Decision", html_table(decision, {"": "", "value": "value"})),
        (
            f"PSI per field, largest first (threshold {number(t.psi)})",
            psi_bars(result.psi, result.prediction_psi, t.psi),
        ),
        (
            f"Predicted probability: reference vs current ({PREDICTION_BINS} bins)",
            histograms(result.reference_prediction, result.current_prediction),
        ),
        ("Realised performance", html_table(pd.DataFrame(rows), REALISED_VIEW)),
    ]
    if calibration is not None and len(calibration):
        sections.append(("Calibration (current records with labels)", calibration_curve(calibration)))
    if result.served is not None:
        sections.extend(served_sections(result.served))
    sections.append(
        ("PSI table, largest first", html_table(psi_table, {"field": "field", "psi": COLUMNS["psi"]}))
    )
    return html_page(
        f"Monitoring: model version {result.model_version}: {result.decision}", sections, summary
    )


# ------------------------------------------------------------------------------------------------------------
# Served traffic (issue 26): realised metrics per version, champion against challenger
# ------------------------------------------------------------------------------------------------------------

METRIC_NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "ece": "ECE"}


def _realised(side: dict[str, Any], key: str) -> str:
    if side.get(key) is None:
        return "pending"
    return interval(side[key], side.get(f"{key}_ci_low"), side.get(f"{key}_ci_high"))


def served_version_line(entry: dict[str, Any]) -> str:
    """One version's realised metrics on served traffic (95 % bootstrap intervals), for a terminal."""
    role = f" ({entry['role']})" if entry.get("role") else ""
    text = (
        f"v{entry.get('version')}{role}: {count(entry.get('labelled_rows', 0))} labelled of "
        f"{count(entry.get('rows', 0))}; "
        + ", ".join(f"{name} {_realised(entry, key)}" for key, name in METRIC_NAMES.items())
    )
    return text + (f" ({entry['pending']})" if entry.get("pending") else "")


def _signed(value: Any) -> str:
    shown = metric(value)
    return shown if shown.startswith("-") else f"+{shown}"


def comparison_lines(comparison: dict[str, Any]) -> list[str]:
    """Champion against challenger on served traffic: the period, one line per version, the difference, the verdict."""
    period = comparison.get("period") or [None, None]
    measured = comparison.get("measured_at", "monitoring time")
    lines = [f"served {period[0]} .. {period[1]}, labels as known at {measured}"]
    for role in ("champion", "challenger"):
        lines.append(f"  {role:<10} {served_version_line({**comparison[role], 'role': None})}")
    diff = comparison.get("difference") or {}
    parts = [
        f"{name} {_signed(diff[key])} ± {metric(diff[f'{key}_se'])}"
        + (" (beyond the noise)" if diff.get(f"{key}_beyond_noise") else "")
        for key, name in METRIC_NAMES.items()
        if key in diff
    ]
    if parts:
        lines.append(f"  challenger - champion: {', '.join(parts)}")
    z = number(comparison.get("noise_z", 2.0))
    meaning = {
        "worse": f"the challenger is measurably worse (ROC-AUC lower by more than {z} standard errors)",
        "better": f"the challenger is measurably better (ROC-AUC higher by more than {z} standard errors)",
        "within noise": f"no difference beyond the noise ({z} standard errors)",
        "pending": f"pending: fewer than {count(comparison.get('min_labelled'))} labelled records on a side",
    }
    verdict = str(comparison.get("verdict"))
    lines.append(f"  verdict: {meaning.get(verdict, verdict)}")
    return lines


SERVED_VIEW: dict[str, Column | str] = {
    "version": "version",
    "role": "role",
    "rows": Column("served", "count", "records served (a repeated report id once)"),
    "labelled_rows": Column("labelled", "count", "of them, with a label known now"),
    "roc_auc": Column("ROC-AUC", "text", "realised, with its 95 % bootstrap interval"),
    "pr_auc": Column("PR-AUC", "text", "realised, with its 95 % bootstrap interval"),
    "ece": Column("ECE", "text", "realised expected calibration error, 95 % bootstrap interval"),
}


def _age(days: Any) -> str:
    """An age given in days, in the unit that reads best: ``35 min``, ``5.2 h``, ``12 days``."""
    if days is None:
        return "-"
    days = float(days)
    if days < 1 / 24:
        return f"{number(days * 1440)} min"
    if days < 1:
        return f"{number(days * 24)} h"
    return f"{number(days)} days"


def labels_line(labels: dict[str, Any]) -> str:
    """How many served records have a label yet, how old they are, where the labels came from."""
    ages = labels.get("labelled_age_days") or {}
    waiting = labels.get("unlabelled_age_days") or {}
    text = (
        f"{count(labels.get('labelled_rows'))} of {count(labels.get('rows'))} served records have a label yet "
        f"({count(labels.get('served_rows'))} logged: {count(labels.get('duplicate_ids'))} repeated report ids "
        f"counted once; {count(labels.get('without_id'))} without an id, never joined)"
    )
    if ages:
        text += f"; the labelled ones were served {_age(ages.get('min'))} to {_age(ages.get('max'))} ago"
    if waiting:
        text += f", the others {_age(waiting.get('min'))} to {_age(waiting.get('max'))} ago"
    return text + f"; labels from {labels.get('source')}"


def served_sections(served: dict[str, Any]) -> list[tuple[str, str]]:
    """The report's sections on served traffic: labels, realised per version, the comparison, what was skipped."""
    labels = served.get("labels") or {}
    coverage = (
        labels_line(labels)
        + f". Realised metrics need {count(labels.get('min_labelled'))} labelled records per version."
    )
    rows = [
        {**entry, **{key: _realised(entry, key) for key in METRIC_NAMES}}
        for entry in (served.get("realised_served") or {}).values()
    ]
    sections = [("Served traffic: labels known now", paragraph(coverage))]
    if rows:
        sections.append(("Served traffic: realised per version", html_table(pd.DataFrame(rows), SERVED_VIEW)))
    if served.get("comparison"):
        lines = comparison_lines(served["comparison"])
        sections.append(
            ("Champion against challenger, same period", "<pre>" + html.escape("\n".join(lines)) + "</pre>")
        )
    problems = served.get("problems") or []
    if problems:
        sections.append(("Served log: skipped", "<pre>" + html.escape("\n".join(problems)) + "</pre>"))
    return sections
