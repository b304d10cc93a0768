"""Train: one model type (features → SMOTE + undersampling → MI selection → classifier → calibration)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    train_data: Input[Dataset],
    stations: Input[Dataset],
    model_type: str,
    split_kind: str,
    mi_threshold: float,
    calibration: str,
    search_budget_s: float,
    model: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """Train one model type on raw records; the saved model takes raw records and returns probabilities."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.training import train_step

    run_step(
        train_step,
        train_data.path,
        stations.path,
        model.path,
        model_type=model_type,
        split=split_kind,
        mi_threshold=mi_threshold,
        calibration=calibration,
        search_budget_s=search_budget_s,
        model_metadata=model.metadata,
        metrics=metrics,
    )
