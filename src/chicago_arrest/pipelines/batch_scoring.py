"""The batch-scoring pipeline ``chicago-arrest-batch-scoring``, and the one home of its parameters.

One step: the records (a file, or months landed in the object store) go through the data contract and the
model version (the champion unless ``version``); the probabilities land in ``predictions/<name>.parquet`` of
the object store, quarantined records in ``predictions/<name>.quarantine.parquet``. Same input and version,
same objects: a re-run rewrites them.
"""

from kfp import dsl

from chicago_arrest.components.batch_score import batch_score
from chicago_arrest.core.names import BATCH_SCORING_PIPELINE
from chicago_arrest.pipelines.training import network_step

PIPELINE_NAME = BATCH_SCORING_PIPELINE


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Score Chicago crime records in bulk with the champion (or a pinned version) into the object store.",
)
def batch_scoring_pipeline(source: str = "", months: str = "", version: str = "") -> None:
    """Score records with a registered model version.

    Args:
        source: File in the Socrata schema (CSV/Parquet); empty = ``months`` from the object store.
        months: ``YYYY-MM`` or ``YYYY-MM..YYYY-MM`` landed in the object store.
        version: Registry version; empty = the champion.
    """
    network_step(batch_score(source=source, months=months, version=version))
