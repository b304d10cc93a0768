"""Split: train on earlier months, test on the latest (or a stratified random split for comparison)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def split(
    records: Input[Dataset],
    kind: str,
    test_months: int,
    train: Output[Dataset],
    test: Output[Dataset],
) -> dict:
    """Split the validated records."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.data import split_step

    return run_step(
        split_step,
        records.path,
        train.path,
        test.path,
        kind=kind,
        test_months=test_months,
        train_metadata=train.metadata,
        test_metadata=test.metadata,
    )
