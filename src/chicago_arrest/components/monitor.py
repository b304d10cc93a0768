"""Monitor: PSI and realised metrics against the version's reference profile; the decision; retrain if needed."""

from kfp import dsl
from kfp.dsl import HTML, Metrics, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def monitor(
    source: str,
    months: str,
    version: str,
    psi_threshold: float,
    max_auc_drop: float,
    max_ece: float,
    retrain: str,
    training_source: str,
    kfp_run: str,
    labels: str,
    min_labelled: int,
    report: Output[HTML],
    metrics: Output[Metrics],
) -> dict:
    """Ok / drift / degraded with reasons, the HTML report (also on MLflow), a training run on drift/degraded."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.monitoring import monitor_step

    return run_step(
        monitor_step,
        report.path,
        source=source,
        months=months,
        version=version,
        psi_threshold=psi_threshold,
        max_auc_drop=max_auc_drop,
        max_ece=max_ece,
        retrain=retrain,
        training_source=training_source,
        labels=labels,
        min_labelled=min_labelled,
        metrics=metrics,
        kfp_run=kfp_run,
    )
