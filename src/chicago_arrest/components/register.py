"""Register: MLflow parent run + a nested run per model; the selected model becomes a registry version."""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    models: Input[List[Model]],
    test: Input[Dataset],
    report: Input[HTML],
    charts: Input[Artifact],
    evaluation: dict,
    window: dict,
    source: str,
    kfp_run: str,
    model_card: Output[HTML],
) -> dict:
    """Log params, metrics, charts and the data window; log and register the selected model and its card."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.release import register_step

    return run_step(
        register_step,
        [m.path for m in models],
        evaluation,
        test.path,
        report.path,
        charts.path,
        window=window,
        source=source,
        kfp_run=kfp_run,
        card_out=model_card.path,
    )
