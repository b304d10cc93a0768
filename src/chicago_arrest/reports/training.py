"""The HTML reports of the training pipeline (the KFP UI's HTML viewer, MLflow artifacts): self-contained.

The data contract's report (validate step), the training report (evaluate step) and champion vs challenger
(gate step). Every number goes through :mod:`chicago_arrest.reports.format`. Only pandas is needed here, so
steps that write a report do not pay for importing scikit-learn.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from chicago_arrest.core.schema import ARREST_BASED_TYPES
from chicago_arrest.reports.format import (
    COLUMNS,
    Column,
    count,
    html_page,
    html_table,
    image_tag,
    interval,
    metric,
    number,
    paragraph,
    rate,
    worst_first,
)

if TYPE_CHECKING:
    from chicago_arrest.model.evaluate import Evaluation

#: Crime types with fewer test rows come last in the per-type table.
MIN_TYPE_ROWS = 30
#: The headline metrics of a model, in order.
METRIC_KEYS = ("roc_auc", "pr_auc", "ece", "brier", "f1", "precision", "recall", "threshold")
#: The candidates table (:func:`candidate_row`'s keys).
CANDIDATE_VIEW: dict[str, Column] = {
    "model": Column("model", "text"),
    "backtest": Column(
        "backtest", "text", "ROC-AUC over the rolling-origin folds: mean ± standard deviation"
    ),
    "folds": Column("folds", "text", "ROC-AUC of each fold, in the order of its validate month"),
    "search": Column("search", "text", "hyper-parameter trials (pruned)"),
    "ms_per_record": Column("ms/record", "number", "milliseconds to score one record in a batch of 1,000"),
    "size_mb": Column("MB", "number", "size of the pickled model"),
    "roc_auc": Column("test ROC-AUC", "text", "on the test window, with its bootstrap 95 % interval"),
    "ece": Column("test ECE", "text", "same"),
    "ece_worst_month": Column("ECE worst month", "metric", "ECE of the test month where it is largest"),
    "fit_seconds": Column("fit s", "number", "seconds to fit"),
    "features": Column("features", "count", "features kept by the mutual-information filter"),
}


def _metrics_view(selected: str) -> dict[str, Column]:
    return {"model": Column("model", "text"), **{k: COLUMNS[k] for k in METRIC_KEYS}}


def _selected_first(frame: pd.DataFrame, selected: str) -> pd.DataFrame:
    """The selected model first, then by test ROC-AUC, best first."""
    rest = frame[frame["model"] != selected]
    if "roc_auc" in rest.columns:
        rest = rest.sort_values("roc_auc", ascending=False, kind="stable")
    return pd.concat([frame[frame["model"] == selected], rest])


def contract_report(counts: dict[str, Any], quarantined: pd.DataFrame) -> str:
    """The data contract's report: every count, and the quarantined rows given (the first 50)."""
    table = pd.DataFrame(
        [{"count": k.replace("_", " "), "rows": v} for k, v in counts.items() if isinstance(v, int | float)]
    )
    total = counts.get("rows_in")
    summary = (
        f"{count(counts.get('valid'))} valid of {count(total)} rows; {count(counts.get('quarantined'))} "
        "quarantined"
        if total is not None
        else ""
    )
    shown = quarantined.copy()
    for column in shown.columns:  # raw text mostly; a number column gets separators, never 225381.0000
        if pd.api.types.is_float_dtype(shown[column].dtype):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:,.6g}")
    sections = [("Counts", html_table(table, {"count": "what", "rows": COLUMNS["rows"]}, legend=False))]
    total_q = counts.get("quarantined")
    heading = "Quarantined rows"
    if len(quarantined) and (total_q is None or len(quarantined) < float(total_q)):
        heading += f" (the first {count(len(quarantined))} of {count(total_q)})"
    sections.append(
        (
            heading,
            html_table(shown.astype(object).where(shown.notna(), None), list(map(str, shown.columns)))
            if len(shown)
            else paragraph("None.", "note"),
        )
    )
    return html_page("Data contract", sections, summary)


def candidate_row(ev: Evaluation, info: dict[str, Any], reason: str) -> dict[str, Any]:
    """One row of the candidates table (:data:`CANDIDATE_VIEW`): folds, search, cost, test metrics.

    Args:
        ev: The candidate's evaluation on the test window.
        info: The trained model's ``info`` (backtest, search, cost, calibration AUC, features).
        reason: Why it was selected (empty for the others).
    """
    backtest = info.get("backtest") or {}
    search = info.get("search") or {}
    cost = info.get("cost") or {}
    o = ev.overall
    size = cost.get("size_bytes")
    return {
        "model": ev.name,
        "selected": "yes" if reason else "",
        "backtest": f"{metric(backtest.get('mean'))} ± {number(backtest.get('std'), 2)}" if backtest else "-",
        "folds": ", ".join(metric(f["roc_auc"]) for f in backtest.get("folds", [])),
        "fold_months": ", ".join(str(f["validate_month"]) for f in backtest.get("folds", [])),
        "search": f"{count(search.get('trials', 0))} ({count(search.get('pruned', 0))} pruned)"
        if search
        else "none",
        "ms_per_record": cost.get("ms_per_record"),
        "size_mb": float(size) / 1e6 if size is not None else None,
        **{k: interval(o.get(k), o.get(f"{k}_ci_low"), o.get(f"{k}_ci_high")) for k in ("roc_auc", "ece")},
        "ece_worst_month": o.get("ece_worst_month"),
        "fit_seconds": info.get("fit_seconds"),
        "features": len(info.get("selected_features", [])),
        "reason": reason,
    }


def evaluation_sections(
    evaluations: list[Evaluation],
    charts: dict[str, Path],
    selected: str,
    window: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Report sections for a set of candidate evaluations: metric tables, charts and the per-type table."""
    overall = pd.DataFrame([{"model": e.name, **{k: e.overall[k] for k in METRIC_KEYS}} for e in evaluations])
    no_ab = pd.DataFrame(
        [{"model": e.name, **{k: e.without_arrest_based[k] for k in METRIC_KEYS}} for e in evaluations]
    )
    chosen = next(e for e in evaluations if e.name == selected)
    o = chosen.overall
    cm = pd.DataFrame(
        {
            "": ["actual: no arrest", "actual: arrest"],
            "no arrest": [o["tn"], o["fn"]],
            "arrest": [o["fp"], o["tp"]],
        }
    )
    sections = []
    if window:
        sections.append(("Data window", _window_table(window)))
    view = _metrics_view(selected)
    types = chosen.per_type.assign(
        gap=chosen.per_type["mean_predicted"] - chosen.per_type["arrest_rate"],
        _abs_gap=(chosen.per_type["mean_predicted"] - chosen.per_type["arrest_rate"]).abs(),
    )
    types = worst_first(types, "_abs_gap", min_rows=MIN_TYPE_ROWS)
    type_view = {
        "primary_type": Column("crime type", "text"),
        **{k: COLUMNS[k] for k in ("rows", "arrest_rate", "mean_predicted", "gap", "roc_auc")},
    }
    sections += [
        (
            "Test metrics (every crime type)",
            html_table(_selected_first(overall, selected), view),
        ),
        (
            "Test metrics without crime types recorded only upon arrest",
            paragraph(
                f"{', '.join(sorted(ARREST_BASED_TYPES))}: their arrest rate is close to 100 % by construction.",
                "note",
            )
            + html_table(_selected_first(no_ab, selected), view, legend=False),
        ),
        (
            f"Confusion matrix of {selected} at threshold {metric(chosen.threshold)}",
            html_table(
                cm,
                {
                    "": Column("", "text"),
                    "no arrest": Column("predicted: no arrest", "count"),
                    "arrest": Column("predicted: arrest", "count"),
                },
            )
            + paragraph(
                f"Of {count(o['tp'] + o['fn'])} arrests, {count(o['tp'])} predicted (recall {rate(o['recall'])}); "
                f"of {count(o['tp'] + o['fp'])} predicted arrests, {count(o['tp'])} were arrests "
                f"(precision {rate(o['precision'])}).",
                "note",
            ),
        ),
        ("Charts", "".join(image_tag(p) for p in charts.values())),
        (
            f"Per crime type ({selected}), largest gap between predicted and observed arrest rate first",
            paragraph(f"Crime types with fewer than {MIN_TYPE_ROWS} test rows come last.", "note")
            + html_table(types, type_view),
        ),
    ]
    return sections


def _window_table(window: dict[str, Any]) -> str:
    """The data window as one row: train and test dates and rows."""
    frame = pd.DataFrame(
        [
            {
                "part": "train",
                "from": window.get("train_start"),
                "to": window.get("train_end"),
                "rows": window.get("train_rows"),
            },
            {
                "part": "test",
                "from": window.get("test_start"),
                "to": window.get("test_end"),
                "rows": window.get("test_rows"),
            },
        ]
    )
    kind = window.get("kind")
    return html_table(
        frame, {"part": "part", "from": "from", "to": "to", "rows": Column("rows", "count")}
    ) + (paragraph(f"{kind} split", "note") if kind else "")


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
        candidates: Per candidate, :func:`candidate_row`.
        upstream: Summaries of the earlier steps (``ingest``, ``validate``, ``enrich``, ``split``), if known.
        insights: Sections on the selected model (global importance, per-area tables, maps;
            :func:`chicago_arrest.reports.model_card.insight_sections`).
    """
    upstream = upstream or {}
    chosen = next(e for e in evaluations if e.name == selected)
    o = chosen.overall
    window = upstream.get("split") or {}
    summary = (
        f"Selected {selected}: ROC-AUC {interval(o['roc_auc'], o.get('roc_auc_ci_low'), o.get('roc_auc_ci_high'))}, "
        f"ECE {metric(o['ece'])} on {count(o.get('rows', len(chosen.y)))} test rows"
        + (f" ({window['test_start']} to {window['test_end']})" if window.get("test_start") else "")
        + "."
    )
    sections: list[tuple[str, str]] = []
    if any(upstream.values()):
        flow: dict[str, Column | str] = {"step": "step"}
        flow.update({k: Column(k, "count") for k in ("rows in", "rows out", "quarantined")})
        sections.append(("Data flow", html_table(_flow_table(upstream), flow)))
    reasons = candidates["reason"] if "reason" in candidates.columns else pd.Series(dtype=str)
    reason = next((str(r) for r in reasons if r), "")
    shown = {k: c for k, c in CANDIDATE_VIEW.items() if k in candidates.columns}
    if "search" in candidates.columns and (candidates["search"] == "none").all():
        del shown["search"]  # no search ran: the column would say "none" three times
    months = next((str(m) for m in candidates.get("fold_months", []) if m), "")
    sections.append(
        (
            "Model selection (rolling-origin backtest on the training months, before the test window)",
            html_table(_selected_first(candidates, selected), shown)
            + (paragraph(f"The folds validate on {months}.", "note") if months else "")
            + f"<p>Selected: <b>{html.escape(selected)}</b>"
            + (f": {html.escape(reason)}" if reason else "")
            + "</p>",
        )
    )
    sections += evaluation_sections(evaluations, charts, selected, window)
    sections += insights or []
    return html_page("Chicago arrest model: training report", sections, summary)


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
    frame = pd.DataFrame(rows)
    extra = {
        "roc_auc_se": Column("ROC-AUC SE", "metric", "bootstrap standard error of the ROC-AUC"),
        "ece_worst_month": Column("ECE worst month", "metric", "ECE of the test month where it is largest"),
        "ece_worst_area": Column(
            "ECE worst area",
            "metric",
            "ECE of the district or community area (30+ test rows) where it is largest",
        ),
    }
    view: dict[str, Column] = {"model": Column("model", "text")}
    for key in frame.columns[1:]:
        view[key] = COLUMNS.get(key) or extra.get(key) or Column(key.replace("_", " "), "metric")
    body = (
        html_table(frame, view)
        + f"<p class='verdict'><b>{verdict}</b>: {html.escape(decision['reason'])}</p>"
    )
    return html_page("Champion vs challenger", [("Same test window", body)], verdict)
