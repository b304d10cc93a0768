"""Gate: re-score the champion on the challenger's test window; promote only when clearly better."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gate(
    registration: dict,
    evaluation: dict,
    test: Input[Dataset],
    promotion_margin: float,
    max_ece: float,
    canary_percent: int,
    max_area_ece: float,
    metrics: Output[Metrics],
    report: Output[HTML],
) -> dict:
    """Champion vs challenger on the same window."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.release import gate_step

    return run_step(
        gate_step,
        registration,
        evaluation,
        test.path,
        report.path,
        margin=promotion_margin,
        max_ece=max_ece,
        canary_percent=canary_percent,
        max_area_ece=max_area_ece,
        metrics=metrics,
    )
