"""The functions the KFP components call: file paths in, file paths out, a JSON-able summary back.

Each KFP component in ``components/`` is a thin wrapper: it imports one function from here, passes its
artifact paths and parameters, and logs the returned summary as KFP metrics / reports. Everything here is
plain Python, unit-tested without KFP, and runs the same under ``kfp.local`` and on a cluster.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd

from chicago_arrest.settings import Settings, get_settings

log = logging.getLogger(__name__)


def kfp_safe(value: Any) -> Any:
    """Make a summary safe for a KFP ``dict`` output (no ``None``, no numpy scalars)."""
    if isinstance(value, dict):
        return {str(k): kfp_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [kfp_safe(v) for v in value]
    if value is None:
        return ""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Read a Dataset artifact written by a step (Parquet)."""
    return pd.read_parquet(path)


def setup_logging() -> None:
    """Progress output for a step process (INFO to stderr, timestamps); idempotent.

    Under KFP the executor has already given the root logger a handler: only the level is set then, so that
    each line is printed once.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("urllib3", "alembic", "mlflow.store", "botocore", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from chicago_arrest.ingest import IngestError
    from chicago_arrest.socrata import SocrataError
    from chicago_arrest.store import StoreError

    return (
        IngestError,
        SocrataError,
        StoreError,
        FileNotFoundError,
        PermissionError,
        ValueError,
        LookupError,
    )


@contextmanager
def step_errors() -> Iterator[None]:
    """Report a step's expected failures (no network, a missing file, bad data) as one line and exit 1.

    Bugs keep their traceback. Used by every component body: without it KFP's executor prints a full stack
    trace for a user's mistake, such as running without internet access and without ``SOURCE``.
    """
    expected = _expected_errors()
    try:
        yield
    except expected as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


# --- ingest -------------------------------------------------------------------------------------------------


def ingest_step(
    raw_out: str | Path,
    stations_out: str | Path,
    *,
    source: str = "",
    stations_source: str = "",
    months: int = 12,
    refresh_months: int = 1,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Land new months in the object store, then export the training window and the stations.

    Args:
        raw_out: Parquet path for the window's raw records.
        stations_out: Parquet path for the police stations.
        source: Local CSV/Parquet in the Socrata schema; empty = the Socrata API.
        stations_source: Local stations file; empty = next to ``source``, else the store / Socrata.
        months: Months in the training window.
        refresh_months: Latest months re-landed even when present (Socrata records change).
        settings: Library settings (default: from the environment).

    Returns:
        Summary: source, window months, landed/skipped months, rows.
    """
    from chicago_arrest.ingest import ingest, load_stations, load_undated, load_window
    from chicago_arrest.store import make_store

    settings = settings or get_settings()
    result = ingest(
        settings,
        source=source or None,
        months=months,
        refresh=refresh_months,
        stations_path=stations_source or None,
    )
    store = make_store(settings)
    # Undated records travel with the window so that the data contract quarantines them (never lost).
    raw = pd.concat([load_window(store, result.window), load_undated(store)], ignore_index=True)
    stations = load_stations(store)
    _write_parquet(raw, raw_out)
    _write_parquet(stations, stations_out)
    log.info(
        "ingest: window %s..%s, %d rows, %d stations (landed %s)",
        result.window[0],
        result.window[-1],
        len(raw),
        len(stations),
        result.landed or "nothing new",
    )
    return {
        "source": result.source,
        "window": result.window,
        "landed": result.landed,
        "skipped": result.skipped,
        "rows": len(raw),
        "stations": len(stations),
        "store": store.uri(),
        "duplicates_replaced": result.duplicates,
        "undated": result.undated,
        "outside_window": result.outside_window,
    }


# --- validate -----------------------------------------------------------------------------------------------


def validate_step(raw_path: str | Path, valid_out: str | Path, quarantine_out: str | Path) -> dict[str, Any]:
    """Apply the data contract: valid rows to one Dataset, each invalid row (with its reason) to another.

    Returns:
        The contract's counts (rows_in, valid, quarantined, per reason, rows_without_coordinates).

    Raises:
        ValueError: When no row is valid (nothing to train on).
    """
    from chicago_arrest.validate import validate_records

    raw = read_dataset(raw_path)
    result = validate_records(raw)
    _write_parquet(result.valid, valid_out)
    quarantine = result.quarantine.astype({c: "string" for c in result.quarantine.columns if c != "reason"})
    _write_parquet(quarantine, quarantine_out)
    counts = {k: (int(v) if isinstance(v, int | np.integer) else v) for k, v in result.counts.items()}
    log.info(
        "validate: %d in, %d valid, %d quarantined", counts["rows_in"], counts["valid"], counts["quarantined"]
    )
    if counts["valid"] == 0:
        raise ValueError(f"the data contract rejected every row: {counts}")
    return counts


# --- enrich ---------------------------------------------------------------------------------------------------


def enrich_step(
    valid_path: str | Path, stations_path: str | Path, enriched_out: str | Path
) -> dict[str, Any]:
    """Add nearest-station distance and temporal features (rows without coordinates kept and flagged).

    The model recomputes these features from the raw fields with the same code, so serving needs only raw
    records; this step materialises them for inspection, reports and the split.

    Returns:
        rows, rows_without_coordinates and distance quantiles (metres).
    """
    from chicago_arrest.enrich import DISTANCE, HAS_COORDINATES, StationIndex, enrich

    frame = read_dataset(valid_path)
    index = StationIndex.from_frame(read_dataset(stations_path))
    enriched = enrich(frame, index)
    _write_parquet(enriched, enriched_out)
    dist = enriched[DISTANCE].dropna()
    summary = {
        "rows": len(enriched),
        "rows_without_coordinates": int((enriched[HAS_COORDINATES] == 0).sum()),
        "distance_m_p50": float(dist.median()) if len(dist) else float("nan"),
        "distance_m_p95": float(dist.quantile(0.95)) if len(dist) else float("nan"),
        "stations": len(index.names),
    }
    log.info("enrich: %s", summary)
    return summary


# --- split ------------------------------------------------------------------------------------------------------


def split_step(
    frame_path: str | Path,
    train_out: str | Path,
    test_out: str | Path,
    *,
    kind: str = "time",
    test_months: int = 1,
) -> dict[str, Any]:
    """Split into train and test (time-based by default: test = the latest months).

    Returns:
        The data window (dates and row counts).
    """
    from chicago_arrest.split import split_records

    frame = read_dataset(frame_path)
    train, test, window = split_records(frame, kind=kind, test_months=test_months)  # type: ignore[arg-type]
    _write_parquet(train, train_out)
    _write_parquet(test, test_out)
    log.info("split: %s", window)
    return window.as_dict()


# --- train ------------------------------------------------------------------------------------------------------


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
) -> dict[str, Any]:
    """Train one model type on raw training records and save the :class:`ArrestModel` (joblib).

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
    return {
        "model_type": model_type,
        "calibration_auc": result.calibration_auc,
        "fit_seconds": result.fit_seconds,
        "selected_features": len(info.get("selected_features", [])),
        "encoded_features": info.get("encoded_features"),
        "threshold": result.model.threshold,
        "params": result.params,
        "search_trials": len(result.search_trials),
    }


# --- evaluate ---------------------------------------------------------------------------------------------------


@dataclass
class EvaluateOutput:
    """What :func:`evaluate_step` returns.

    Attributes:
        selected: Model type chosen (highest calibration ROC-AUC, i.e. chosen on data before the test window).
        selected_index: Position of the selected model in the input list.
        metrics: Flat test metrics of the selected model.
        candidates: Per model type: calibration AUC and test metrics.
        roc: ROC points of the selected model (fpr, tpr, threshold).
        confusion: Confusion matrix ``[[tn, fp], [fn, tp]]`` at the selected model's threshold.
    """

    selected: str
    selected_index: int
    metrics: dict[str, float]
    candidates: dict[str, dict[str, float]]
    roc: dict[str, list[float]]
    confusion: list[list[int]]


def evaluate_step(
    model_paths: list[str],
    test_path: str | Path,
    report_out: str | Path,
    charts_dir: str | Path,
    *,
    upstream: dict[str, Any] | None = None,
) -> EvaluateOutput:
    """Evaluate every candidate on the test window, choose one, and write the HTML report.

    The choice uses each model's calibration-slice ROC-AUC (data before the test window), so the test
    metrics of the chosen model are not inflated by choosing on them.

    Args:
        model_paths: Saved :class:`ArrestModel` files (one per model type).
        test_path: Raw test records with labels.
        report_out: HTML report path.
        charts_dir: Folder for the PNG charts.
        upstream: Summaries of earlier steps (ingest, validate, enrich, split) for the report.

    Returns:
        The :class:`EvaluateOutput`.
    """
    from chicago_arrest.evaluate import evaluate_model, evaluation_sections, roc_points, save_charts
    from chicago_arrest.report import html_page, table_html

    test = read_dataset(test_path)
    models = [joblib.load(p) for p in model_paths]
    evaluations = [evaluate_model(m, test) for m in models]
    cal_aucs = [float((m.info or {}).get("calibration_auc", float("nan"))) for m in models]
    best = int(np.nanargmax(cal_aucs))
    chosen, chosen_eval = models[best], evaluations[best]
    charts = save_charts(evaluations, Path(charts_dir), chosen.feature_importance())
    for ev in evaluations:
        ev.per_type.to_json(Path(charts_dir) / f"per_crime_type_{ev.name}.json", orient="records", indent=1)

    sections: list[tuple[str, str]] = []
    if upstream:
        sections.append(("Data flow", table_html(_flow_table(upstream), "{:.0f}")))
    window = (upstream or {}).get("split")
    sections += evaluation_sections(evaluations, charts, chosen_eval.name, window)
    cand = pd.DataFrame(
        [
            {
                "model": e.name,
                "calibration_auc": a,
                "fit_seconds": (m.info or {}).get("fit_seconds", float("nan")),
                "selected_features": len((m.info or {}).get("selected_features", [])),
            }
            for m, e, a in zip(models, evaluations, cal_aucs, strict=True)
        ]
    )
    sections.insert(
        1 if upstream else 0,
        (
            "Model selection (on the calibration month, before the test window)",
            table_html(cand, "{:.4f}") + f"<p>Selected: <b>{chosen_eval.name}</b></p>",
        ),
    )
    Path(report_out).parent.mkdir(parents=True, exist_ok=True)
    Path(report_out).write_text(
        html_page("Chicago arrest model: training report", sections), encoding="utf-8"
    )

    roc = roc_points(chosen_eval.y, chosen_eval.p)
    o = chosen_eval.overall
    return EvaluateOutput(
        selected=chosen_eval.name,
        selected_index=best,
        metrics=chosen_eval.flat_metrics(),
        candidates={
            e.name: {
                "calibration_auc": a,
                **e.flat_metrics(),
                **{k: e.overall[k] for k in ("roc_auc", "ece", "pr_auc", "brier")},
            }
            for e, a in zip(evaluations, cal_aucs, strict=True)
        },
        roc={c: roc[c].tolist() for c in roc.columns},
        confusion=[[int(o["tn"]), int(o["fp"])], [int(o["fn"]), int(o["tp"])]],
    )


def _flow_table(upstream: dict[str, Any]) -> pd.DataFrame:
    ing, val, enr, spl = (upstream.get(k, {}) for k in ("ingest", "validate", "enrich", "split"))
    rows = [
        {"step": "ingest", "rows in": ing.get("rows"), "rows out": ing.get("rows"), "quarantined": 0},
        {
            "step": "validate",
            "rows in": val.get("rows_in"),
            "rows out": val.get("valid"),
            "quarantined": val.get("quarantined"),
        },
        {"step": "enrich", "rows in": enr.get("rows"), "rows out": enr.get("rows"), "quarantined": 0},
        {
            "step": "split (train + test)",
            "rows in": enr.get("rows"),
            "rows out": (spl.get("train_rows") or 0) + (spl.get("test_rows") or 0),
            "quarantined": 0,
        },
    ]
    return pd.DataFrame(rows)


# --- register and gate -------------------------------------------------------------------------------------------


def register_step(
    model_paths: list[str],
    evaluation: dict[str, Any],
    test_path: str | Path,
    report_path: str | Path,
    charts_dir: str | Path,
    *,
    window: dict[str, Any],
    source: str,
    kfp_run: str = "",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Log the training run to MLflow (parent run + one nested run per model) and register the selected model.

    Args:
        model_paths: Saved candidates.
        evaluation: Output of :func:`evaluate_step` (``selected_index`` and per-candidate metrics).
        test_path: Test records (the logged input example).
        report_path: HTML report, logged as an artifact.
        charts_dir: PNG charts and per-crime-type tables, logged as artifacts.
        window: The data window.
        source: Where the data came from.
        kfp_run: KFP run name.
        settings: Library settings.

    Returns:
        ``version`` (registry version of the selected model), ``run_id``, ``model_uri``, ``experiment_id``,
        ``tracking_uri``, and the selected model's metrics.
    """
    import mlflow

    from chicago_arrest.registry import MODEL_NAME, configure_mlflow, kfp_run_tags, log_arrest_model

    settings = settings or get_settings()
    client = configure_mlflow(settings)
    selected_index = int(evaluation["selected_index"])
    models = [joblib.load(p) for p in model_paths]
    chosen = models[selected_index]
    tags = {"source": source or "socrata", "kfp.run": kfp_run, **kfp_run_tags()}
    tags.update({f"window.{k}": str(v) for k, v in window.items()})
    window_params = {f"window_{k}": v for k, v in window.items()}
    charts = Path(charts_dir)
    with mlflow.start_run(run_name=f"training {window.get('test_start', '')}", tags=tags) as parent:
        mlflow.log_params(
            {
                **window_params,
                "source": source or "socrata",
                "candidates": ",".join(str((m.info or {}).get("model_type")) for m in models),
            }
        )
        selected_metrics: dict[str, float] = {}
        for i, model in enumerate(models):
            info = model.info or {}
            name = str(info.get("model_type"))
            metrics = {k: float(v) for k, v in evaluation["candidates"][name].items()}
            metrics["fit_seconds"] = float(info.get("fit_seconds", float("nan")))
            with mlflow.start_run(run_name=name, nested=True, tags=tags):
                params = {f"clf_{k}": v for k, v in info.get("params", {}).items()}
                params.update(
                    {
                        k: info.get(k)
                        for k in (
                            "model_type",
                            "mi_threshold",
                            "smote_ratio",
                            "undersample_ratio",
                            "calibration",
                            "split",
                            "fit_rows",
                            "calibration_rows",
                            "encoded_features",
                        )
                    }
                )
                params["selected_features"] = len(info.get("selected_features", []))
                mlflow.log_params({**params, **window_params})
                mlflow.log_metrics(metrics)
                per_type = charts / f"per_crime_type_{name}.json"
                if per_type.is_file():
                    mlflow.log_artifact(str(per_type))
                mlflow.set_tag("selected", str(i == selected_index).lower())
            if i == selected_index:
                selected_metrics = metrics
        mlflow.log_metrics({f"selected_{k}": v for k, v in selected_metrics.items()})
        mlflow.log_artifact(str(report_path), "report")
        for png in sorted(charts.glob("*.png")):
            mlflow.log_artifact(str(png), "charts")
        info = log_arrest_model(chosen, read_dataset(test_path), MODEL_NAME)
        version = str(info.registered_model_version)
        run_id = parent.info.run_id
        experiment_id = parent.info.experiment_id
    version_tags = {
        **{k: f"{v:.6f}" for k, v in selected_metrics.items()},
        **tags,
        "model_type": str((chosen.info or {}).get("model_type")),
        "run_id": run_id,
    }
    for key, value in version_tags.items():
        if value:
            client.set_model_version_tag(MODEL_NAME, version, key, str(value))
    log.info("register: %s version %s (run %s)", MODEL_NAME, version, run_id)
    return kfp_safe(
        {
            "version": version,
            "run_id": run_id,
            "experiment_id": experiment_id,
            "model_uri": f"models:/{MODEL_NAME}/{version}",
            "artifact_uri": info.model_uri,
            "tracking_uri": settings.resolved_tracking_uri(),
            "metrics": selected_metrics,
        }
    )


def gate_step(
    version: str,
    test_path: str | Path,
    report_out: str | Path,
    *,
    challenger_metrics: dict[str, float] | None = None,
    margin: float = 0.002,
    max_ece: float = 0.05,
    canary_percent: int = 10,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Compare the new version (challenger) with the champion on the same test window.

    With ``canary_percent`` strictly between 0 and 100 a passing challenger stays ``challenger`` and is
    rolled out as a canary (the operator promotes); with 0 or 100 it is promoted directly. The first model
    always becomes champion.

    Args:
        version: Registry version of the challenger.
        test_path: The test window.
        report_out: HTML report path.
        challenger_metrics: The challenger's metrics on this window if known (saves re-scoring it).
        margin: Required ROC-AUC improvement.
        max_ece: Upper bound of the challenger's ECE.
        canary_percent: Canary share; 0 or 100 promotes a passing challenger directly.
        settings: Library settings.

    Returns:
        The :class:`~chicago_arrest.registry.GateDecision` as a dict.
    """
    from chicago_arrest.registry import configure_mlflow, gate
    from chicago_arrest.report import html_page, table_html

    settings = settings or get_settings()
    client = configure_mlflow(settings)
    auto_promote = not 0 < canary_percent < 100
    decision = gate(
        client,
        version,
        read_dataset(test_path),
        margin=margin,
        max_ece=max_ece,
        auto_promote=auto_promote,
        challenger_metrics=challenger_metrics,
    )
    rows = [{"model": f"challenger (v{decision.challenger_version})", **decision.challenger}]
    if decision.champion:
        rows.append({"model": f"champion (v{decision.champion_version})", **decision.champion})
    verdict = (
        "promoted to champion"
        if decision.promoted
        else f"passed: canary at {canary_percent} %"
        if decision.passed
        else "rejected: champion unchanged"
    )
    body = table_html(pd.DataFrame(rows)) + f"<p><b>{verdict}</b>: {decision.reason}</p>"
    Path(report_out).parent.mkdir(parents=True, exist_ok=True)
    Path(report_out).write_text(
        html_page("Champion vs challenger", [("Same test window", body)]), encoding="utf-8"
    )
    return kfp_safe(decision.as_dict())


# --- deploy --------------------------------------------------------------------------------------------------------


def resolve_target(target: str) -> Literal["local", "cluster", "none"]:
    """``auto`` means ``cluster`` inside Kubernetes (a KFP step pod), ``local`` elsewhere."""
    if target == "auto":
        return "cluster" if os.environ.get("KUBERNETES_SERVICE_HOST") else "local"
    if target not in ("local", "cluster", "none"):
        raise ValueError(f"deploy target must be auto, local, cluster or none, got {target!r}")
    return target  # type: ignore[return-value]


def deploy_step(
    decision: dict[str, Any],
    *,
    canary_percent: int = 10,
    target: str = "auto",
    namespace: str = "models",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Hand the outcome of the gate to serving.

    - First model / promoted: the champion serves 100 %.
    - Passed with a canary: the challenger gets ``canary_percent`` % (the champion the rest).
    - Rejected: serving is left as it is.

    Locally this writes the serving state that ``make serve`` reads (a running server picks it up); on a
    cluster it publishes the model to ``s3://<models_bucket>/arrest-predictor/v<N>/`` and creates or patches
    the ``arrest-predictor`` InferenceService (image ``serving_image``, resources ``serving_profile``).

    Returns:
        What was done: ``target``, ``action``, ``champion``, ``challenger``, ``canary_percent``.
    """
    from chicago_arrest.registry import CHAMPION, MODEL_NAME, alias_version, configure_mlflow

    settings = settings or get_settings()
    where = resolve_target(target)
    client = configure_mlflow(settings)
    champion = alias_version(client, CHAMPION)
    version = str(decision["challenger_version"])
    if decision["promoted"]:
        action, challenger, percent = "promote", None, 0
    elif decision["passed"]:
        action, challenger, percent = "canary", version, int(canary_percent)
    else:
        action, challenger, percent = "none", None, 0
    result = {
        "target": where,
        "action": action,
        "champion": champion,
        "challenger": challenger,
        "canary_percent": percent,
    }
    if where == "none" or action == "none":
        log.info("deploy: nothing to do (%s)", decision.get("reason"))
        return kfp_safe(result)
    if champion is None:
        raise RuntimeError(f"registered model {MODEL_NAME} has no champion after the gate")
    if where == "local":
        from chicago_arrest.serving_state import deploy_local

        state = deploy_local(champion, challenger, percent, settings=settings)
        result["serving_state"] = str(settings.serving_config_path)
        log.info("deploy (local): %s", state)
    else:
        from chicago_arrest import k8s
        from chicago_arrest.registry import publish_model_version
        from chicago_arrest.store import make_store

        new = challenger or champion
        storage_uri = k8s.model_storage_uri(new, bucket=settings.models_bucket)
        publish_model_version(
            client, new, make_store(settings, bucket=settings.models_bucket), k8s.model_key_prefix(new)
        )
        obj = k8s.inference_service(
            storage_uri=storage_uri,
            model_version=new,
            canary_percent=percent if challenger else None,
            namespace=namespace,
            image=settings.serving_image,
            profile=settings.serving_profile,
        )
        k8s.apply_inference_service_api(obj)
        result["storage_uri"] = storage_uri
        log.info(
            "deploy (cluster): InferenceService %s/%s serves v%s (%s)",
            namespace,
            obj["metadata"]["name"],
            new,
            action,
        )
    return kfp_safe(result)


def summary_markdown(
    registration: dict[str, Any],
    evaluation: dict[str, Any],
    decision: dict[str, Any],
    deployed: dict[str, Any],
) -> str:
    """The run's summary as Markdown (shown by the KFP UI and printed by ``make pipeline-run``)."""
    m = evaluation["metrics"]
    verdict = (
        "promoted to champion"
        if decision["promoted"]
        else "passed: canary"
        if decision["passed"]
        else "rejected"
    )
    lines = [
        "# Chicago arrest model: training run",
        "",
        f"- Selected model: **{evaluation['selected']}**, registered as "
        f"`{registration['model_uri']}` (MLflow run `{registration['run_id']}`)",
        f"- Gate: **{verdict}** ({decision['reason']})",
        f"- Serving: {deployed['action']} on {deployed['target']} "
        f"(champion v{deployed['champion']}, challenger {deployed['challenger'] or '-'}, "
        f"canary {deployed['canary_percent']} %)",
        "",
        "| metric | all crime types | without arrest-based types |",
        "|---|---|---|",
    ]
    for key in ("roc_auc", "pr_auc", "f1", "brier", "ece"):
        lines.append(f"| {key} | {m[f'test_{key}']:.4f} | {m[f'test_no_ab_{key}']:.4f} |")
    return "\n".join(lines) + "\n"
