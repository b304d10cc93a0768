"""Submitting a compiled pipeline to Vertex AI Pipelines (``make pipeline-run TARGET=vertex``, ``make vertex-smoke``).

Only this module (and :mod:`chicago_arrest.cli.vertex_smoke`) imports ``google.cloud.aiplatform`` and
``google.auth``, and only when called: the ``vertex`` extra (``uv sync --extra vertex``) is neither in the default
install nor in the image. A missing extra or missing Application Default Credentials is one
:class:`~chicago_arrest.core.errors.VertexError` line.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from chicago_arrest import __version__
from chicago_arrest.core.errors import VertexError
from chicago_arrest.core.names import DEFAULT_IMAGE, IMAGE_REPOSITORY, ISVC_NAME, MODEL_NAME

EXTRA_HINT = "run `uv sync --extra vertex` (or `make install`)"
#: A service account's e-mail address (``NAME@PROJECT.iam.gserviceaccount.com``, or a Google-managed one).
_SERVICE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+\.gserviceaccount\.com$")


def default_image(project: str, region: str) -> str:
    """Where the project image is expected on Artifact Registry: ``REGION-docker.pkg.dev/PROJECT/...``."""
    return f"{region}-docker.pkg.dev/{project}/{IMAGE_REPOSITORY}/{IMAGE_REPOSITORY}:{__version__}"


def import_aiplatform() -> Any:
    """``google.cloud.aiplatform``, or a :class:`VertexError` naming the extra to install."""
    import importlib

    try:
        aiplatform = importlib.import_module("google.cloud.aiplatform")
    except ImportError as exc:
        raise VertexError(
            f"--target vertex needs the vertex extra (google-cloud-aiplatform is not installed: {exc}); "
            + EXTRA_HINT
        ) from None
    return aiplatform


def check_credentials() -> None:
    """A :class:`VertexError` (one line) on ``google.auth.exceptions.DefaultCredentialsError``."""
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError as exc:
        raise VertexError(f"--target vertex needs google-auth ({exc}); {EXTRA_HINT}") from None
    try:
        google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError:
        raise VertexError(
            "no Google Cloud credentials (google.auth DefaultCredentialsError): run "
            "`gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file"
        ) from None


def check_service_account(service_account: str) -> str:
    """``service_account`` stripped, or a :class:`VertexError` when it is not a service account's e-mail.

    Empty means Vertex's default: the project's Compute Engine default service account.
    """
    value = service_account.strip()
    if value and not _SERVICE_ACCOUNT.match(value):
        raise VertexError(
            f"SERVICE_ACCOUNT must be a service account's e-mail (NAME@PROJECT.iam.gserviceaccount.com), "
            f"got {service_account!r}"
        )
    return value


def template_with_image(template: Path, image: str, out_dir: Path) -> Path:
    """A copy of the compiled pipeline whose steps run ``image`` instead of the local default image."""
    spec = yaml.safe_load(template.read_text(encoding="utf-8"))
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor.get("container", {})
        if container.get("image") == DEFAULT_IMAGE:
            container["image"] = image
    path = out_dir / template.name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


#: Training-pipeline arguments the Vertex pipeline takes as they are.
_SHARED = (
    "months refresh_months split_kind test_months models mi_threshold calibration search_budget_s "
    "promotion_margin max_ece canary_percent"
)
SHARED_PARAMETERS = tuple(_SHARED.split())


def pipeline_parameters(
    arguments: Mapping[str, Any], *, project: str, region: str, image: str
) -> dict[str, Any]:
    """The Vertex pipeline's parameter values from ``pipeline run``'s arguments.

    ``source`` is the data source on Vertex: empty or ``bigquery`` (the public table) or ``socrata``;
    ``stations_source`` must be a ``gs://`` file (read through Vertex's ``/gcs`` mount) or empty.

    Raises:
        VertexError: For a source or stations file Vertex cannot read.
    """
    source = (arguments.get("source") or "bigquery").lower()
    if source not in ("bigquery", "socrata"):
        raise VertexError(
            f"SOURCE on Vertex is bigquery (default) or socrata, got {arguments.get('source')!r}"
        )
    stations = str(arguments.get("stations_source") or "")
    if stations and not stations.startswith("gs://"):
        raise VertexError(f"STATIONS on Vertex must be a gs:// file, got {stations!r}")
    values = {k: arguments[k] for k in SHARED_PARAMETERS if k in arguments}
    return {
        **values,
        "project": project,
        "location": region,
        "data_source": source,
        "stations_source": "/gcs/" + stations.removeprefix("gs://") if stations else "",
        "serving_image": image,
    }


def require(project: str, region: str, bucket: str) -> str:
    """The bucket's name (without ``gs://``), or a :class:`VertexError` naming the missing make variable."""
    for name, value in (("PROJECT", project), ("REGION", region), ("BUCKET", bucket)):
        if not value:
            raise VertexError(
                f"{name} is required for --target vertex (make pipeline-run TARGET=vertex {name}=...)"
            )
    return bucket.removeprefix("gs://").rstrip("/")


def submit_job(
    aiplatform: Any,
    template: Path,
    *,
    image: str,
    pipeline_root: str,
    parameter_values: Mapping[str, Any],
    project: str,
    region: str,
    service_account: str = "",
    labels: Mapping[str, str] | None = None,
) -> Any:
    """``aiplatform.PipelineJob(...).submit(service_account=...)`` of ``template`` with every step on ``image``.

    Args:
        aiplatform: The ``google.cloud.aiplatform`` module (initialised).
        template: The compiled pipeline YAML.
        image: The project image on a registry Vertex can pull.
        pipeline_root: ``gs://`` root of the run's artifacts.
        parameter_values: The pipeline's parameters.
        project: Google Cloud project.
        region: Vertex AI region.
        service_account: The run's service account (empty: Vertex's default, the Compute Engine default
            service account). The submitter needs ``iam.serviceAccounts.actAs`` on it.
        labels: Labels of the PipelineJob.

    Returns:
        The submitted ``PipelineJob``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = template_with_image(template, image, Path(tmp))
        job = aiplatform.PipelineJob(
            display_name=yaml.safe_load(path.read_text(encoding="utf-8"))["pipelineInfo"]["name"],
            template_path=str(path),
            pipeline_root=pipeline_root,
            parameter_values=dict(parameter_values),
            enable_caching=False,
            project=project,
            location=region,
            **({"labels": dict(labels)} if labels else {}),
        )
        job.submit(service_account=service_account or None)
    return job


def submit(
    arguments: Mapping[str, Any],
    *,
    project: str,
    region: str,
    bucket: str,
    template: Path,
    image: str = "",
    service_account: str = "",
    aiplatform: Any = None,
) -> Any:
    """Submit the compiled Vertex training pipeline with ``google.cloud.aiplatform.PipelineJob``.

    Args:
        arguments: ``pipeline run``'s arguments (see :func:`pipeline_parameters`).
        project: Google Cloud project.
        region: Vertex AI region (e.g. ``us-central1``).
        bucket: GCS bucket (with or without ``gs://``); the pipeline root is ``gs://BUCKET/pipeline-root``.
        template: The compiled pipeline YAML.
        image: The project image on a registry Vertex can pull (default: :func:`default_image`).
        service_account: The run's service account (``make ... SERVICE_ACCOUNT=``); empty: Vertex's default.
        aiplatform: The ``google.cloud.aiplatform`` module (default: imported, with credentials checked).

    Returns:
        The submitted ``PipelineJob``.

    Raises:
        VertexError: Without the extra, without credentials, or for a bad argument.
    """
    from chicago_arrest.release.vertex import find_champion

    bucket = require(project, region, bucket)
    service_account = check_service_account(service_account)
    if aiplatform is None:
        aiplatform = import_aiplatform()
        check_credentials()
    if arguments.get("deploy_target", "auto") != "auto":
        print(
            "note: --deploy-target is not used on Vertex: the gate sets the endpoint's traffic split",
            flush=True,
        )
    image = image or default_image(project, region)
    parameters = pipeline_parameters(arguments, project=project, region=region, image=image)
    aiplatform.init(project=project, location=region, staging_bucket=f"gs://{bucket}")
    endpoint, champion = find_champion(aiplatform)
    print(f"endpoint: {endpoint or '(none: the run creates ' + ISVC_NAME + ')'}; champion: {champion or '-'}")
    job = submit_job(
        aiplatform,
        template,
        image=image,
        pipeline_root=f"gs://{bucket}/pipeline-root",
        parameter_values={**parameters, "endpoint": endpoint, "champion": champion},
        project=project,
        region=region,
        service_account=service_account,
    )
    account = service_account or "the Compute Engine default service account"
    print(f"submitted {job.resource_name} ({MODEL_NAME}, image {image}, run as {account})", flush=True)
    return job
