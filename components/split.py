"""Split: train on earlier months, test on the latest (or a stratified random split for comparison)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def split(
    records: Input[Dataset],
    kind: str,
    test_months: int,
    train: Output[Dataset],
    test: Output[Dataset],
) -> dict:
    """Split the records.

    Args:
        records: Enriched records.
        kind: ``time`` (default) or ``random``.
        test_months: Latest months held out when ``kind`` is ``time``.
        train: Training records.
        test: Test records.

    Returns:
        The data window (train/test dates and rows).
    """
    from chicago_arrest.steps import setup_logging, split_step, step_errors

    setup_logging()
    with step_errors():
        window = split_step(records.path, train.path, test.path, kind=kind, test_months=test_months)
    train.metadata.update(
        {"rows": window["train_rows"], "start": window["train_start"], "end": window["train_end"]}
    )
    test.metadata.update(
        {"rows": window["test_rows"], "start": window["test_start"], "end": window["test_end"]}
    )
    return window
