"""Land BigQuery: the exported window through the project's ingest step (same raw records, same summary)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def land_bigquery(
    export: Input[Dataset],
    stations_source: str,
    months: int,
    raw: Output[Dataset],
    stations: Output[Dataset],
    metrics: Output[Metrics],
) -> dict:
    """Read the Parquet shards BigQuery exported (listed through the Cloud Storage API) and land them."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.vertex import land_bigquery_step

    return run_step(
        land_bigquery_step,
        export.uri,
        raw.path,
        stations.path,
        months=months,
        stations_source=stations_source,
        raw_metadata=raw.metadata,
        metrics=metrics,
    )
