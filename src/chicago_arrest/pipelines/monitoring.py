"""The monitoring pipeline ``chicago-arrest-monitoring``, and the one home of its parameters and defaults.

One step: recent records (a file, months landed in the object store, or what was served: the local server's
request log and the KServe logger's events, joined with the labels known now) against the reference profile
of the champion (or ``version``): PSI per monitored field and for the prediction, realised ROC-AUC / PR-AUC /
ECE where labels exist (on served traffic per version, champion against challenger), the decision (``ok``,
``drift``, ``degraded``) with its reasons, an HTML report (the KFP UI and an MLflow run linked to the version)
and, on drift or degradation, a run of ``chicago-arrest-training`` (through the KFP API on the cluster) unless
``retrain`` is ``never``.
"""

from kfp import dsl

from chicago_arrest.components.monitor import monitor
from chicago_arrest.core.names import MONITORING_PIPELINE
from chicago_arrest.monitoring.drift import Thresholds
from chicago_arrest.monitoring.realised import MIN_LABELLED
from chicago_arrest.pipelines.training import network_step

PIPELINE_NAME = MONITORING_PIPELINE


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Drift (PSI) and realised performance of the served Chicago arrest model; retrain when needed.",
)
def monitoring_pipeline(
    source: str = "",
    months: str = "",
    version: str = "",
    psi_threshold: float = Thresholds.psi,
    max_auc_drop: float = Thresholds.max_auc_drop,
    max_ece: float = Thresholds.max_ece,
    retrain: str = "auto",
    training_source: str = "",
    labels: str = "",
    min_labelled: int = MIN_LABELLED,
) -> None:
    """Monitor the model version on recent records.

    Args:
        source: File in the Socrata schema, or ``serving`` (what was served: the local request log and the
            KServe logger's events in the object store); empty = ``months``.
        months: ``YYYY-MM`` or ``YYYY-MM..YYYY-MM`` landed in the object store.
        version: Registry version; empty = the champion.
        psi_threshold: PSI at or above which a field or the prediction has drifted.
        max_auc_drop: Realised ROC-AUC this far under the version's test ROC-AUC is degraded.
        max_ece: Realised ECE above this is degraded.
        retrain: ``auto`` (start a training run on drift / degraded) or ``never``.
        training_source: ``source`` of that training run (empty: the training pipeline's default).
        labels: ``serving`` only: a file with the labels known now (``id``, ``arrest``); empty = the months
            landed in the object store.
        min_labelled: ``serving`` only: labelled records a version needs before its realised metrics count.
    """
    network_step(
        monitor(
            source=source,
            months=months,
            version=version,
            psi_threshold=psi_threshold,
            max_auc_drop=max_auc_drop,
            max_ece=max_ece,
            retrain=retrain,
            training_source=training_source,
            kfp_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            labels=labels,
            min_labelled=min_labelled,
        )
    )
