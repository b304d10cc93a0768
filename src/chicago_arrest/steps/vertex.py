"""The Vertex pipeline's own steps: the BigQuery export window, landing it, the served model, the gate.

- :func:`bigquery_window_step`: the ``EXPORT DATA`` statement (:func:`chicago_arrest.data.bigquery.window_sql`),
  after creating the export folder.
- :func:`land_bigquery_step`: the exported shards (listed through the Cloud Storage API) through the project's
  ingest step, so the records are landed exactly like Socrata's.
- :func:`serve_model_step`: the selected candidate as the MLflow folder the serving container loads.
- :func:`vertex_gate_step`: the promotion rule against the endpoint's champion, and the traffic split.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from chicago_arrest.core.settings import Settings
from chicago_arrest.steps import MetricsSink

log = logging.getLogger(__name__)


def bigquery_window_step(
    export_uri: str, export_path: str | Path, *, months: int, end_month: str = "", today: date | None = None
) -> str:
    """Create the export folder, return the statement that fills it.

    Args:
        export_uri: ``gs://`` address of the output Dataset (where BigQuery writes).
        export_path: The same folder as this step sees it (on Vertex ``/gcs/...``); created here.
        months: Months in the window.
        end_month: Last month, ``YYYY-MM``; empty = the last full month.
        today: The current day (default: today in Chicago).

    Returns:
        The ``EXPORT DATA`` statement.
    """
    from chicago_arrest.data.bigquery import prepare_export, window_sql

    sql = window_sql(export_uri, months, end_month, today)  # checks the arguments before anything is created
    prepare_export(export_path)
    log.info("export folder %s created; the statement exports to %s", export_path, export_uri)
    return sql


def land_bigquery_step(
    export_uri: str,
    raw_out: str | Path,
    stations_out: str | Path,
    *,
    months: int,
    stations_source: str = "",
    settings: Settings | None = None,
    raw_metadata: dict[str, Any] | None = None,
    metrics: MetricsSink | None = None,
    storage_client: Any = None,
) -> dict[str, Any]:
    """Land the BigQuery export through the project's own ingest step (a Socrata-schema Parquet file).

    Args:
        export_uri: The export folder: ``gs://...`` on Vertex (listed through the Cloud Storage API, not the
            ``/gcs`` mount), a local folder under ``kfp.local``.
        raw_out: Parquet path for the window's raw records.
        stations_out: Parquet path for the police stations.
        months: Months in the window (the export holds exactly these).
        stations_source: Police stations file; empty = the Socrata API (the stations are not in BigQuery).
        settings: Library settings.
        raw_metadata: Metadata of the raw Dataset artifact.
        metrics: KFP metrics sink.
        storage_client: A ``google.cloud.storage.Client`` (tests); default: one with the run's credentials.

    Returns:
        The ingest step's summary, with ``source`` naming the BigQuery table and the number of ``shards``.

    Raises:
        FileNotFoundError: When the export folder has no Parquet shard.
    """
    from chicago_arrest.core.settings import get_settings
    from chicago_arrest.data.bigquery import BIGQUERY_TABLE, EXPORT_SHARDS, export_shards, read_export
    from chicago_arrest.steps.data import ingest_step

    settings = settings or get_settings()
    with tempfile.TemporaryDirectory(prefix="bigquery-") as tmp:
        shards = export_shards(export_uri, Path(tmp) / "shards", client=storage_client)
        if not shards:
            raise FileNotFoundError(
                f"no Parquet shard ({EXPORT_SHARDS}) in the BigQuery export folder {export_uri}"
            )
        crimes = Path(tmp) / "crimes.parquet"
        read_export(shards).to_parquet(crimes, index=False)
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


def serve_model_step(
    model_paths: list[str],
    evaluation: dict[str, Any],
    out_dir: str | Path,
    test_path: str | Path | None = None,
) -> str:
    """The candidate the evaluate step selected, as the MLflow folder the serving container loads.

    See :func:`chicago_arrest.release.vertex.save_served_model`; returns the model type saved.
    """
    from chicago_arrest.release.vertex import save_served_model

    return save_served_model(model_paths, evaluation, out_dir, test_path)


def vertex_gate_step(
    evaluation: dict[str, Any],
    champion: dict[str, Any],
    *,
    margin: float,
    max_ece: float,
    canary_percent: int,
) -> dict[str, Any]:
    """Promote, canary or leave serving as it is (:func:`chicago_arrest.release.vertex.gate_decision`)."""
    from chicago_arrest.release.vertex import gate_decision

    decision = gate_decision(
        evaluation, champion, margin=margin, max_ece=max_ece, canary_percent=canary_percent
    )
    log.info("vertex gate: %s (%s)", decision["action"], decision["reason"])
    return decision


#: Records the smoke step trains its tiny model on (generated: the smoke run checks the path, not the model).
SMOKE_ROWS = 3_000


def smoke_probe_step(
    probe_dir: str | Path, model_out: str | Path, *, rows: int = SMOKE_ROWS
) -> dict[str, Any]:
    """``make vertex-smoke``'s one step in the project image: write through ``/gcs``, then a tiny servable model.

    ``probe.json`` (the process's uid and gid, the library version) is written to ``probe_dir`` and read back,
    so the smoke run can check from outside that the image ran and that its user can write to the bucket
    through Vertex's ``/gcs`` mount. Then a logistic regression on ``rows`` generated records is saved as the
    MLflow folder the serving container loads (:func:`chicago_arrest.release.vertex.save_model_folder`).

    Args:
        probe_dir: A ``/gcs/BUCKET/...`` folder (on Vertex), created if missing.
        model_out: The output artifact's folder for the model.
        rows: Generated records to train on.

    Returns:
        What the probe wrote, with the model's type and the records it was trained on.

    Raises:
        VertexError: When the image's user cannot write to ``probe_dir`` (the hint names the root image).
    """
    import json
    import os

    from chicago_arrest import __version__
    from chicago_arrest.core.errors import VertexError
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.release.vertex import input_example, save_model_folder

    uid, gid = os.getuid(), os.getgid()
    probe = Path(probe_dir) / "probe.json"
    written = {"uid": uid, "gid": gid, "version": __version__, "probe": str(probe)}
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_text(json.dumps(written), encoding="utf-8")
        read_back = json.loads(probe.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VertexError(
            f"uid {uid} cannot write {probe} ({type(exc).__name__}: {exc}): the image's user cannot write to "
            "Vertex's /gcs mount; push the image built to run as root (make vertex-image IMAGE_USER=0, "
            "docs/vertex.md) or give the run's service account roles/storage.objectAdmin on the bucket"
        ) from None
    if read_back != written:
        raise VertexError(f"{probe} reads back {read_back}, not what was written ({written})")
    stations = generate_stations()
    records = generate_crimes(rows, stations=stations, seed=28)
    model = train_model(records, stations, TrainConfig(model_type="logreg")).model
    save_model_folder(model, model_out, input_example(records))
    log.info(
        "probe %s written and read back as uid %d; model of %d records saved to %s",
        probe,
        uid,
        rows,
        model_out,
    )
    return {**written, "model_type": "logreg", "rows": rows}
