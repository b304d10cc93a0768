"""Enrich (report branch): nearest-police-station distance and temporal features, for inspection and the report.

The model recomputes these features from the raw fields, so split and train read the validated records.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def enrich(
    valid: Input[Dataset],
    stations: Input[Dataset],
    enriched: Output[Dataset],
    metrics: Output[Metrics],
) -> dict:
    """Add the geo and temporal features; rows without coordinates are kept and flagged."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.data import enrich_step

    return run_step(
        enrich_step,
        valid.path,
        stations.path,
        enriched.path,
        enriched_metadata=enriched.metadata,
        metrics=metrics,
    )
