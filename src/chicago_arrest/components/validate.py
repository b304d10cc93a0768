"""Validate: the data contract; invalid rows are quarantined with a reason, never dropped."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    raw: Input[Dataset],
    valid: Output[Dataset],
    quarantine: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> dict:
    """Check required columns, types, booleans, Chicago's bounding box, dates and duplicate ids."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.data import validate_step

    return run_step(
        validate_step,
        raw.path,
        valid.path,
        quarantine.path,
        report.path,
        valid_metadata=valid.metadata,
        quarantine_metadata=quarantine.metadata,
        metrics=metrics,
    )
