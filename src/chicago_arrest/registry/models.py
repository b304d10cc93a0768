"""MLflow tracking and the model registry: runs, the pyfunc artifact, registered versions and their records.

Aliases, not the deprecated stages: ``champion`` serves the stable traffic, ``challenger`` names a version only
while it is under canary (never the champion); their rules live in :mod:`chicago_arrest.registry.aliases` and the
gate that moves them in :mod:`chicago_arrest.release.gate`. Every version stays in the registry, with a
description (model, data window, headline test metrics, the gate's decision) and a few tags; the full metrics are
on its run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema

from chicago_arrest import __version__
from chicago_arrest.core.names import CHALLENGER, CHAMPION, EXPERIMENT_NAME, GATE_TAG, MODEL_NAME  # noqa: F401
from chicago_arrest.core.schema import MODEL_INPUT_COLUMNS, PREDICTION_REQUIRED
from chicago_arrest.core.settings import Settings

if TYPE_CHECKING:
    from chicago_arrest.core.store import ObjectStore
    from chicago_arrest.model.artifact import ArrestModel

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model.joblib"


def _pinned_requirements() -> list[str]:
    from importlib.metadata import version

    names = [
        "mlflow",
        "scikit-learn",
        "imbalanced-learn",
        "xgboost-cpu",
        "pandas",
        "numpy",
        "scipy",
        "pyproj",
        "joblib",
    ]
    return [f"{n}=={version(n)}" for n in names] + [f"chicago-arrest=={__version__}"]


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking server (or the local SQLite store) and ensure the experiment.

    Locally (no ``MLFLOW_TRACKING_URI``) the store is ``<data_dir>/mlflow/mlflow.db`` and artifacts go to
    ``<data_dir>/mlflow/artifacts``.

    Args:
        settings: Library settings.

    Returns:
        A client bound to the tracking URI.
    """
    uri = settings.resolved_tracking_uri()
    if not settings.mlflow_tracking_uri:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name(EXPERIMENT_NAME) is None:
        location = None if settings.mlflow_tracking_uri else settings.local_artifact_root()
        with contextlib.suppress(MlflowException):  # created concurrently by another step
            client.create_experiment(EXPERIMENT_NAME, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT_NAME)
    return client


class ArrestPyfunc(PythonModel):
    """MLflow pyfunc wrapper: ``predict(raw_records_df)`` → one arrest probability per row."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the :class:`~chicago_arrest.model.artifact.ArrestModel` from the model's artifacts."""
        self.model: ArrestModel = joblib.load(context.artifacts["model"])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> np.ndarray:
        """Calibrated arrest probabilities (``float64``, shape ``(n,)``)."""
        return self.model.predict_arrest_probability(pd.DataFrame(model_input))


def model_signature() -> ModelSignature:
    """The pyfunc signature: raw Socrata fields in, the arrest probability out.

    Inputs are typed ``any`` (text, numbers and datetimes are all accepted and coerced by the model);
    ``date``, ``primary_type`` and ``iucr`` are required.
    """
    inputs = Schema(
        [ColSpec(AnyType(), name, required=name in PREDICTION_REQUIRED) for name in MODEL_INPUT_COLUMNS]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "arrest_probability")]))


def log_arrest_model(
    model: ArrestModel, input_example: pd.DataFrame, registered_name: str | None = None
) -> Any:
    """Log the model as an MLflow pyfunc in the active run (and register it when a name is given).

    Args:
        model: Trained model; its classifier is pinned to 1 thread for serving.
        input_example: A few raw records (only model input columns are kept).
        registered_name: Registered model name, or ``None`` to log without registering.

    Returns:
        MLflow's ``ModelInfo`` (``registered_model_version`` is set when registered).
    """
    model.set_threads(1)
    # MLflow 3.17 copies uv.lock and pyproject.toml into every model logged from a uv project (~360 KB).
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    example = input_example[[c for c in MODEL_INPUT_COLUMNS if c in input_example.columns]].head(3)
    example = example.astype(object).where(example.notna(), None).astype(str).replace({"None": ""})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_ARTIFACT
        joblib.dump(model, path)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=ArrestPyfunc(),
            artifacts={"model": str(path)},
            signature=model_signature(),
            input_example=example,
            pip_requirements=_pinned_requirements(),
            registered_model_name=registered_name,
            metadata={
                "threshold": model.threshold,
                "model_type": (model.info or {}).get("model_type"),
                **_card_metadata(),
            },
        )


def _card_metadata() -> dict[str, str]:
    """Where the register step logs this run's model card (issue 14), for the served model's MLmodel file."""
    run = mlflow.active_run()
    return {"model_card": f"runs:/{run.info.run_id}/model_card/model_card.html"} if run else {}


def model_card_reference(folder: str | Path) -> str:
    """The ``model_card`` entry of a model folder's MLmodel metadata ("" when absent or not a model folder)."""
    import yaml

    path = Path(folder) / "MLmodel"
    try:
        meta = (yaml.safe_load(path.read_text()) or {}).get("metadata") or {}
    except (OSError, yaml.YAMLError):
        return ""
    return str(meta.get("model_card", ""))


def load_arrest_model(uri: str) -> ArrestModel:
    """Load the :class:`ArrestModel` behind an MLflow model URI or a local model folder.

    Args:
        uri: ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/...``, or a folder with an
            ``MLmodel`` file (e.g. ``/mnt/models`` filled by KServe's storage initializer).

    Returns:
        The model.
    """
    pyfunc = mlflow.pyfunc.load_model(uri)
    wrapped = pyfunc.unwrap_python_model()
    if not isinstance(wrapped, ArrestPyfunc):
        raise TypeError(f"{uri} is not a chicago-arrest model (python model {type(wrapped).__name__})")
    return wrapped.model


def alias_version(client: MlflowClient, alias: str, name: str = MODEL_NAME) -> str | None:
    """The version number an alias points to, or ``None`` when the alias (or the model) does not exist."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def publish_model_version(
    client: MlflowClient, version: str, store: ObjectStore, prefix: str, name: str = MODEL_NAME
) -> list[str]:
    """Copy a registered version's model directory (the one with ``MLmodel``) into an object store.

    The cluster deploy step publishes each served version to ``s3://models/arrest-predictor/v<N>/``, where
    KServe's storage-initializer reads it; serving never depends on where MLflow keeps its artifacts. A
    re-run writes the same keys and removes stale ones, so the prefix always holds exactly this version.

    Args:
        client: MLflow client of the registry.
        version: Registry version.
        store: Destination store (the models bucket).
        prefix: Key prefix, e.g. ``arrest-predictor/v3`` (no trailing slash).
        name: Registered model name.

    Returns:
        The keys written, sorted.

    Raises:
        RuntimeError: If the downloaded directory has no ``MLmodel`` file.
    """
    prefix = prefix.strip("/")
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=tmp, tracking_uri=client.tracking_uri
            )
        )
        if not (local / "MLmodel").is_file():
            raise RuntimeError(f"models:/{name}/{version} has no MLmodel file; not a model directory")
        files = sorted(path for path in local.rglob("*") if path.is_file())
        keys = []
        for path in files:
            key = f"{prefix}/{path.relative_to(local).as_posix()}"
            store.put_bytes(key, path.read_bytes())
            keys.append(key)
    for stale in sorted(set(store.list_keys(prefix + "/")) - set(keys)):
        store.delete(stale)
    log.info("published %s v%s to %s (%d files)", name, version, store.uri(prefix + "/"), len(keys))
    return sorted(keys)


def version_description(
    model_type: str, window: dict[str, Any], metrics: dict[str, float], source: str
) -> str:
    """What a person reads in the registry: the model, its data window, headline test metrics, the gate.

    Args:
        model_type: The selected model's type.
        window: The data window (:class:`~chicago_arrest.data.split.DataWindow` as a dict).
        metrics: The selected model's test metrics (``roc_auc``, ``pr_auc``, ``ece``, ``brier``).
        source: Where the data came from.
    """

    def rows(key: str) -> str:
        try:  # KFP passes the window's numbers as floats
            return f"{int(float(window[key])):,} rows"
        except (KeyError, TypeError, ValueError):
            return "rows ?"

    w = {k: window.get(k, "?") for k in ("train_start", "train_end", "test_start", "test_end", "kind")}
    names = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "ece": "ECE", "brier": "Brier"}
    headline = ", ".join(f"{label} {float(metrics[k]):.4f}" for k, label in names.items() if k in metrics)
    return "\n".join(
        [
            f"{model_type}: probability that a reported crime in Chicago leads to an arrest.",
            f"Trained on {w['train_start']} .. {w['train_end']} ({rows('train_rows')}), tested on "
            f"{w['test_start']} .. {w['test_end']} ({rows('test_rows')}; {w['kind']} split); data: {source}.",
            f"Test: {headline or 'no metrics'} (every metric: the MLflow run).",
            "Gate: not run yet.",
        ]
    )


def kfp_run_tags() -> dict[str, str]:
    """Tags that link an MLflow run to the KFP run that made it (when running under KFP)."""
    tags = {}
    for env, tag in (("KFP_RUN_ID", "kfp.run_id"), ("KFP_POD_NAME", "kfp.pod_name")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


#: Training facts logged as parameters of each candidate's nested run.
_RUN_PARAMS = (
    "model_type",
    "mi_threshold",
    "resample",
    "smote_ratio",
    "undersample_ratio",
    "calibration",
    "split",
    "fit_rows",
    "calibration_rows",
    "encoded_features",
)


def log_training_run(
    client: MlflowClient,
    models: list[ArrestModel],
    evaluation: dict[str, Any],
    input_example: pd.DataFrame,
    report_path: str | Path,
    charts_dir: str | Path,
    *,
    window: dict[str, Any],
    tags: dict[str, str],
    name: str = MODEL_NAME,
) -> dict[str, Any]:
    """Log one training run (parent run + one nested run per candidate) and register the selected model.

    Args:
        client: MLflow client of the registry (:func:`configure_mlflow`).
        models: The candidates.
        evaluation: The evaluate step's output (``selected_index``, per-candidate metrics by model type).
        input_example: Records logged as the model's input example (the test window).
        report_path: HTML training report, logged as ``report/training_report.html``.
        charts_dir: PNG charts (logged under ``charts/``) and ``per_crime_type_<type>.json`` tables.
        window: The data window: params ``window_<key>`` and tags ``window.<key>``.
        tags: Tags of every run and of the registered version (source, KFP run); the version also gets
            ``model_type``, ``train_window``, ``test_window``, ``gate`` and a description.
        name: Registered model name.

    Returns:
        ``version`` (registry version of the selected model), ``run_id`` and ``experiment_id`` of the parent
        run, ``model_uri`` (``models:/<name>/<version>``), ``artifact_uri`` (the logged model) and ``metrics``
        (the selected model's; the headline ones are in the version's description, all are on the run).
    """
    selected_index = int(evaluation["selected_index"])
    chosen = models[selected_index]
    tags = {**tags, **{f"window.{k}": str(v) for k, v in window.items()}}
    window_params = {f"window_{k}": v for k, v in window.items()}
    charts = Path(charts_dir)
    with mlflow.start_run(run_name=f"training {window.get('test_start', '')}", tags=tags) as parent:
        mlflow.log_params(
            {
                **window_params,
                "source": tags.get("source", ""),
                "candidates": ",".join(str((m.info or {}).get("model_type")) for m in models),
            }
        )
        selected_metrics: dict[str, float] = {}
        for i, model in enumerate(models):
            info = model.info or {}
            model_type = str(info.get("model_type"))
            metrics = {k: float(v) for k, v in evaluation["candidates"][model_type].items()}
            metrics["fit_seconds"] = float(info.get("fit_seconds", float("nan")))
            with mlflow.start_run(run_name=model_type, nested=True, tags=tags):
                params = {f"clf_{k}": v for k, v in info.get("params", {}).items()}
                params.update({k: info.get(k) for k in _RUN_PARAMS})
                params["selected_features"] = len(info.get("selected_features", []))
                mlflow.log_params({**params, **window_params})
                mlflow.log_metrics(metrics)
                for table in ("per_crime_type", "per_month", "search"):  # search: the Optuna study's trials
                    path = charts / f"{table}_{model_type}.json"
                    if path.is_file():
                        mlflow.log_artifact(str(path))
                mlflow.set_tag("selected", str(i == selected_index).lower())
            if i == selected_index:
                selected_metrics = metrics
        mlflow.log_metrics({f"selected_{k}": v for k, v in selected_metrics.items()})
        # As an .html file, which the MLflow UI shows as a page (the KFP artifact is a file named ``report``).
        mlflow.log_text(Path(report_path).read_text(encoding="utf-8"), "report/training_report.html")
        for png in sorted(charts.glob("*.png")):
            mlflow.log_artifact(str(png), "charts")
        logged = log_arrest_model(chosen, input_example, name)
        version = str(logged.registered_model_version)
        run_id, experiment_id = parent.info.run_id, parent.info.experiment_id
    tag_version(client, version, chosen, window, selected_metrics, tags, name)
    log.info("registered %s version %s (run %s)", name, version, run_id)
    return {
        "version": version,
        "run_id": run_id,
        "experiment_id": experiment_id,
        "model_uri": f"models:/{name}/{version}",
        "artifact_uri": logged.model_uri,
        "metrics": selected_metrics,
    }


def tag_version(
    client: MlflowClient,
    version: str,
    chosen: ArrestModel,
    window: dict[str, Any],
    selected_metrics: dict[str, float],
    tags: dict[str, str],
    name: str = MODEL_NAME,
) -> None:
    """The registered version's tags (model type, windows, gate ``pending``, the run's tags) and description.

    Idempotent: a second call writes the same values.
    """
    model_type = str((chosen.info or {}).get("model_type"))
    version_tags = {
        "model_type": model_type,
        "train_window": f"{window.get('train_start', '?')}..{window.get('train_end', '?')}",
        "test_window": f"{window.get('test_start', '?')}..{window.get('test_end', '?')}",
        GATE_TAG: "pending",
        **{k: v for k, v in tags.items() if not k.startswith("window.")},
    }
    for key, value in version_tags.items():
        if value:
            client.set_model_version_tag(name, version, key, str(value))
    description = version_description(model_type, window, selected_metrics, tags.get("source", ""))
    client.update_model_version(name, version, description=description)


def registered_by_run(client: MlflowClient, kfp_run: str, name: str = MODEL_NAME) -> dict[str, Any] | None:
    """What an earlier attempt of the same KFP run's register step registered, or ``None``.

    The key is the training run's ``kfp.run`` tag (the KFP run's name), set when the parent MLflow run starts;
    the version is the one made from that run (its ``run_id``), so a retry that follows an attempt which died
    after registering finds it even before the version's own tags were written. Returns what
    :func:`log_training_run` returns.
    """
    if not kfp_run:
        return None
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`kfp.run` = '{kfp_run}'", max_results=100
    )
    for run in runs:
        if "mlflow.parentRunId" in run.data.tags:
            continue  # a candidate's nested run
        versions = client.search_model_versions(f"name='{name}' and run_id='{run.info.run_id}'")
        if not versions:
            continue
        version = max(versions, key=lambda v: int(v.version))
        metrics = {
            k.removeprefix("selected_"): v for k, v in run.data.metrics.items() if k.startswith("selected_")
        }
        log.info(
            "version %s was registered by an earlier attempt of KFP run %s: reused", version.version, kfp_run
        )
        return {
            "version": str(version.version),
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "model_uri": f"models:/{name}/{version.version}",
            "artifact_uri": str(version.source),
            "metrics": metrics,
        }
    return None
