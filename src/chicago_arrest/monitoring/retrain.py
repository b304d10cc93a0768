"""Start a training run when monitoring says ``drift`` or ``degraded``: locally, or through the KFP API.

- Inside a KFP step pod (``KUBERNETES_SERVICE_HOST`` set): a run of the newest version of the
  ``chicago-arrest-training`` pipeline through the KFP API (:func:`chicago_arrest.core.kfp_api.client`:
  ``ml-pipeline.kubeflow:8888`` unless ``KFP_API_HOST`` says otherwise). In multi-user KFP the API authorizes
  the step's ServiceAccount (``pipeline-runner``) against ``pipelines.kubeflow.org`` (the Role in
  ``manifests/platform/models.yaml``); its projected token is sent when it exists.
- Elsewhere: ``chicago-arrest pipeline run --target local`` as a detached process, its output in
  ``<data dir>/retrain/<timestamp>.log``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from chicago_arrest.core import kfp_api
from chicago_arrest.core.names import TRAINING_PIPELINE
from chicago_arrest.core.settings import Settings, get_settings


def on_cluster() -> bool:
    """Whether this process runs in a Kubernetes pod (a KFP step on the cluster)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def start_cluster_run(params: dict[str, Any], client: Any = None, key: str = "") -> str:
    """Start a run of the newest ``chicago-arrest-training`` version through the KFP API.

    Args:
        params: Pipeline parameters (empty: the pipeline's defaults).
        client: A ``kfp.Client`` (default: the in-cluster API).
        key: What started it (the monitoring KFP run's name): the run is named after it, and a run of that name
            is returned instead of a second one (a retried monitoring step starts one training run).

    Returns:
        ``kfp run <run id>``, the run's reference for the report.

    Raises:
        LookupError: When the training pipeline was never uploaded.
    """
    client = client or kfp_api.client()
    ids = kfp_api.pipeline_version(client, TRAINING_PIPELINE)
    job_name = f"{TRAINING_PIPELINE}-retrain-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    if key:
        job_name = f"{TRAINING_PIPELINE}-retrain-for-{key}"
        earlier = kfp_api.run_named(client, job_name)
        if earlier is not None:
            return f"kfp run {earlier.run_id}"
    return f"kfp run {kfp_api.start_run(client, job_name, ids, params)}"


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


def start_training(
    training_source: str = "", *, settings: Settings | None = None, client: Any = None, key: str = ""
) -> str:
    """Start a training run where this process runs (KFP API in a pod, else locally); return where it is.

    ``key`` (the monitoring KFP run's name) makes a second call start nothing on the cluster.
    """
    if on_cluster() or client is not None:
        params = {"source": training_source} if training_source else {}
        return start_cluster_run(params, client=client, key=key)
    return start_local_run(training_source, settings)
