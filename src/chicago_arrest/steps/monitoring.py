"""Monitoring-loop steps: batch-score records with a model version, monitor them against its reference profile.

- :func:`batch_score_step` (pipeline ``chicago-arrest-batch-scoring``): the data contract, then the version's
  probabilities, written to ``predictions/<name>.parquet`` in the object store (quarantined records with
  their reasons to ``predictions/<name>.quarantine.parquet``). ``<name>`` depends only on the input and the
  version, so a re-run rewrites the same objects.
- :func:`monitor_step` (pipeline ``chicago-arrest-monitoring``): PSI per monitored field and for the
  prediction, realised metrics where labels exist, the decision, an HTML report (KFP and an MLflow run linked
  to the model version) and, on ``drift`` / ``degraded``, a training run (:mod:`chicago_arrest.monitoring.retrain`).
  On served traffic also the realised metrics of every version that served, joined with the labels known now,
  and champion against challenger (:mod:`chicago_arrest.monitoring.realised`), recorded on the challenger.

A source is a file (CSV/Parquet in the Socrata schema), a month range landed in the store (``2017-11`` or
``2017-11..2017-12``), or ``serving`` (what was served: the local server's request log and KServe's logger
events, :mod:`chicago_arrest.monitoring.served_log`). Every check runs before anything is written: a bad input
writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chicago_arrest.core.names import (
    CHALLENGER,
    CHAMPION,
    EXPERIMENT_NAME,
    MODEL_NAME,
    SERVED_BUCKET,
    SERVED_COMPARISON_TAG,
)
from chicago_arrest.core.parsing import labels as label_values
from chicago_arrest.core.schema import ID, LABEL, PREDICTION_REQUIRED
from chicago_arrest.core.settings import Settings, get_settings
from chicago_arrest.monitoring.drift import PROFILE_ARTIFACT, Profile, ProfileError, Thresholds
from chicago_arrest.monitoring.realised import MIN_LABELLED
from chicago_arrest.monitoring.served_log import ServedLog
from chicago_arrest.reports.format import count
from chicago_arrest.steps import MetricsSink, kfp_safe, log_metrics, log_summary
from chicago_arrest.steps.retry import retry_safe

log = logging.getLogger(__name__)

PREDICTIONS_PREFIX = "predictions/"
#: Columns a source must have to be scored (the contract quarantines rows with bad values in them).
SCORING_COLUMNS = (ID, *PREDICTION_REQUIRED)
SERVING_SOURCE = "serving"


def _months(spec: str) -> list[str]:
    from chicago_arrest.data.ingest import _shift, month_bounds

    first, _, last = spec.partition("..")
    last = last or first
    month_bounds(first), month_bounds(last)  # checks YYYY-MM
    out, current = [], first
    while current <= last:
        out.append(current)
        current = _shift(int(current[:4]), int(current[5:]), 1)
    if not out:
        raise ValueError(f"month range {spec!r} is empty (first month after the last)")
    return out


def load_source(source: str, months: str = "", settings: Settings | None = None) -> tuple[pd.DataFrame, str]:
    """The records to score or monitor, and a name for them that depends only on the input.

    Args:
        source: A file path, ``serving`` (the local request log), or empty for ``months``.
        months: ``YYYY-MM`` or ``YYYY-MM..YYYY-MM`` landed in the store (when ``source`` is empty); both empty:
            the newest landed month.
        settings: Library settings.

    Returns:
        ``(records, name)``.

    Raises:
        ValueError: No source, a missing column, or no records (an empty month or file).
        FileNotFoundError: A missing file or month.
    """
    from chicago_arrest.core.store import make_store
    from chicago_arrest.data.ingest import load_window
    from chicago_arrest.data.sources import read_source_file

    settings = settings or get_settings()
    if source == SERVING_SOURCE:
        frame, name = served_log(settings).records, "serving"
    elif source:
        path = Path(source).expanduser()
        frame = read_source_file(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        name = f"{path.name.split('.')[0]}-{digest}"
    elif months:
        chosen = _months(months)
        frame = load_window(make_store(settings), chosen)
        name = f"months-{chosen[0]}_{chosen[-1]}"
    else:  # the newest landed month (what a recurring run scores or monitors)
        from chicago_arrest.data.ingest import months_in_store

        store = make_store(settings)
        landed = months_in_store(store)
        if not landed:
            raise FileNotFoundError(
                f"no month landed in {store.uri('raw/crimes/')}: give SOURCE=file or run make pipeline-run"
            )
        frame, name = load_window(store, landed[-1:]), f"months-{landed[-1]}_{landed[-1]}"
        months = landed[-1]
    absent = [c for c in SCORING_COLUMNS if c not in frame.columns and source != SERVING_SOURCE]
    if absent:
        raise ValueError(f"source {source or months} is missing column(s) {', '.join(absent)}")
    if len(frame) == 0:
        raise ValueError(f"source {source or months} has no records")
    return frame, name


def request_log_dir(settings: Settings) -> Path:
    """Folder of the local model server's request log (``<data dir>/serving/requests``)."""
    from chicago_arrest.monitoring.served_log import request_log_dir as folder

    return folder(settings.data_dir)


def served_log(settings: Settings) -> ServedLog:
    """What was served: the local request log and the KServe logger's objects in the served bucket.

    Raises:
        FileNotFoundError: When neither holds a served record.
    """
    from chicago_arrest.core.store import make_store
    from chicago_arrest.monitoring.served_log import load_served

    return load_served(settings.data_dir, make_store(settings, bucket=SERVED_BUCKET))


def resolve_version(client: Any, version: str = "") -> str:
    """The registry version to use: ``version`` when given (it must exist), else the champion.

    Raises:
        LookupError: When the version does not exist, or there is no champion.
    """
    from mlflow.exceptions import MlflowException

    from chicago_arrest.registry.models import alias_version

    if not str(version).strip():
        champion = alias_version(client, CHAMPION)
        if champion is None:
            raise LookupError(f"registered model {MODEL_NAME} has no champion: run `make pipeline-run` first")
        return champion
    try:
        client.get_model_version(MODEL_NAME, str(version).strip())
    except MlflowException:
        raise LookupError(f"model version {version} of {MODEL_NAME} does not exist") from None
    return str(version).strip()


def load_profile(client: Any, version: str) -> Profile:
    """The reference profile stored with a model version (on its MLflow run).

    Raises:
        ProfileError: When the version has none (registered before monitoring existed) or it is unreadable.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    run_id = client.get_model_version(MODEL_NAME, version).run_id
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=PROFILE_ARTIFACT, tracking_uri=client.tracking_uri
        )
    except (MlflowException, OSError):
        raise ProfileError(
            f"model version {version} has no reference profile ({PROFILE_ARTIFACT} on run {run_id}): it was "
            "registered before monitoring existed; retrain (make pipeline-run) or pass VERSION= of a newer one"
        ) from None
    profile = Profile.from_json(Path(path).read_text(encoding="utf-8"))
    profile.model_version = version
    return profile


def save_profile(client: Any, run_id: str, profile: Profile) -> None:
    """Store a profile on a model version's run (the register step)."""
    client.log_text(run_id, profile.to_json(), PROFILE_ARTIFACT)


def _contract(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Valid records and quarantined ones (with ``reason``); the label is not required to score."""
    from chicago_arrest.data.validate import validate_records

    unlabelled = LABEL not in frame.columns
    checked = frame.assign(**{LABEL: "false"}) if unlabelled else frame
    # Not the hour rule: a batch to score or the requests a server received need not look like a month of crimes.
    result = validate_records(checked, hour_rule=False)
    valid, quarantine = result.valid, result.quarantine
    if unlabelled:
        valid, quarantine = valid.drop(columns=[LABEL]), quarantine.drop(columns=[LABEL])
    quarantine = quarantine.astype({c: "string" for c in quarantine.columns if c != "reason"})
    return valid, quarantine


def _model(client: Any, version: str) -> Any:
    from chicago_arrest.core.runtime import available_cpus
    from chicago_arrest.registry.models import load_arrest_model

    model = load_arrest_model(f"models:/{MODEL_NAME}/{version}")
    model.set_threads(available_cpus())  # logged pinned to 1 thread for serving; a batch uses every core
    return model


@retry_safe
def batch_score_step(
    *,
    source: str = "",
    months: str = "",
    version: str = "",
    settings: Settings | None = None,
    metrics: MetricsSink | None = None,
) -> dict[str, Any]:
    """Score records with a model version and write ``predictions/<name>.parquet`` to the object store.

    Args:
        source: A file path (CSV/Parquet, Socrata schema); empty for ``months``.
        months: ``YYYY-MM[..YYYY-MM]`` landed in the store.
        version: Registry version; empty = the champion.
        settings: Library settings.
        metrics: Receives rows_in, scored, quarantined, seconds.

    Returns:
        ``predictions`` and ``quarantine`` (store URIs), ``model_version``, ``rows_in``, ``scored``,
        ``quarantined``, ``reasons`` (records per broken rule), ``arrest_rate`` (predicted), ``seconds``.
    """
    import time

    from chicago_arrest.core.store import make_store, write_parquet
    from chicago_arrest.registry.models import configure_mlflow

    started = time.perf_counter()
    settings = settings or get_settings()
    client = configure_mlflow(settings)
    version = resolve_version(client, version)
    frame, name = load_source(source, months, settings)
    model = _model(client, version)
    valid, quarantine = _contract(frame)
    if len(valid) == 0:
        raise ValueError(f"the data contract rejected every record of {source or months}; nothing scored")
    probabilities = model.predict_arrest_probability(valid)
    predictions = pd.DataFrame(
        {
            "id": valid[ID].to_numpy(dtype="int64"),  # the contract's Int64, never null in valid records
            "arrest_probability": probabilities,
            "arrest": probabilities >= model.threshold,
            "model_version": version,
            "scored_at": pd.Timestamp(dt.datetime.now(dt.UTC)),
        }
    )
    store = make_store(settings)
    key = f"{PREDICTIONS_PREFIX}{name}-v{version}.parquet"
    quarantine_key = f"{PREDICTIONS_PREFIX}{name}-v{version}.quarantine.parquet"
    write_parquet(store, quarantine_key, quarantine)  # first: a scored object never lacks its quarantine
    write_parquet(store, key, predictions)
    reasons: dict[str, int] = {}
    for text in quarantine["reason"].astype(str) if len(quarantine) else []:
        for rule in text.split(";"):
            reasons[rule] = reasons.get(rule, 0) + 1
    result = {
        "predictions": store.uri(key),
        "quarantine": store.uri(quarantine_key),
        "model_version": version,
        "rows_in": len(frame),
        "scored": len(predictions),
        "quarantined": len(quarantine),
        "reasons": reasons,
        "arrest_rate": float(np.mean(predictions["arrest"])),
        "seconds": round(time.perf_counter() - started, 2),
    }
    log_summary(
        f"{count(len(predictions))} scored with v{version}, {count(len(quarantine))} quarantined"
        f" -> {result['predictions']}"
    )
    log_metrics(metrics, result)
    return kfp_safe(result)


def _monitoring_run_of(client: Any, kfp_run: str) -> str | None:
    """The MLflow monitoring run an earlier attempt of the same KFP run logged (a retry logs into it)."""
    import mlflow

    if not kfp_run:
        return None
    experiment = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        return None
    query = f"tags.kind = 'monitoring' and tags.`kfp.run` = '{kfp_run}'"
    runs = client.search_runs([experiment.experiment_id], filter_string=query, max_results=1)
    return str(runs[0].info.run_id) if runs else None


def _log_monitoring_run(client: Any, result: Any, report: str, source: str, kfp_run: str = "") -> str:
    """An MLflow run with the PSI, the realised metrics and the report, linked to the model version.

    With ``kfp_run``, one run per KFP run: a retry of the step logs into the run an earlier attempt started.
    """
    import mlflow

    version = result.model_version
    tags = {
        "model_version": version,
        "model_name": MODEL_NAME,
        "kind": "monitoring",
        "source": source,
        "decision": result.decision,
        **({"kfp.run": kfp_run} if kfp_run else {}),
    }
    existing = _monitoring_run_of(client, kfp_run)
    name = f"monitoring v{version} {dt.date.today()}"
    with mlflow.start_run(run_id=existing, run_name=None if existing else name, tags=tags) as run:
        values = {f"psi_{k}": v for k, v in result.psi.items()}
        values["prediction_psi"] = result.prediction_psi
        values["rows"] = float(result.rows)
        values.update({f"realised_{k}": v for k, v in (result.realised or {}).items()})
        for served_version, entry in ((result.served or {}).get("realised_served") or {}).items():
            for key in ("rows", "labelled_rows", "roc_auc", "pr_auc", "ece"):
                if isinstance(entry.get(key), int | float):
                    values[f"served_v{served_version}_{key}"] = float(entry[key])
        mlflow.log_metrics(values)
        mlflow.log_params(
            {
                "psi_threshold": result.thresholds.psi,
                "max_auc_drop": result.thresholds.max_auc_drop,
                "max_ece": result.thresholds.max_ece,
                "retrain": result.retrain,
            }
        )
        mlflow.log_text(report, "monitoring/report.html")
        mlflow.log_dict(result.summary(), "monitoring/summary.json")
        run_id = str(run.info.run_id)
    comparison = (result.served or {}).get("comparison")
    if comparison:  # on the challenger: what make promote and make status read
        from chicago_arrest.monitoring.realised import to_tag

        recorded = {**comparison, "monitoring_run": run_id}
        client.set_model_version_tag(
            MODEL_NAME, comparison["challenger"]["version"], SERVED_COMPARISON_TAG, to_tag(recorded)
        )
    client.set_model_version_tag(MODEL_NAME, version, "monitoring.last_run", run_id)
    client.set_model_version_tag(MODEL_NAME, version, "monitoring.decision", result.decision)
    return run_id


def _served_traffic(
    client: Any, settings: Settings, labels: str, min_labelled: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """What was served and, joined with the labels known now, how right each version was (the ``served`` part).

    Returns:
        The served records (every one, for the profile) and ``{"realised_served", "labels", "comparison",
        "problems", "sources"}``.
    """
    from chicago_arrest.core.store import make_store
    from chicago_arrest.monitoring.realised import (
        assign_roles,
        compare,
        join_labels,
        load_labels,
        realised_by_version,
    )
    from chicago_arrest.registry.models import alias_version

    served = served_log(settings)
    champion, challenger = alias_version(client, CHAMPION), alias_version(client, CHALLENGER)
    records = assign_roles(served.records, champion, challenger)
    known, where = load_labels(make_store(settings), records, labels)
    joined, coverage = join_labels(records, known)
    comparison = None
    if champion and challenger and challenger != champion:
        comparison = compare(joined, champion, challenger, min_labelled)
    if comparison is not None:
        comparison["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for problem in served.problems:
        log.warning("served log: %s", problem)
    part = {
        "realised_served": realised_by_version(joined, min_labelled),
        "labels": {"source": where, **coverage, "min_labelled": int(min_labelled)},
        "comparison": comparison,
        "problems": served.problems,
        "sources": served.sources,
    }
    return records, part


def _decision_metrics(entry: dict[str, Any] | None) -> dict[str, float] | None:
    """The monitored version's realised metrics on served traffic, as the decision reads them (None: pending)."""
    if not entry or entry.get("roc_auc") is None:
        return None
    keys = ("roc_auc", "pr_auc", "ece", "labelled_rows", "positive_rate")
    return {k: float(entry[k]) for k in keys if entry.get(k) is not None}


@retry_safe
def monitor_step(
    report_out: str | Path,
    *,
    source: str = "",
    months: str = "",
    version: str = "",
    psi_threshold: float = Thresholds.psi,
    max_auc_drop: float = Thresholds.max_auc_drop,
    max_ece: float = Thresholds.max_ece,
    retrain: str = "auto",
    training_source: str = "",
    labels: str = "",
    min_labelled: int = MIN_LABELLED,
    summary_out: str | Path | None = None,
    settings: Settings | None = None,
    metrics: MetricsSink | None = None,
    kfp_client: Any = None,
    kfp_run: str = "",
) -> dict[str, Any]:
    """Monitor recent records against a model version's reference profile; retrain on drift or degradation.

    Safe to repeat for one KFP run (``kfp_run``): a retry starts no second training run and logs into the same
    MLflow run.

    Args:
        report_out: HTML report path (the KFP ``Output[HTML]``).
        source: A file path, ``serving`` (the local request log), or empty for ``months``.
        months: ``YYYY-MM[..YYYY-MM]`` landed in the store.
        version: Registry version; empty = the champion.
        psi_threshold: PSI at or above which a field or the prediction has drifted.
        max_auc_drop: Realised ROC-AUC this far under the version's test ROC-AUC is degraded.
        max_ece: Realised ECE above this is degraded.
        retrain: ``auto`` (start a training run on drift / degraded) or ``never``.
        training_source: ``source`` of the training run it starts (empty: the pipeline's default).
        labels: Served traffic only: a file (CSV/Parquet, ``id`` and ``arrest``) with the labels known now;
            empty: the months landed in the object store.
        min_labelled: Served traffic only: labelled records a version needs before its realised metrics count.
        summary_out: Where the SUMMARY json is written, if anywhere.
        settings: Library settings.
        metrics: Receives the PSI values and realised metrics.
        kfp_client: KFP client for the retrain trigger (tests; default: the in-cluster API inside a pod).
        kfp_run: The KFP run's name (the component passes it): the key that makes a retry harmless.

    Returns:
        The SUMMARY (decision, reasons, psi, prediction_psi, realised, retrain; on served traffic also
        realised_served and served) plus ``model_version``, ``rows``, ``quarantined``, ``mlflow_run_id`` and
        ``retrain_run``.
    """
    import json

    from chicago_arrest.model.evaluate import calibration_table
    from chicago_arrest.monitoring.drift import monitor
    from chicago_arrest.monitoring.retrain import start_training
    from chicago_arrest.registry.models import configure_mlflow
    from chicago_arrest.reports.monitoring import monitoring_report

    if retrain not in ("auto", "never"):
        raise ValueError(f"retrain must be auto or never, got {retrain!r}")
    settings = settings or get_settings()
    client = configure_mlflow(settings)
    version = resolve_version(client, version)
    profile = load_profile(client, version)
    quarantined = 0
    served: dict[str, Any] | None = None
    realised = None
    if source == SERVING_SOURCE:
        frame, served = _served_traffic(client, settings, labels, min_labelled)
        realised = _decision_metrics(served["realised_served"].get(version))
    else:
        frame, _ = load_source(source, months, settings)
        frame, quarantine = _contract(frame)
        quarantined = len(quarantine)
        if len(frame) == 0:
            raise ValueError(f"the data contract rejected every record of {source or months}")
    probabilities = _model(client, version).predict_arrest_probability(frame)
    thresholds = Thresholds(psi_threshold, max_auc_drop, max_ece)
    result = monitor(profile, frame, probabilities, thresholds, realised=realised)
    result.served = served
    calibration = None
    if result.realised is not None and LABEL in frame.columns:
        y, unknown = label_values(frame, strict=False)
        calibration = calibration_table(y[~unknown], probabilities[~unknown])
    if retrain == "never":
        result.retrain = "disabled"
    elif result.decision != "ok":
        result.retrain_run = start_training(
            training_source, settings=settings, client=kfp_client, key=kfp_run
        )
        result.retrain = "started"
    label = source or f"months {months}"
    report = monitoring_report(result, source=label, calibration=calibration, retrain_link=result.retrain_run)
    Path(report_out).parent.mkdir(parents=True, exist_ok=True)
    Path(report_out).write_text(report, encoding="utf-8")
    run_id = _log_monitoring_run(client, result, report, label, kfp_run)
    summary = result.summary()
    if summary_out:
        Path(summary_out).expanduser().write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log_summary(
        f"{result.decision.upper()} v{version} on {count(result.rows)} records: "
        f"{result.reasons[0] if result.reasons else ''}; retrain {result.retrain}"
    )
    if metrics is not None:
        log_metrics(metrics, {f"psi_{k}": v for k, v in result.psi.items()})
        log_metrics(metrics, {"prediction_psi": result.prediction_psi, "rows": result.rows})
        log_metrics(metrics, {f"realised_{k}": v for k, v in (result.realised or {}).items()})
    extra = {
        "model_version": version,
        "rows": result.rows,
        "quarantined": quarantined,
        "mlflow_run_id": run_id,
        "retrain_run": result.retrain_run,
    }
    return kfp_safe({**summary, **extra})


def store_reference_profile(
    client: Any, registration: dict[str, Any], model: Any, test: pd.DataFrame
) -> Profile:
    """Profile the selected model's test window and store it on the version's run (the register step).

    Args:
        client: MLflow client.
        registration: What :func:`chicago_arrest.registry.models.log_training_run` returned (``run_id``, ``version``,
            ``metrics`` with ``test_<metric>`` keys).
        model: The registered model.
        test: Its raw test records.
    """
    from chicago_arrest.monitoring.drift import build_profile

    metrics = {
        k.removeprefix("test_"): v
        for k, v in (registration.get("metrics") or {}).items()
        if k.startswith("test_") and not k.startswith("test_no_ab_")
    }
    profile = build_profile(
        test, model.predict_arrest_probability(test), metrics, str(registration["version"])
    )
    save_profile(client, str(registration["run_id"]), profile)
    log.info(
        "reference profile of version %s stored (%d fields)", registration["version"], len(profile.fields)
    )
    return profile
