"""The Vertex AI Pipelines variant ``chicago-arrest-vertex-training`` (the optional ``vertex`` extra).

ingest (BigQuery month window with GCPC's ``BigqueryQueryJobOp``, or Socrata as in the training pipeline) →
the project's own validate / split / train / evaluate components → the selected model saved for serving →
gate (the project's promotion rule against the endpoint's champion) → GCPC's ``ModelUploadOp`` to the Vertex
AI Model Registry (the project image: Vertex's predict on the V1 route, V2 through rawPredict) → GCPC's
``EndpointCreateOp`` (first run) and ``ModelDeployOp`` with the champion / challenger traffic split.

No MLflow, MinIO or KServe here: the champion is the model with the largest traffic share on the
``arrest-predictor`` endpoint, found by the submitter (:func:`chicago_arrest.release.vertex.find_champion`) and
passed as the ``endpoint`` and ``champion`` parameters. The GCPC components run only on Vertex AI (not under
``kfp.local``), so this pipeline branches with ``dsl.If``. Submit it with ``make pipeline-run TARGET=vertex``.
"""

import inspect
from typing import List

from google_cloud_pipeline_components.types.artifact_types import UnmanagedContainerModel, VertexEndpoint
from google_cloud_pipeline_components.v1.bigquery import BigqueryQueryJobOp
from google_cloud_pipeline_components.v1.endpoint import EndpointCreateOp, ModelDeployOp
from google_cloud_pipeline_components.v1.model import ModelUploadOp
from kfp import dsl

from chicago_arrest.components.bigquery_window import bigquery_window
from chicago_arrest.components.enrich import enrich
from chicago_arrest.components.evaluate import evaluate
from chicago_arrest.components.ingest import ingest
from chicago_arrest.components.land_bigquery import land_bigquery
from chicago_arrest.components.serve_model import serve_model
from chicago_arrest.components.split import split
from chicago_arrest.components.train import train
from chicago_arrest.components.validate import validate
from chicago_arrest.components.vertex_gate import vertex_gate
from chicago_arrest.core.names import ISVC_NAME, MODEL_NAME, VERTEX_PIPELINE
from chicago_arrest.data.bigquery import BIGQUERY_LOCATION
from chicago_arrest.pipelines.training import training_pipeline
from chicago_arrest.release.vertex import container_spec

PIPELINE_NAME = VERTEX_PIPELINE
#: The training pipeline's defaults (their one home) for the parameters both pipelines share.
_DEFAULTS = {k: p.default for k, p in inspect.signature(training_pipeline.pipeline_func).parameters.items()}


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Predict whether a reported Chicago crime ends in an arrest, on Vertex AI: BigQuery month "
    "window, the project's training steps, Vertex Model Registry and an endpoint with a canary split.",
)
def vertex_training_pipeline(
    project: str,
    location: str = "us-central1",
    data_source: str = "bigquery",
    bigquery_location: str = BIGQUERY_LOCATION,
    end_month: str = "",
    months: int = _DEFAULTS["months"],
    refresh_months: int = _DEFAULTS["refresh_months"],
    stations_source: str = _DEFAULTS["stations_source"],
    split_kind: str = _DEFAULTS["split_kind"],
    test_months: int = _DEFAULTS["test_months"],
    models: List[str] = _DEFAULTS["models"],
    mi_threshold: float = _DEFAULTS["mi_threshold"],
    calibration: str = _DEFAULTS["calibration"],
    search_budget_s: float = _DEFAULTS["search_budget_s"],
    promotion_margin: float = _DEFAULTS["promotion_margin"],
    max_ece: float = _DEFAULTS["max_ece"],
    canary_percent: int = _DEFAULTS["canary_percent"],
    serving_image: str = "",
    machine_type: str = "n1-standard-2",
    endpoint: str = "",
    champion: dict = {},  # noqa: B006 - KFP default value
) -> None:
    """Train, evaluate, upload, gate and deploy the arrest model on Vertex AI.

    Args:
        project: Google Cloud project of the BigQuery job, the model and the endpoint.
        location: Vertex AI region.
        data_source: ``bigquery`` (the public table) or ``socrata``.
        bigquery_location: Location of the BigQuery job (the public dataset is in ``US``).
        end_month: Last month of the window, ``YYYY-MM``; empty = the last full month (BigQuery only).
        months: Months in the training window.
        refresh_months: Latest months re-landed on every run (Socrata only).
        stations_source: Police stations file (``/gcs/...``); empty = the Socrata API.
        split_kind: ``time`` (test on the latest months) or ``random`` (stratified 80/20).
        test_months: Months held out for testing.
        models: Model types trained in parallel.
        mi_threshold: Mutual-information threshold (nats) of the feature selection.
        calibration: ``sigmoid`` or ``isotonic``.
        search_budget_s: Seconds of hyper-parameter search per model type (0 = defaults).
        promotion_margin: ROC-AUC improvement a challenger needs over the champion.
        max_ece: Upper bound of a challenger's expected calibration error.
        canary_percent: Share of traffic for a passing challenger (0 or 100 = promote directly).
        serving_image: The project image on a registry Vertex pulls from (the serving container).
        machine_type: Machine type of the deployed model.
        endpoint: Resource name of the ``arrest-predictor`` endpoint; empty = create it.
        champion: ``{"model", "deployed_model_id", "metrics"}`` of the endpoint's champion; empty = none.
    """
    with dsl.If(data_source == "bigquery", name="bigquery"):
        window_task = bigquery_window(months=months, end_month=end_month)
        query_task = BigqueryQueryJobOp(
            query=window_task.outputs["Output"], project=project, location=bigquery_location
        )
        land_task = land_bigquery(
            export=window_task.outputs["export"], stations_source=stations_source, months=months
        ).after(query_task)
    with dsl.Else(name="socrata"):
        socrata_task = ingest(
            source="", stations_source=stations_source, months=months, refresh_months=refresh_months
        ).set_caching_options(False)
    raw = dsl.OneOf(land_task.outputs["raw"], socrata_task.outputs["raw"])
    stations = dsl.OneOf(land_task.outputs["stations"], socrata_task.outputs["stations"])
    ingest_summary = dsl.OneOf(land_task.outputs["Output"], socrata_task.outputs["Output"])

    validate_task = validate(raw=raw)
    split_task = split(records=validate_task.outputs["valid"], kind=split_kind, test_months=test_months)
    enrich_task = enrich(valid=validate_task.outputs["valid"], stations=stations)
    with dsl.ParallelFor(models, parallelism=3) as model_type:
        train_task = train(
            train_data=split_task.outputs["train"],
            stations=stations,
            model_type=model_type,
            split_kind=split_kind,
            mi_threshold=mi_threshold,
            calibration=calibration,
            search_budget_s=search_budget_s,
        )
        train_task.set_cpu_limit("2").set_memory_limit("6G")
    evaluate_task = evaluate(
        models=dsl.Collected(train_task.outputs["model"]),
        test=split_task.outputs["test"],
        ingest_summary=ingest_summary,
        validate_summary=validate_task.outputs["Output"],
        enrich_summary=enrich_task.outputs["Output"],
        window=split_task.outputs["Output"],
    )

    served_task = serve_model(
        models=dsl.Collected(train_task.outputs["model"]),
        evaluation=evaluate_task.outputs["Output"],
        test=split_task.outputs["test"],
    )
    gate_task = vertex_gate(
        evaluation=evaluate_task.outputs["Output"],
        champion=champion,
        promotion_margin=promotion_margin,
        max_ece=max_ece,
        canary_percent=canary_percent,
    )
    container = dsl.importer(
        artifact_uri=served_task.outputs["Output"],
        artifact_class=UnmanagedContainerModel,
        metadata={"containerSpec": container_spec(serving_image)},
    ).set_display_name("served-model")
    upload_task = ModelUploadOp(
        project=project,
        location=location,
        display_name=MODEL_NAME,
        unmanaged_container_model=container.output,
        labels=gate_task.outputs["labels"],
    ).after(gate_task)

    with dsl.If(gate_task.outputs["action"] != "none", name="deploy"):
        with dsl.If(endpoint == "", name="new-endpoint"):
            create_task = EndpointCreateOp(project=project, location=location, display_name=ISVC_NAME)
            ModelDeployOp(
                model=upload_task.outputs["model"],
                endpoint=create_task.outputs["endpoint"],
                deployed_model_display_name=MODEL_NAME,
                traffic_split=gate_task.outputs["traffic_split"],
                dedicated_resources_machine_type=machine_type,
                dedicated_resources_min_replica_count=1,
                dedicated_resources_max_replica_count=1,
            )
        with dsl.Else(name="existing-endpoint"):
            existing = dsl.importer(
                artifact_uri=endpoint, artifact_class=VertexEndpoint, metadata={"resourceName": endpoint}
            ).set_display_name("endpoint")
            ModelDeployOp(
                model=upload_task.outputs["model"],
                endpoint=existing.output,
                deployed_model_display_name=MODEL_NAME,
                traffic_split=gate_task.outputs["traffic_split"],
                dedicated_resources_machine_type=machine_type,
                dedicated_resources_min_replica_count=1,
                dedicated_resources_max_replica_count=1,
            )
