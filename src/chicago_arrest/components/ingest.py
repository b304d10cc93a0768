"""Ingest: land new months of crimes (Socrata or a local file) in the object store, export the window."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(
    source: str,
    stations_source: str,
    months: int,
    refresh_months: int,
    raw: Output[Dataset],
    stations: Output[Dataset],
    metrics: Output[Metrics],
) -> dict:
    """Land months not yet in the store (plus the latest ``refresh_months``), export the last ``months``."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.data import ingest_step

    return run_step(
        ingest_step,
        raw.path,
        stations.path,
        source=source,
        stations_source=stations_source,
        months=months,
        refresh_months=refresh_months,
        raw_metadata=raw.metadata,
        metrics=metrics,
    )
