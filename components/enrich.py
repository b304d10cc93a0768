"""Enrich: nearest-police-station distance and temporal features (season, weekday, part of day)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def enrich(
    valid: Input[Dataset],
    stations: Input[Dataset],
    enriched: Output[Dataset],
    metrics: Output[Metrics],
) -> dict:
    """Add the geo and temporal features; rows without coordinates are kept and flagged.

    Args:
        valid: Validated records.
        stations: Police stations.
        enriched: Records plus features.
        metrics: Rows, rows without coordinates, distance quantiles.

    Returns:
        The same summary.
    """
    from chicago_arrest.steps import enrich_step, setup_logging, step_errors

    setup_logging()
    with step_errors():
        summary = enrich_step(valid.path, stations.path, enriched.path)
    for key, value in summary.items():
        metrics.log_metric(key, value)
    enriched.metadata["rows"] = summary["rows"]
    return summary
