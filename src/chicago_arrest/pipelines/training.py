"""The training pipeline ``chicago-arrest-training``, and the one home of its parameters and defaults.

ingest → validate → split → train (one task per model type, in parallel) → evaluate → register → gate →
deploy. Enrich is a report branch off validate: the model recomputes every feature from the raw fields, so
split and train consume the validated records and the enrich summary feeds only the training report.

The same definition runs locally with ``kfp.local`` and on a KFP cluster. Only single-output components feed
later steps (``dsl.If`` on a NamedTuple field is silently skipped by ``kfp.local``), and the deploy step
decides in code rather than behind a ``dsl.If``.
"""

from typing import List

from kfp import dsl, kubernetes

from chicago_arrest.components.deploy import deploy
from chicago_arrest.components.enrich import enrich
from chicago_arrest.components.evaluate import evaluate
from chicago_arrest.components.gate import gate
from chicago_arrest.components.ingest import ingest
from chicago_arrest.components.register import register
from chicago_arrest.components.split import split
from chicago_arrest.components.train import train
from chicago_arrest.components.validate import validate
from chicago_arrest.core.names import STEP_CONFIG_MAP, STEP_SECRET, TRAINING_PIPELINE, WINDOW_MONTHS
from chicago_arrest.steps.retry import NETWORK

PIPELINE_NAME = TRAINING_PIPELINE
#: ConfigMap and Secret (namespace of the pipeline runs) that give steps the object store and MLflow;
#: created by kind-cluster/up.sh.
CONFIG_MAP = STEP_CONFIG_MAP
CONFIG_KEYS = (
    "ARREST_STORE_BACKEND",
    "ARREST_S3_ENDPOINT",
    "ARREST_S3_BUCKET",
    "ARREST_S3_SECURE",
    "ARREST_MODELS_BUCKET",
    "ARREST_SERVING_IMAGE",
    "ARREST_SERVING_PROFILE",
    "MLFLOW_TRACKING_URI",
)
SECRET = STEP_SECRET
SECRET_KEYS = ("ARREST_S3_ACCESS_KEY", "ARREST_S3_SECRET_KEY")


#: ``imagePullPolicy`` of every step's container. The project image is loaded into kind (``kind load``), never
#: pulled: without a policy Kubernetes takes ``Always`` for an image tagged ``:latest`` (or untagged) and the step
#: pod pulls from Docker Hub an image that exists only on the node. kfp-kubernetes writes it into the platform
#: spec (``kfp/kubernetes/image.py`` @ 2.17.0); the 2.17.0 driver sets it on the step's container
#: (``backend/src/v2/driver/k8s.go`` @ kubeflow/pipelines 2.17.0, ``extendPodSpecPatch``). kfp.local ignores it.
IMAGE_PULL_POLICY = "IfNotPresent"


#: Requests and limits of each train task, per cluster profile (``make kind-up CLUSTER_PROFILE=...``, recorded in
#: ``.data/cluster.json``). The pipeline is defined with ``laptop``; ``pipeline run`` on a cluster recorded as
#: ``small`` compiles with the other (:func:`chicago_arrest.pipelines.compile.compile_training`). ``small`` is a
#: 4 vCPU / 16 GB hosted runner, where the platform alone requests about 3 CPUs (kind-cluster/README.md): one
#: train pod asking for 1 CPU would never be scheduled.
TRAIN_RESOURCES = {
    "laptop": {"cpu_request": "1", "cpu_limit": "2", "memory_request": "2G", "memory_limit": "6G"},
    "small": {"cpu_request": "250m", "cpu_limit": "2", "memory_request": "1G", "memory_limit": "4G"},
}


def on_cluster(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """What every task gets on a cluster: :data:`IMAGE_PULL_POLICY` (call it on every task of every pipeline)."""
    return kubernetes.set_image_pull_policy(task, IMAGE_PULL_POLICY)


def _cluster_config(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Inject settings from the ConfigMap and Secret (ignored by kfp.local, where the environment is used)."""
    kubernetes.use_config_map_as_env(task, CONFIG_MAP, {k: k for k in CONFIG_KEYS})
    kubernetes.use_secret_as_env(task, SECRET, {k: k for k in SECRET_KEYS})
    return on_cluster(task)


def network_step(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """A task that talks to services: the cluster settings, no caching, and KFP retries with backoff.

    On KFP 2.17.0 the backend retries such a task only when its pod errored, not when its Python raised; the step
    retries its own transient failures (:mod:`chicago_arrest.steps.retry`, which also holds :data:`NETWORK`).
    """
    return _cluster_config(task).set_caching_options(False).set_retry(**NETWORK.kfp_arguments())


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Predict whether a reported Chicago crime ends in an arrest: retrain, evaluate on the latest "
    "month, register in MLflow, gate against the champion and roll out to KServe.",
)
def training_pipeline(
    source: str = "",
    stations_source: str = "",
    months: int = WINDOW_MONTHS,
    refresh_months: int = 1,
    split_kind: str = "time",
    test_months: int = 2,
    # The dearest first: kfp.local runs two iterations of a ParallelFor at a time (its ParallelExecutor's
    # conservative_max), so the cheapest waits for a free slot instead of the dearest (a year: 36 s, not 49 s).
    models: List[str] = ["xgboost", "random_forest", "logreg"],  # noqa: B006 - KFP default value
    mi_threshold: float = 0.001,
    calibration: str = "sigmoid",
    search_budget_s: float = 0.0,
    promotion_margin: float = 0.0,
    max_ece: float = 0.05,
    max_area_ece: float = 0.0,
    canary_percent: int = 10,
    deploy_target: str = "auto",
) -> None:
    """Train, evaluate, register, gate and deploy the arrest model.

    Args:
        source: Local CSV/Parquet file(s) in the Socrata schema (commas between files, or a folder); empty = Socrata.
        stations_source: Local police stations file; empty = next to ``source`` or the Socrata API.
        months: Months in the training window (the last two are the test months; a first run lands them all).
        refresh_months: Latest months re-landed on every run.
        split_kind: ``time`` (test on the latest months) or ``random`` (stratified 80/20).
        test_months: Months held out for testing (two: the gate checks calibration in each).
        models: Model types trained in parallel.
        mi_threshold: Mutual-information threshold (nats) of the feature selection.
        calibration: ``sigmoid`` or ``isotonic``.
        search_budget_s: Seconds of Optuna search on the walk-forward folds per model type (0 = defaults).
        promotion_margin: ROC-AUC gain a challenger needs over the champion on top of one bootstrap SE.
        max_ece: Upper bound of a challenger's expected calibration error, overall and in every test month.
        max_area_ece: Upper bound of a challenger's ECE in its worst police district or community area (areas
            with at least 30 test rows); 0 = off (the default).
        canary_percent: Share of traffic for a passing challenger (0 or 100 = promote directly).
        deploy_target: ``auto``, ``local``, ``cluster`` or ``none``.
    """
    ingest_task = network_step(
        ingest(source=source, stations_source=stations_source, months=months, refresh_months=refresh_months)
    )
    validate_task = on_cluster(validate(raw=ingest_task.outputs["raw"]))
    split_task = on_cluster(
        split(records=validate_task.outputs["valid"], kind=split_kind, test_months=test_months)
    )
    # Report branch: the features the model computes, materialised for inspection and the report.
    enrich_task = on_cluster(
        enrich(valid=validate_task.outputs["valid"], stations=ingest_task.outputs["stations"])
    )

    with dsl.ParallelFor(models, parallelism=3) as model_type:
        train_task = train(
            train_data=split_task.outputs["train"],
            stations=ingest_task.outputs["stations"],
            model_type=model_type,
            split_kind=split_kind,
            mi_threshold=mi_threshold,
            calibration=calibration,
            search_budget_s=search_budget_s,
        )
        on_cluster(train_task)
        laptop = TRAIN_RESOURCES["laptop"]
        train_task.set_cpu_request(laptop["cpu_request"]).set_cpu_limit(laptop["cpu_limit"])
        train_task.set_memory_request(laptop["memory_request"]).set_memory_limit(laptop["memory_limit"])

    evaluate_task = on_cluster(
        evaluate(
            models=dsl.Collected(train_task.outputs["model"]),
            test=split_task.outputs["test"],
            ingest_summary=ingest_task.outputs["Output"],
            validate_summary=validate_task.outputs["Output"],
            enrich_summary=enrich_task.outputs["Output"],
            window=split_task.outputs["Output"],
        )
    )
    register_task = network_step(
        register(
            models=dsl.Collected(train_task.outputs["model"]),
            test=split_task.outputs["test"],
            report=evaluate_task.outputs["report"],
            charts=evaluate_task.outputs["charts"],
            evaluation=evaluate_task.outputs["Output"],
            window=split_task.outputs["Output"],
            source=source,
            kfp_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        )
    )
    gate_task = _cluster_config(
        gate(
            registration=register_task.outputs["Output"],
            evaluation=evaluate_task.outputs["Output"],
            test=split_task.outputs["test"],
            promotion_margin=promotion_margin,
            max_ece=max_ece,
            canary_percent=canary_percent,
            max_area_ece=max_area_ece,
        )
    ).set_caching_options(False)
    network_step(
        deploy(
            decision=gate_task.outputs["Output"],
            registration=register_task.outputs["Output"],
            evaluation=evaluate_task.outputs["Output"],
            canary_percent=canary_percent,
            target=deploy_target,
        )
    )
