"""Start a training run when monitoring says ``drift`` or ``degraded``: locally, or through the KFP API.

- Inside a KFP step pod (``KUBERNETES_SERVICE_HOST`` set): a run of the newest version of the
  ``chicago-arrest-training`` pipeline through the KFP API (``ml-pipeline.kubeflow:8888`` unless
  ``KFP_API_HOST`` says otherwise). In multi-user KFP the API authorizes the step's ServiceAccount
  (``pipeline-runner``) against ``pipelines.kubeflow.org`` (the Role in ``manifests/platform/models.yaml``);
  its projected token is sent when it exists.
- Elsewhere: ``chicago-arrest pipeline run --target local`` as a detached process, its output in
  ``<data dir>/retrain/<timestamp>.log``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chicago_arrest.core.names import TRAINING_PIPELINE
from chicago_arrest.core.settings import Settings, get_settings

#: In-cluster KFP API of the platform-agnostic install.
IN_CLUSTER_KFP = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
#: Experiment of runs started by monitoring (the same as ``make pipeline-run``'s).
EXPERIMENT = "chicago-arrest"
_TOKEN = Path("/var/run/secrets/kubeflow/pipelines/token")


def on_cluster() -> bool:
    """Whether this process runs in a Kubernetes pod (a KFP step on the cluster)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def start_cluster_run(params: dict[str, Any], client: Any = None) -> str:
    """Start a run of the newest ``chicago-arrest-training`` version through the KFP API.

    Args:
        params: Pipeline parameters (empty: the pipeline's defaults).
        client: A ``kfp.Client`` (default: the in-cluster API).

    Returns:
        ``kfp run <run id>``, the run's reference for the report.

    Raises:
        LookupError: When the training pipeline was never uploaded.
    """
    if client is None:
        import kfp

        token = _TOKEN.read_text(encoding="utf-8").strip() if _TOKEN.is_file() else None
        client = kfp.Client(host=os.environ.get("KFP_API_HOST", IN_CLUSTER_KFP), existing_token=token)
    pipeline_id = client.get_pipeline_id(TRAINING_PIPELINE)
    if pipeline_id is None:
        raise LookupError(f"pipeline {TRAINING_PIPELINE!r} is not on KFP: run make pipeline-run once")
    page = client.list_pipeline_versions(pipeline_id=pipeline_id, sort_by="created_at desc", page_size=1)
    if not page.pipeline_versions:
        raise LookupError(f"pipeline {TRAINING_PIPELINE!r} has no versions")
    experiment = client.create_experiment(EXPERIMENT)
    run = client.run_pipeline(
        experiment_id=experiment.experiment_id,
        job_name=f"{TRAINING_PIPELINE}-retrain-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}",
        pipeline_id=pipeline_id,
        version_id=page.pipeline_versions[0].pipeline_version_id,
        params=params,
        enable_caching=False,
    )
    return f"kfp run {run.run_id}"


def start_local_run(
    training_source: str = "",
    settings: Settings | None = None,
    popen: Callable[..., Any] = subprocess.Popen,
) -> str:
    """Start ``chicago-arrest pipeline run --target local`` in the background; return its log file."""
    settings = settings or get_settings()
    folder = settings.data_dir.resolve() / "retrain"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}.log"
    command = [sys.executable, "-m", "chicago_arrest.cli", "pipeline", "run", "--target", "local"]
    if training_source:
        command += ["--source", training_source]
    with log.open("w", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        # Inside a KFP step ``_KFP_RUNTIME=true`` hides the pipeline DSL from ``kfp.dsl``: not for this child.
        env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
        popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return str(log)


def start_training(training_source: str = "", *, settings: Settings | None = None, client: Any = None) -> str:
    """Start a training run where this process runs (KFP API in a pod, else locally); return where it is."""
    if on_cluster() or client is not None:
        return start_cluster_run({"source": training_source} if training_source else {}, client=client)
    return start_local_run(training_source, settings)
