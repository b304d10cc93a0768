"""Deploy: hand the gate's outcome to serving (local serving state, or the cluster's InferenceService)."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy(
    decision: dict,
    registration: dict,
    evaluation: dict,
    canary_percent: int,
    target: str,
    summary: Output[Markdown],
) -> dict:
    """Serve the new champion at 100 %, or the passing challenger as a canary, or leave serving alone."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.release import deploy_step

    return run_step(
        deploy_step,
        decision,
        registration,
        evaluation,
        canary_percent=canary_percent,
        target=target,
        summary_out=summary.path,
    )
