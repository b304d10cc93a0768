"""Training steps: train one model type on the validated training records; evaluate and choose a candidate."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from chicago_arrest.model.backtest import Candidate, select_candidate
from chicago_arrest.reports.format import count, metric, number
from chicago_arrest.steps import MetricsSink, log_metrics, log_summary, read_dataset

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
    backtest_folds: int = 3,
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
        search_budget_s: Seconds of Optuna search on the backtest folds (0 = defaults).
        backtest_folds: Walk-forward folds inside the training window (time split).
        random_state: Seed of every random step.
        model_metadata: Metadata of the Model artifact (type, calibration AUC, threshold, framework).
        metrics: Receives calibration AUC, fit seconds, selected features and threshold.

    Returns:
        Model type, calibration AUC, fit seconds, selected feature count, threshold, parameters.
    """
    from chicago_arrest.core.runtime import training_cpus
    from chicago_arrest.model.training import TrainConfig, train_model

    config = TrainConfig(
        model_type=model_type,  # type: ignore[arg-type]
        mi_threshold=mi_threshold,
        calibration=calibration,  # type: ignore[arg-type]
        search_budget_s=search_budget_s,
        backtest_folds=backtest_folds,
        n_jobs=training_cpus(),
        random_state=random_state,
    )
    from chicago_arrest.core.schema import LABEL, MODEL_INPUT_COLUMNS

    # Only what the model reads, text as categoricals: the training frame of a year in 16 MB, not 150 MB.
    train = read_dataset(train_path, (*MODEL_INPUT_COLUMNS, LABEL), text="category")
    result = train_model(train, read_dataset(stations_path), config, split=split)  # type: ignore[arg-type]
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
        "backtest_mean": result.backtest.get("mean"),
        "backtest_std": result.backtest.get("std"),
        "backtest_folds": len(result.backtest.get("folds", [])),
    }
    if model_metadata is not None:
        model_metadata.update({k: summary[k] for k in ("model_type", "calibration_auc", "threshold")})
        model_metadata["framework"] = "scikit-learn/imbalanced-learn" + (
            "/xgboost" if model_type == "xgboost" else ""
        )
    log_metrics(
        metrics,
        {
            k: summary[k]
            for k in ("calibration_auc", "backtest_mean", "backtest_std", "fit_seconds", "selected_features")
        }
        | {"threshold": summary["threshold"]},
    )
    log_summary(
        f"calibration ROC-AUC {metric(result.calibration_auc)}, fit {number(result.fit_seconds)} s,"
        f" {count(summary['selected_features'])} features"
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

    The choice uses each model's walk-forward backtest inside the training window (data before the test
    window), so the test metrics of the chosen model are not inflated by choosing on them: the best mean fold
    ROC-AUC wins only by more than the spread, ties go to the cheapest model
    (:func:`~chicago_arrest.model.backtest.select_candidate`). The report shows the folds, the choice and bootstrap
    95 % intervals of the test metrics per candidate.

    Args:
        model_paths: Saved :class:`~chicago_arrest.model.artifact.ArrestModel` files (one per model type).
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
        ``selected`` (model type), ``selected_index`` (position in ``model_paths``), ``selection`` (the
        reason), ``metrics`` (flat test metrics of the selected model) and ``candidates`` (per model type:
        calibration AUC, backtest mean and spread, search best value and trials, cost, test metrics with
        intervals).
    """
    from chicago_arrest.model.evaluate import evaluate_model, roc_points, save_charts
    from chicago_arrest.reports.training import candidate_row, training_report

    charts = Path(charts_dir)
    charts.mkdir(parents=True, exist_ok=True)
    from chicago_arrest.core.runtime import available_cpus

    test = read_dataset(test_path)
    # Saved pinned to their training threads; scoring and explaining the test window uses every core.
    models = [joblib.load(p).set_threads(available_cpus()) for p in model_paths]
    evaluations = [evaluate_model(m, test) for m in models]
    infos = [m.info or {} for m in models]
    cal_aucs = [float(info.get("calibration_auc", float("nan"))) for info in infos]
    best, reason = select_candidate(
        [_candidate(e.name, info) for e, info in zip(evaluations, infos, strict=True)]
    )
    log.info("selection: %s", reason)
    chosen, chosen_eval = models[best], evaluations[best]
    upstream = {"ingest": ingest, "validate": validate, "enrich": enrich, "split": window}
    # Issue 14: global importance = mean |contribution| per raw field; per-area figures and maps.
    from chicago_arrest.data.areas import boundaries_from_settings
    from chicago_arrest.reports.model_card import insight_sections, write_insights

    insights = write_insights(
        chosen, chosen_eval, test, charts, shapes=boundaries_from_settings(), upstream=upstream
    )
    importance = pd.Series(insights["importance"], name="mean |contribution| (log-odds)")
    chart_paths = save_charts(evaluations, charts, importance)
    for ev, info in zip(evaluations, infos, strict=True):
        ev.per_type.to_json(charts / f"per_crime_type_{ev.name}.json", orient="records", indent=1)
        ev.per_month.to_json(charts / f"per_month_{ev.name}.json", orient="records", indent=1)
        if info.get("search"):
            (charts / f"search_{ev.name}.json").write_text(
                json.dumps(info["search"], indent=1, default=str), encoding="utf-8"
            )
    candidates = pd.DataFrame(
        [
            candidate_row(e, info, reason if i == best else "")
            for i, (e, info) in enumerate(zip(evaluations, infos, strict=True))
        ]
    )
    page = training_report(
        evaluations, chart_paths, chosen_eval.name, candidates, upstream, insight_sections(charts)
    )
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
    # The selection's first reason (the chosen model's); the others are in the report.
    log_summary(
        f"selected {chosen_eval.name}: {reason.split('; ')[0]}; its test ROC-AUC"
        f" {metric(selected_metrics['test_roc_auc'])}, ECE {metric(selected_metrics['test_ece'])}"
    )
    return {
        "selected": chosen_eval.name,
        "selected_index": best,
        "selection": reason,
        "metrics": selected_metrics,
        "candidates": {
            e.name: {
                "calibration_auc": a,
                **_fold_metrics(info),
                **e.flat_metrics(),
                **{k: e.overall[k] for k in GATE_KEYS if k in e.overall},
                **({"ece_worst_area": insights["ece_worst_area"]} if e is chosen_eval else {}),
            }
            for e, a, info in zip(evaluations, cal_aucs, infos, strict=True)
        },
    }


#: Test metrics the gate reads (headline, noise of the ROC-AUC, calibration of the worst test month).
GATE_KEYS = ("roc_auc", "ece", "pr_auc", "brier", "roc_auc_se", "ece_worst_month")


def _candidate(name: str, info: dict[str, Any]) -> Candidate:
    """What the selection rule needs of a trained model (older models: the calibration AUC as one fold)."""
    scores = (info.get("backtest") or {}).get("scores") or [float(info.get("calibration_auc", float("nan")))]
    cost = info.get("cost") or {}
    return Candidate(
        name,
        tuple(float(s) for s in scores),
        float(cost.get("ms_per_record", float("inf"))),
        int(cost.get("size_bytes", 0)),
    )


def _fold_metrics(info: dict[str, Any]) -> dict[str, float]:
    """Backtest, search and cost of one candidate as flat numbers (MLflow metrics of its nested run)."""
    backtest = info.get("backtest") or {}
    search = info.get("search") or {}
    cost = info.get("cost") or {}
    out = {f"backtest_fold{i}_roc_auc": float(s) for i, s in enumerate(backtest.get("scores", []))}
    out.update({f"backtest_{k}": float(backtest[k]) for k in ("mean", "std") if k in backtest})
    out.update(
        {
            f"search_{k}": float(search[k])
            for k in ("best_value", "trials", "pruned", "seconds")
            if k in search
        }
    )
    out.update({k: float(v) for k, v in cost.items()})
    return out
