"""Validate: the data contract; invalid rows are quarantined with a reason, never dropped."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    raw: Input[Dataset],
    valid: Output[Dataset],
    quarantine: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> dict:
    """Check required columns, types, booleans, Chicago's bounding box, dates and duplicate ids.

    Args:
        raw: Raw records.
        valid: Records that satisfy the contract, with canonical types.
        quarantine: Every other record with its original values and a ``reason`` column.
        metrics: rows_in, valid, quarantined and a count per reason.
        report: Counts per reason and a sample of quarantined rows.

    Returns:
        The counts (rows_in == valid + quarantined).
    """
    import pandas as pd

    from chicago_arrest.report import html_page, table_html
    from chicago_arrest.steps import setup_logging, step_errors, validate_step

    setup_logging()
    with step_errors():
        counts = validate_step(raw.path, valid.path, quarantine.path)
    for key, value in counts.items():
        if isinstance(value, int | float):
            metrics.log_metric(key, value)
    valid.metadata["rows"] = counts["valid"]
    quarantine.metadata["rows"] = counts["quarantined"]
    sample = pd.read_parquet(quarantine.path).head(50)
    table = pd.DataFrame([{"count": k, "rows": v} for k, v in counts.items() if isinstance(v, int | float)])
    with open(report.path, "w", encoding="utf-8") as fh:
        fh.write(
            html_page(
                "Data contract",
                [
                    ("Counts", table_html(table, "{:.0f}")),
                    ("Quarantined rows (first 50)", sample.to_html(index=False)),
                ],
            )
        )
    return counts
