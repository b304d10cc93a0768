"""BigQuery window: the EXPORT DATA statement for a month window of the public Chicago crimes table (Vertex)."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from chicago_arrest.components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def bigquery_window(months: int, end_month: str, export: Output[Dataset]) -> str:
    """The statement GCPC's BigqueryQueryJobOp runs; BigQuery writes the Parquet shards into ``export``."""
    from chicago_arrest.steps import run_step
    from chicago_arrest.steps.vertex import bigquery_window_step

    return run_step(bigquery_window_step, export.uri, export.path, months=months, end_month=end_month)
