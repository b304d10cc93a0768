"""Batch score: the data contract, then the model version's probabilities to ``predictions/<name>.parquet``."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def batch_score(source: str, months: str, version: str, metrics: Output[Metrics]) -> dict:
    """Score a file or landed months with the champion (or ``version``); quarantine contract violations."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.monitoring import batch_score_step

    return run_step(batch_score_step, source=source, months=months, version=version, metrics=metrics)
