"""``chicago-arrest-vertex-smoke``: the smallest pipeline that proves image, bucket, account and endpoint.

It runs on a real project (``make vertex-smoke``, :mod:`chicago_arrest.cli.vertex_smoke`).

One step in the project image writes a probe through Vertex's ``/gcs`` mount and saves a tiny model (a logistic
regression on generated records) → GCPC's ``ModelUploadOp`` with the project image as the serving container →
``EndpointCreateOp`` → ``ModelDeployOp`` at 100 %. The runner then sends one ``predict`` and one ``rawPredict``,
and deletes what the run created (the endpoint, the model, the run's objects under its pipeline root); every
resource is named and labelled with the run's ``smoke`` id, so the cleanup finds them even after a failure.
"""

from google_cloud_pipeline_components.types.artifact_types import UnmanagedContainerModel
from google_cloud_pipeline_components.v1.endpoint import EndpointCreateOp, ModelDeployOp
from google_cloud_pipeline_components.v1.model import ModelUploadOp
from kfp import dsl

from chicago_arrest.components.vertex_smoke import vertex_smoke_probe
from chicago_arrest.core.names import VERTEX_SMOKE_PIPELINE
from chicago_arrest.release.vertex import container_spec

PIPELINE_NAME = VERTEX_SMOKE_PIPELINE


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Smoke test of the Vertex AI variant: the project image writing to /gcs, a tiny model uploaded "
    "and deployed to an endpoint of its own.",
)
def vertex_smoke_pipeline(
    project: str,
    location: str,
    display_name: str,
    labels: dict,
    probe_dir: str,
    serving_image: str,
    machine_type: str = "n1-standard-2",
) -> None:
    """Probe the image and the bucket, upload and deploy a tiny model.

    Args:
        project: Google Cloud project of the model and the endpoint.
        location: Vertex AI region.
        display_name: Name of the model, the endpoint and the deployed model (``arrest-smoke-<id>``).
        labels: Labels of the model and the endpoint (``{"smoke": "<id>"}``: what the cleanup looks for).
        probe_dir: ``/gcs/BUCKET/...`` folder the probe writes ``probe.json`` to.
        serving_image: The project image on a registry Vertex pulls from (the serving container).
        machine_type: Machine type of the deployed model.
    """
    probe_task = vertex_smoke_probe(probe_dir=probe_dir).set_caching_options(False)
    container = dsl.importer(
        artifact_uri=probe_task.outputs["Output"],
        artifact_class=UnmanagedContainerModel,
        metadata={"containerSpec": container_spec(serving_image)},
    ).set_display_name("smoke-model")
    upload_task = ModelUploadOp(
        project=project,
        location=location,
        display_name=display_name,
        unmanaged_container_model=container.output,
        labels=labels,
    )
    endpoint_task = EndpointCreateOp(
        project=project, location=location, display_name=display_name, labels=labels
    )
    ModelDeployOp(
        model=upload_task.outputs["model"],
        endpoint=endpoint_task.outputs["endpoint"],
        deployed_model_display_name=display_name,
        traffic_split={"0": "100"},
        dedicated_resources_machine_type=machine_type,
        dedicated_resources_min_replica_count=1,
        dedicated_resources_max_replica_count=1,
    )
