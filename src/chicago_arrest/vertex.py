"""Vertex AI Pipelines variant (``pipelines/vertex_training.py``): BigQuery ingest, the Vertex gate, the submit.

Only :func:`submit` (through :func:`import_aiplatform`, :func:`check_credentials`, :func:`find_champion`) needs the
``vertex`` extra (``uv sync --extra vertex``), which is neither in the default install nor in the image; the rest
runs in the project image as the Vertex pipeline's steps: :func:`window_sql` (the BigQuery export of a month window
as Socrata records, run by GCPC's ``BigqueryQueryJobOp``), :func:`land_export` (the export through the project's
ingest step), :func:`save_served_model` and :func:`gate_decision` (:func:`chicago_arrest.release.gate.decide`
against the champion, and the endpoint's traffic split). The champion on Vertex is the model with the largest
traffic share on the ``arrest-predictor`` endpoint; its test metrics are its upload labels (:func:`metric_labels`).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from chicago_arrest import __version__
from chicago_arrest.core.errors import ArrestError
from chicago_arrest.core.names import CHICAGO_TZ, DEFAULT_IMAGE, IMAGE_REPOSITORY, ISVC_NAME, MODEL_NAME
from chicago_arrest.core.schema import FIELD_BY_NAME, RAW_COLUMNS
from chicago_arrest.core.settings import Settings

#: The public table (project ``bigquery-public-data``, dataset ``chicago_crime``), multi-region ``US``.
BIGQUERY_TABLE = "bigquery-public-data.chicago_crime.crime"
BIGQUERY_LOCATION = "US"
#: Socrata field (the project's raw schema) → (BigQuery column, BigQuery type). The BigQuery schema as listed in
#: github.com/rsyi/whale-bigquery-public-data, metadata/bq-1/bigquery-public-data.chicago_crime.crime-*.md
#: (21 of its 22 columns; ``location``, the "(lat, lon)" text, is not a raw field of the project).
BIGQUERY_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("unique_key", "INTEGER"),
    "case_number": ("case_number", "STRING"),
    "date": ("date", "TIMESTAMP"),
    "block": ("block", "STRING"),
    "iucr": ("iucr", "STRING"),
    "primary_type": ("primary_type", "STRING"),
    "description": ("description", "STRING"),
    "location_description": ("location_description", "STRING"),
    "arrest": ("arrest", "BOOLEAN"),
    "domestic": ("domestic", "BOOLEAN"),
    "beat": ("beat", "INTEGER"),
    "district": ("district", "INTEGER"),
    "ward": ("ward", "INTEGER"),
    "community_area": ("community_area", "INTEGER"),
    "fbi_code": ("fbi_code", "STRING"),
    "x_coordinate": ("x_coordinate", "FLOAT"),
    "y_coordinate": ("y_coordinate", "FLOAT"),
    "year": ("year", "INTEGER"),
    "updated_on": ("updated_on", "TIMESTAMP"),
    "latitude": ("latitude", "FLOAT"),
    "longitude": ("longitude", "FLOAT"),
}
#: Socrata's floating timestamp (``2017-01-01T13:05:00.000``) in BigQuery's FORMAT_TIMESTAMP spelling.
_SOCRATA_TIMESTAMP_SQL = "%Y-%m-%dT%H:%M:%E3S"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

#: V2 (Open Inference Protocol) routes and port of the project image's model server, for Vertex's containerSpec.
PREDICT_ROUTE = f"/v2/models/{ISVC_NAME}/infer"
HEALTH_ROUTE = "/v2/health/ready"
SERVING_PORT = 8080
#: Metrics written as model labels (label values allow only ``[a-z0-9_-]``: parts per million as integers).
LABEL_METRICS = ("roc_auc", "pr_auc", "ece", "brier")
_PPM = 1_000_000
EXTRA_HINT = "run `uv sync --extra vertex` (or `make install`)"


class VertexError(ArrestError):
    """A Vertex run cannot be prepared or submitted (one line says why and what to do)."""


# -- BigQuery ingest ----------------------------------------------------------------------------------------


def window_months(months: int, end_month: str = "", today: date | None = None) -> list[str]:
    """The ``months`` calendar months ending with ``end_month`` (default: the last full month in Chicago).

    Args:
        months: Months in the window (>= 1).
        end_month: Last month, ``YYYY-MM``; empty = the month before today's (Chicago time).
        today: The current day (default: today in Chicago).

    Returns:
        ``YYYY-MM`` months, oldest first.

    Raises:
        ValueError: For ``months < 1`` or a malformed ``end_month``.
    """
    from chicago_arrest.data.ingest import _today_in_chicago, month_bounds, plan_months

    if end_month and not _MONTH.match(end_month):
        raise ValueError(f"end_month must be YYYY-MM, got {end_month!r}")
    # plan_months gives the last full months before `today`'s month: end_month's successor plays `today`.
    anchor = month_bounds(end_month)[1] if end_month else (today or _today_in_chicago())
    return plan_months(anchor, months, [], 0)[0]


def _column_sql(field: str) -> str:
    """One select item: the BigQuery column as the Socrata field's text (every raw value is text)."""
    column, kind = BIGQUERY_COLUMNS[field]
    spec = FIELD_BY_NAME[field]
    if kind == "TIMESTAMP":
        expr = f"FORMAT_TIMESTAMP('{_SOCRATA_TIMESTAMP_SQL}', {column}, '{CHICAGO_TZ}')"
    elif kind == "STRING":
        expr = column
    elif kind == "INTEGER" and spec.kind == "code" and spec.pad:
        # Socrata spells beat 0111 and district 001; BigQuery stores them as integers.
        expr = f"LPAD(CAST({column} AS STRING), {spec.pad}, '0')"
    else:  # INTEGER, FLOAT, BOOLEAN (true / false, as the Socrata CSV export)
        expr = f"CAST({column} AS STRING)"
    return f"  {expr} AS {field}"


def window_sql(export_uri: str, months: int, end_month: str = "", today: date | None = None) -> str:
    """The BigQuery statement that exports one month window of Chicago crimes as Parquet to ``export_uri``.

    Month boundaries are midnight in Chicago (``TIMESTAMP('2024-03-01 00:00:00', 'America/Chicago')``), and
    ``date`` / ``updated_on`` are written as Chicago wall-clock time in Socrata's format, so the export is the
    Socrata records of the same months (same field names, every value as text, codes zero-padded; no ORDER BY:
    landing sorts each month by date and id).

    Args:
        export_uri: ``gs://`` folder for the Parquet shards (the component's output Dataset).
        months: Months in the window.
        end_month: Last month, ``YYYY-MM``; empty = the last full month.
        today: The current day (default: today in Chicago).

    Returns:
        An ``EXPORT DATA ... AS SELECT`` statement for GCPC's ``BigqueryQueryJobOp``.

    Raises:
        ValueError: For a bad window or an export URI that is not a plain ``gs://`` folder.
    """
    from chicago_arrest.data.ingest import month_bounds

    if not export_uri.startswith("gs://") or re.search(r"['\"\\\s*]", export_uri):
        raise ValueError(f"export_uri must be a gs:// folder without quotes, spaces or *, got {export_uri!r}")
    window = window_months(months, end_month, today)
    start, end = month_bounds(window[0])[0], month_bounds(window[-1])[1]
    missing = set(RAW_COLUMNS) - set(BIGQUERY_COLUMNS)
    if missing:  # the schema grew a field BigQuery was never mapped to
        raise ValueError(f"no BigQuery column for raw field(s) {sorted(missing)}")
    select = ",\n".join(_column_sql(field) for field in RAW_COLUMNS)
    return (
        f"-- Chicago crimes {window[0]}..{window[-1]} ({len(window)} months, Chicago time) as Socrata records\n"
        "EXPORT DATA OPTIONS (\n"
        f"  uri = '{export_uri.rstrip('/')}/crimes-*.parquet',\n"
        "  format = 'PARQUET',\n"
        "  overwrite = true\n"
        ") AS\n"
        f"SELECT\n{select}\n"
        f"FROM `{BIGQUERY_TABLE}`\n"
        f"WHERE date >= TIMESTAMP('{start:%Y-%m-%d} 00:00:00', '{CHICAGO_TZ}')\n"
        f"  AND date < TIMESTAMP('{end:%Y-%m-%d} 00:00:00', '{CHICAGO_TZ}')\n"
    )


def land_export(
    export_dir: str | Path,
    raw_out: str | Path,
    stations_out: str | Path,
    *,
    months: int,
    stations_source: str = "",
    settings: Settings | None = None,
    raw_metadata: dict[str, Any] | None = None,
    metrics: Any = None,
) -> dict[str, Any]:
    """Land the BigQuery export through the project's own ingest step (a Socrata-schema Parquet file).

    Args:
        export_dir: Folder of the ``crimes-*.parquet`` shards (on Vertex the ``/gcs/...`` mount of the export).
        raw_out: Parquet path for the window's raw records.
        stations_out: Parquet path for the police stations.
        months: Months in the window (the export holds exactly these).
        stations_source: Police stations file; empty = the Socrata API (the stations are not in BigQuery).
        settings: Library settings.
        raw_metadata: Metadata of the raw Dataset artifact.
        metrics: KFP metrics sink.

    Returns:
        The ingest step's summary, with ``source`` naming the BigQuery table.

    Raises:
        FileNotFoundError: When the export folder has no Parquet shard.
    """
    from chicago_arrest.core.settings import get_settings
    from chicago_arrest.steps.data import ingest_step

    shards = sorted(Path(export_dir).glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no Parquet shard in the BigQuery export folder {export_dir}")
    settings = settings or get_settings()
    with tempfile.TemporaryDirectory(prefix="bigquery-") as tmp:
        crimes = Path(tmp) / "crimes.parquet"
        pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True).to_parquet(crimes, index=False)
        if not stations_source:
            from chicago_arrest.data.socrata import SocrataClient

            with SocrataClient(settings) as socrata:
                socrata.fetch_stations().to_parquet(Path(tmp) / "police_stations.parquet", index=False)
        summary = ingest_step(
            raw_out,
            stations_out,
            source=str(crimes),
            stations_source=stations_source,
            months=months,
            settings=settings,
            raw_metadata=raw_metadata,
            metrics=metrics,
        )
    return {**summary, "source": f"bigquery:{BIGQUERY_TABLE}", "shards": len(shards)}


# -- the served model and the gate --------------------------------------------------------------------------


def save_served_model(
    model_paths: list[str],
    evaluation: Mapping[str, Any],
    out_dir: str | Path,
    test_path: str | Path | None = None,
) -> str:
    """Save the candidate the evaluate step selected as an MLflow pyfunc folder (what the server loads).

    Args:
        model_paths: Saved candidates (train step outputs), in the evaluate step's order.
        evaluation: The evaluate step's output (``selected_index``).
        out_dir: The folder to create (on Vertex the ``/gcs/...`` path of an output artifact).
        test_path: Test records; their first three model inputs become the input example (as in MLflow).

    Returns:
        The model type saved.
    """
    import joblib
    import mlflow.pyfunc

    from chicago_arrest.core.schema import MODEL_INPUT_COLUMNS
    from chicago_arrest.registry.models import ArrestPyfunc, model_signature

    example = None
    if test_path is not None:
        head = pd.read_parquet(test_path).head(3)
        example = head[[c for c in MODEL_INPUT_COLUMNS if c in head.columns]].astype(object)
        example = example.where(example.notna(), None).astype(str).replace({"None": ""})
    model = joblib.load(model_paths[int(evaluation["selected_index"])])
    model.set_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        joblib.dump(model, path)
        mlflow.pyfunc.save_model(
            str(out_dir),
            python_model=ArrestPyfunc(),
            artifacts={"model": str(path)},
            signature=model_signature(),
            input_example=example,
            pip_requirements=[f"chicago-arrest=={__version__}"],
            metadata={"threshold": model.threshold, "model_type": (model.info or {}).get("model_type")},
        )
    return str(evaluation["selected"])


def metric_labels(metrics: Mapping[str, Any]) -> dict[str, str]:
    """Vertex model labels for test metrics: ``roc_auc_ppm: "898412"`` (label values cannot hold a dot)."""
    return {f"{k}_ppm": str(round(float(metrics[k]) * _PPM)) for k in LABEL_METRICS if k in metrics}


def labels_metrics(labels: Mapping[str, str]) -> dict[str, float]:
    """The metrics :func:`metric_labels` wrote (labels that are not metrics are ignored)."""
    out = {}
    for key in LABEL_METRICS:
        value = labels.get(f"{key}_ppm")
        if value is not None and value.isdigit():
            out[key] = int(value) / _PPM
    return out


def gate_decision(
    evaluation: Mapping[str, Any],
    champion: Mapping[str, Any],
    *,
    margin: float = 0.002,
    max_ece: float = 0.05,
    canary_percent: int = 10,
) -> dict[str, Any]:
    """The project's promotion rule (:func:`chicago_arrest.release.gate.decide`) and the endpoint's traffic split.

    The champion's metrics are those it was uploaded with (its own test window), not a re-score on the
    challenger's window as in the MLflow gate: the Vertex pipeline has no registry to load it from.

    Args:
        evaluation: The evaluate step's output (the selected candidate's test metrics).
        champion: ``{"model", "deployed_model_id", "metrics"}`` found by :func:`find_champion`; empty when the
            endpoint serves no model yet.
        margin: Required ROC-AUC improvement.
        max_ece: Upper bound of the challenger's ECE.
        canary_percent: Share of a passing challenger; 0 or 100 promotes it directly.

    Returns:
        ``action`` (``promote``, ``canary`` or ``none``), ``traffic_split`` for ``ModelDeployOp`` (``"0"`` is
        the model being deployed; percentages as text, GCPC's ``Dict[str, str]``: KFP would turn numbers into
        floats), ``labels`` for ``ModelUploadOp``, ``passed``, ``reason``, both metric sets.

    Raises:
        ValueError: For a champion without metrics or a deployed model id.
    """
    from chicago_arrest.release.gate import decide

    chosen = evaluation["candidates"][evaluation["selected"]]
    challenger = {k: float(chosen[k]) for k in LABEL_METRICS}
    challenger.update({k: float(chosen[k]) for k in ("roc_auc_se", "ece_worst_month") if k in chosen})
    champ: dict[str, float] | None = None
    if champion:
        champ = {k: float(v) for k, v in dict(champion.get("metrics") or {}).items()}
        if not {"roc_auc", "ece"} <= set(champ) or not champion.get("deployed_model_id"):
            raise ValueError(
                f"champion {champion.get('model')!r}: needs metrics roc_auc and ece and a deployed_model_id, "
                f"got {dict(champion)}"
            )
    passed, reason = decide(challenger, champ, margin, max_ece)
    if not passed:
        action, split = "none", {}
    elif champ is not None and 0 < canary_percent < 100:
        action = "canary"
        split = {"0": str(canary_percent), str(champion["deployed_model_id"]): str(100 - canary_percent)}
    else:
        action, split = "promote", {"0": "100"}
    labels = {
        **metric_labels(challenger),
        "model_type": re.sub(r"[^a-z0-9_-]", "-", str(evaluation["selected"]).lower()),
        "gate": "passed" if passed else "rejected",
    }
    return {
        "action": action,
        "traffic_split": split,
        "labels": labels,
        "passed": passed,
        "reason": reason,
        "challenger": challenger,
        "champion": champ or {},
        "champion_model": str(champion.get("model", "")) if champion else "",
    }


def container_spec(image: str) -> dict[str, Any]:
    """Vertex ``containerSpec`` of the project image: the model server on the V2 routes, the model from GCS.

    Vertex copies the uploaded model folder and passes its ``gs://`` address as ``AIP_STORAGE_URI``; the server
    loads it with MLflow (``--model_uri``) and reports the deployed model's id as the version. Vertex expands
    ``$(VAR)`` in ``args`` from its own ``AIP_*`` variables.
    """
    return {
        "imageUri": image,
        "command": ["python", "-m", "arrest_server"],
        "args": [
            "--model_uri=$(AIP_STORAGE_URI)",
            "--model_version=$(AIP_DEPLOYED_MODEL_ID)",
            f"--http_port={SERVING_PORT}",
        ],
        "predictRoute": PREDICT_ROUTE,
        "healthRoute": HEALTH_ROUTE,
        "ports": [{"containerPort": SERVING_PORT}],
    }


# -- submit -------------------------------------------------------------------------------------------------


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


def find_champion(aiplatform: Any, endpoint_name: str = ISVC_NAME) -> tuple[str, dict[str, Any]]:
    """The ``arrest-predictor`` endpoint and its champion: the deployed model with the largest traffic share.

    Args:
        aiplatform: The ``google.cloud.aiplatform`` module (initialised with project and region).
        endpoint_name: Display name of the endpoint.

    Returns:
        ``(endpoint resource name, champion)``; ``("", {})`` when there is no endpoint, and ``{}`` as the
        champion when it serves nothing. The champion is ``{"model", "deployed_model_id", "metrics"}``.
    """
    endpoints = aiplatform.Endpoint.list(
        filter=f'display_name="{endpoint_name}"', order_by="create_time desc"
    )
    if not endpoints:
        return "", {}
    endpoint = endpoints[0]
    split = {k: int(v) for k, v in (endpoint.traffic_split or {}).items() if int(v) > 0}
    if not split:
        return str(endpoint.resource_name), {}
    deployed_id = max(split, key=lambda k: (split[k], k))
    deployed = next(d for d in endpoint.list_models() if str(d.id) == deployed_id)
    metrics = labels_metrics(aiplatform.Model(deployed.model).labels or {})
    if not {"roc_auc", "ece"} <= set(metrics):
        raise VertexError(
            f"champion {deployed.model} on {endpoint.resource_name} has no roc_auc_ppm / ece_ppm labels: it was "
            "not uploaded by this pipeline; label it, or take it off the endpoint's traffic"
        )
    return str(endpoint.resource_name), {
        "model": str(deployed.model),
        "deployed_model_id": deployed_id,
        "metrics": metrics,
    }


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


def submit(
    arguments: Mapping[str, Any],
    *,
    project: str,
    region: str,
    bucket: str,
    template: Path,
    image: str = "",
    aiplatform: Any = None,
) -> Any:
    """Submit the compiled Vertex pipeline with ``google.cloud.aiplatform.PipelineJob``.

    Args:
        arguments: ``pipeline run``'s arguments (see :func:`pipeline_parameters`).
        project: Google Cloud project.
        region: Vertex AI region (e.g. ``us-central1``).
        bucket: GCS bucket (with or without ``gs://``); the pipeline root is ``gs://BUCKET/pipeline-root``.
        template: The compiled pipeline YAML.
        image: The project image on a registry Vertex can pull (default: :func:`default_image`).
        aiplatform: The ``google.cloud.aiplatform`` module (default: imported, with credentials checked).

    Returns:
        The submitted ``PipelineJob``.

    Raises:
        VertexError: Without the extra, without credentials, or for a bad argument.
    """
    for name, value in (("PROJECT", project), ("REGION", region), ("BUCKET", bucket)):
        if not value:
            raise VertexError(
                f"{name} is required for --target vertex (make pipeline-run TARGET=vertex {name}=...)"
            )
    if aiplatform is None:
        aiplatform = import_aiplatform()
        check_credentials()
    if arguments.get("deploy_target", "auto") != "auto":
        print(
            "note: --deploy-target is not used on Vertex: the gate sets the endpoint's traffic split",
            flush=True,
        )
    bucket = bucket.removeprefix("gs://").rstrip("/")
    image = image or default_image(project, region)
    parameters = pipeline_parameters(arguments, project=project, region=region, image=image)
    aiplatform.init(project=project, location=region, staging_bucket=f"gs://{bucket}")
    endpoint, champion = find_champion(aiplatform)
    print(f"endpoint: {endpoint or '(none: the run creates ' + ISVC_NAME + ')'}; champion: {champion or '-'}")
    with tempfile.TemporaryDirectory() as tmp:
        path = template_with_image(template, image, Path(tmp))
        job = aiplatform.PipelineJob(
            display_name=yaml.safe_load(path.read_text(encoding="utf-8"))["pipelineInfo"]["name"],
            template_path=str(path),
            pipeline_root=f"gs://{bucket}/pipeline-root",
            parameter_values={**parameters, "endpoint": endpoint, "champion": champion},
            enable_caching=False,
            project=project,
            location=region,
        )
        job.submit()
    print(f"submitted {job.resource_name} ({MODEL_NAME}, image {image})", flush=True)
    return job
