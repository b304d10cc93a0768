"""The KFP API calls of the project, written once: a client, a pipeline's version to run, the experiment, a run.

``pipeline run`` on a cluster (:mod:`chicago_arrest.pipelines.run`), ``pipeline schedule``
(:mod:`chicago_arrest.pipelines.schedule`) and the retraining that monitoring starts inside a pod
(:mod:`chicago_arrest.monitoring.retrain`) go through these functions. ``kfp`` is imported only when a client is
built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chicago_arrest.core.names import KFP_EXPERIMENT

#: The KFP API inside the cluster (the platform-agnostic install); ``KFP_API_HOST`` overrides it.
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
#: The projected ServiceAccount token a KFP step pod gets for the KFP API (multi-user KFP authorizes it).
POD_TOKEN = Path("/var/run/secrets/kubeflow/pipelines/token")


def client(host: str = "") -> Any:
    """A ``kfp.Client`` of ``host``; without one, the in-cluster API with the pod's token when there is one."""
    import kfp

    if host:
        return kfp.Client(host=host)
    token = POD_TOKEN.read_text(encoding="utf-8").strip() if POD_TOKEN.is_file() else None
    return kfp.Client(host=os.environ.get("KFP_API_HOST", IN_CLUSTER_HOST), existing_token=token)


def newest_version_id(kfp_client: Any, pipeline_id: str, name: str) -> str:
    """Id of the newest version of the pipeline ``name`` (``pipeline_id``).

    Raises:
        LookupError: When it has no versions.
    """
    page = kfp_client.list_pipeline_versions(pipeline_id=pipeline_id, sort_by="created_at desc", page_size=1)
    if not page.pipeline_versions:
        raise LookupError(f"pipeline {name!r} ({pipeline_id}) has no versions")
    return str(page.pipeline_versions[0].pipeline_version_id)


def pipeline_version(
    kfp_client: Any,
    name: str,
    package: Callable[[], str | Path] | None = None,
    *,
    new_version: str = "",
) -> tuple[str, str]:
    """The ids of the pipeline ``name`` and of the version to run.

    Args:
        kfp_client: A ``kfp.Client``.
        name: The pipeline's name on KFP.
        package: Gives the compiled pipeline's path, called only when it is to be uploaded; ``None``: the
            pipeline must be on KFP already.
        new_version: Upload ``package`` as a new version of this name when the pipeline exists; empty: use its
            newest version.

    Returns:
        ``(pipeline_id, version_id)``: a pipeline uploaded now runs its first version.

    Raises:
        LookupError: When the pipeline is not on KFP and there is no ``package``, or it has no versions.
    """
    pipeline_id = kfp_client.get_pipeline_id(name)
    if pipeline_id is None:
        if package is None:
            raise LookupError(f"pipeline {name!r} is not on KFP: run make pipeline-run once")
        pipeline_id = kfp_client.upload_pipeline(str(package()), pipeline_name=name).pipeline_id
    elif new_version and package is not None:
        version = kfp_client.upload_pipeline_version(
            str(package()), pipeline_version_name=new_version, pipeline_id=pipeline_id
        )
        return str(pipeline_id), str(version.pipeline_version_id)
    return str(pipeline_id), newest_version_id(kfp_client, str(pipeline_id), name)


def experiment_id(kfp_client: Any) -> str:
    """Id of the project's KFP experiment (:data:`~chicago_arrest.core.names.KFP_EXPERIMENT`), created if missing."""
    return str(kfp_client.create_experiment(KFP_EXPERIMENT).experiment_id)


def start_run(kfp_client: Any, job_name: str, ids: tuple[str, str], params: dict[str, Any]) -> str:
    """Start a run of a pipeline version (``ids`` from :func:`pipeline_version`) in the experiment; its run id."""
    pipeline_id, version_id = ids
    run = kfp_client.run_pipeline(
        experiment_id=experiment_id(kfp_client),
        job_name=job_name,
        pipeline_id=pipeline_id,
        version_id=version_id,
        params=params,
        enable_caching=False,
    )
    return str(run.run_id)


def _filter(*predicates: dict[str, Any]) -> str:
    """A KFP API filter (``backend/api/v2beta1/filter.proto`` @ kubeflow/pipelines 2.17.0) as ``list_runs`` takes it."""
    return json.dumps({"predicates": list(predicates)})


def run_named(kfp_client: Any, job_name: str) -> Any | None:
    """The run called ``job_name`` in the project's experiment, or ``None``.

    A step that starts a run under a name derived from its own KFP run checks first: retried, it starts no second.
    """
    query = _filter({"operation": "EQUALS", "key": "display_name", "stringValue": job_name})
    runs = kfp_client.list_runs(experiment_id=experiment_id(kfp_client), filter=query, page_size=1).runs or []
    return runs[0] if runs else None


#: KFP run states of a run that has not finished (``kfp_server_api`` ``V2beta1RuntimeState`` @ 2.17).
ACTIVE_STATES = ("PENDING", "RUNNING", "CANCELING", "PAUSED")


def active_runs(kfp_client: Any) -> list[Any]:
    """Every run of every experiment that has not finished yet (the KFP API's ``state IN (...)`` filter).

    The server maps the filter key ``state`` to the run's stored v2 state (``backend/src/apiserver/model/run.go``
    @ kubeflow/pipelines 2.17.0) and supports ``IN`` with ``stringValues`` (``backend/api/v2beta1/filter.proto``).
    A finished run in the answer is dropped all the same.
    """
    query = _filter({"operation": "IN", "key": "state", "stringValues": {"values": list(ACTIVE_STATES)}})
    runs: list[Any] = []
    token = ""
    while True:
        page = kfp_client.list_runs(page_token=token, page_size=100, sort_by="created_at desc", filter=query)
        runs.extend(r for r in page.runs or [] if str(getattr(r, "state", "")).upper() in ACTIVE_STATES)
        token = page.next_page_token or ""
        if not token:
            return runs
