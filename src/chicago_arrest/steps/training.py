"""Training steps: train one model type on the validated training records; evaluate and choose a candidate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from chicago_arrest.steps import MetricsSink, log_metrics, read_dataset

log = logging.getLogger(__name__)


def train_step(
    train_path: str | Path,
    stations_path: str | Path,
    model_out: str | Path,
    *,
    model_type: str,
    split: str = "time",
    mi_threshold: float = 0.001,
    calibration: str = "sigmoid",
    search_budget_s: float = 0.0,
    random_state: int = 0,
    model_metadata: dict[str, Any] | None = None,
    metrics: MetricsSink | None = None,
) -> dict[str, Any]:
    """Train one model type on raw training records and save the :class:`ArrestModel` (joblib).

    Args:
        train_path: Validated training records (raw fields + label).
        stations_path: Police stations embedded in the model.
        model_out: Where the model is saved.
        model_type: ``logreg``, ``random_forest`` or ``xgboost``.
        split: ``time`` (calibrate on the latest training month) or ``random``.
        mi_threshold: Mutual-information threshold of the feature selection.
        calibration: ``sigmoid`` or ``isotonic``.
        search_budget_s: Seconds of hyper-parameter search (0 = defaults).
        random_state: Seed of every random step.
        model_metadata: Metadata of the Model artifact (type, calibration AUC, threshold, framework).
        metrics: Receives calibration AUC, fit seconds, selected features and threshold.

    Returns:
        Model type, calibration AUC, fit seconds, selected feature count, threshold, parameters.
    """
    from chicago_arrest.training import TrainConfig, train_model

    config = TrainConfig(
        model_type=model_type,  # type: ignore[arg-type]
        mi_threshold=mi_threshold,
        calibration=calibration,  # type: ignore[arg-type]
        search_budget_s=search_budget_s,
        random_state=random_state,
    )
    result = train_model(read_dataset(train_path), read_dataset(stations_path), config, split=split)  # type: ignore[arg-type]
    Path(model_out).parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(result.model, model_out)
    info = result.model.info or {}
    summary = {
        "model_type": model_type,
        "calibration_auc": result.calibration_auc,
        "fit_seconds": result.fit_seconds,
        "selected_features": len(info.get("selected_features", [])),
        "encoded_features": info.get("encoded_features"),
        "threshold": result.model.threshold,
        "params": result.params,
        "search_trials": len(result.search_trials),
    }
    if model_metadata is not None:
        model_metadata.update({k: summary[k] for k in ("model_type", "calibration_auc", "threshold")})
        model_metadata["framework"] = "scikit-learn/imbalanced-learn" + (
            "/xgboost" if model_type == "xgboost" else ""
        )
    log_metrics(
        metrics, {k: summary[k] for k in ("calibration_auc", "fit_seconds", "selected_features", "threshold")}
    )
    return summary


def evaluate_step(
    model_paths: list[str],
    test_path: str | Path,
    report_out: str | Path,
    charts_dir: str | Path,
    *,
    ingest: dict[str, Any] | None = None,
    validate: dict[str, Any] | None = None,
    enrich: dict[str, Any] | None = None,
    window: dict[str, Any] | None = None,
    metrics: MetricsSink | None = None,
    classification: Any = None,
) -> dict[str, Any]:
    """Evaluate every candidate on the test window, choose one, and write the HTML report.

    The choice uses each model's calibration-slice ROC-AUC (data before the test window), so the test
    metrics of the chosen model are not inflated by choosing on them.

    Args:
        model_paths: Saved :class:`~chicago_arrest.artifact.ArrestModel` files (one per model type).
        test_path: Raw test records with labels.
        report_out: HTML report path.
        charts_dir: Folder for the PNG charts and per-crime-type tables (created).
        ingest: Summary of the ingest step (for the report's data-flow table).
        validate: Summary of the validate step.
        enrich: Summary of the enrich step (the report branch).
        window: The data window (split step).
        metrics: Receives the selected model's test metrics.
        classification: Receives the selected model's ROC curve and confusion matrix (``log_roc_curve``,
            ``log_confusion_matrix``: a KFP ``Output[ClassificationMetrics]``).

    Returns:
        ``selected`` (model type), ``selected_index`` (position in ``model_paths``), ``metrics`` (flat test
        metrics of the selected model) and ``candidates`` (per model type: calibration AUC and test metrics).
    """
    from chicago_arrest.evaluate import evaluate_model, roc_points, save_charts
    from chicago_arrest.report import training_report

    charts = Path(charts_dir)
    charts.mkdir(parents=True, exist_ok=True)
    test = read_dataset(test_path)
    models = [joblib.load(p) for p in model_paths]
    evaluations = [evaluate_model(m, test) for m in models]
    infos = [m.info or {} for m in models]
    cal_aucs = [float(info.get("calibration_auc", float("nan"))) for info in infos]
    best = int(np.nanargmax(cal_aucs))
    chosen, chosen_eval = models[best], evaluations[best]
    chart_paths = save_charts(evaluations, charts, chosen.feature_importance())
    for ev in evaluations:
        ev.per_type.to_json(charts / f"per_crime_type_{ev.name}.json", orient="records", indent=1)
    candidates = pd.DataFrame(
        [
            {
                "model": e.name,
                "calibration_auc": a,
                "fit_seconds": info.get("fit_seconds", float("nan")),
                "selected_features": len(info.get("selected_features", [])),
            }
            for info, e, a in zip(infos, evaluations, cal_aucs, strict=True)
        ]
    )
    upstream = {"ingest": ingest, "validate": validate, "enrich": enrich, "split": window}
    page = training_report(evaluations, chart_paths, chosen_eval.name, candidates, upstream)
    Path(report_out).parent.mkdir(parents=True, exist_ok=True)
    Path(report_out).write_text(page, encoding="utf-8")

    selected_metrics = chosen_eval.flat_metrics()
    log_metrics(metrics, selected_metrics)
    if classification is not None:
        roc = roc_points(chosen_eval.y, chosen_eval.p)
        o = chosen_eval.overall
        classification.log_roc_curve(roc["fpr"].tolist(), roc["tpr"].tolist(), roc["threshold"].tolist())
        classification.log_confusion_matrix(
            ["no arrest", "arrest"], [[int(o["tn"]), int(o["fp"])], [int(o["fn"]), int(o["tp"])]]
        )
    return {
        "selected": chosen_eval.name,
        "selected_index": best,
        "metrics": selected_metrics,
        "candidates": {
            e.name: {
                "calibration_auc": a,
                **e.flat_metrics(),
                **{k: e.overall[k] for k in ("roc_auc", "ece", "pr_auc", "brier")},
            }
            for e, a in zip(evaluations, cal_aucs, strict=True)
        },
    }
