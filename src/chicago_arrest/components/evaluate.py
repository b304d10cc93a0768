"""Evaluate: every candidate on the test window; choose on the calibration month; write the report."""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    models: Input[List[Model]],
    test: Input[Dataset],
    ingest_summary: dict,
    validate_summary: dict,
    enrich_summary: dict,
    window: dict,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    charts: Output[Artifact],
) -> dict:
    """ROC-AUC, PR-AUC, F1, confusion matrix, Brier, ECE (also without arrest-based types), charts, report."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.training import evaluate_step

    return run_step(
        evaluate_step,
        [m.path for m in models],
        test.path,
        report.path,
        charts.path,
        ingest=ingest_summary,
        validate=validate_summary,
        enrich=enrich_summary,
        window=window,
        metrics=metrics,
        classification=classification,
    )
