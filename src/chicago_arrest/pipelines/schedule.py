"""Create, update or delete the monthly recurring run of ``chicago-arrest-training`` on a KFP cluster.

``make pipeline-schedule`` (``chicago-arrest pipeline schedule``) is idempotent: it keeps exactly one
recurring run named :data:`JOB_NAME` in the experiment, on the latest pipeline version. KFP cannot edit a
recurring run (kubeflow/pipelines#6001), so an out-of-date one is deleted and re-created; an up-to-date one is
left alone. ``make pipeline-unschedule`` removes it.

KFP parses cron with robfig/cron v1: SIX fields, seconds first. The default ``0 0 2 8 * *`` runs at 02:00 UTC
on the 8th of every month: the Socrata dataset lags about a week behind, so on the 1st the month that just
ended is still incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chicago_arrest.core import kfp_api
from chicago_arrest.core.names import BATCH_SCORING_PIPELINE, MONITORING_PIPELINE
from chicago_arrest.core.names import TRAINING_PIPELINE as PIPELINE_NAME

JOB_NAME = "chicago-arrest-monthly-retrain"
DEFAULT_CRON = "0 0 2 8 * *"
#: Parameters of scheduled runs: none, so each run takes the pipeline's own defaults (Socrata source, a
#: passing challenger goes to a canary).
DEFAULT_PARAMS: dict[str, Any] = {}


def validate_cron(expression: str) -> str:
    """Check a KFP cron expression: 6 fields (seconds first) or a ``@`` descriptor.

    Raises:
        ValueError: For the common 5-field mistake (KFP would read ``0 2 * * *`` as minute 2 of every hour).
    """
    text = expression.strip()
    if text.startswith("@"):
        return text
    fields = text.split()
    if len(fields) != 6:
        raise ValueError(
            f"KFP cron needs 6 fields, seconds first (e.g. {DEFAULT_CRON!r} = 02:00 on the 8th); got "
            f"{len(fields)} in {expression!r}"
        )
    return text


@dataclass
class ScheduleResult:
    """What :func:`ensure_recurring_run` did.

    Attributes:
        action: ``created``, ``updated`` (deleted and re-created), ``unchanged`` or ``deleted``.
        recurring_run_id: Id of the recurring run now in place (empty after a delete).
        pipeline_version_id: The pipeline version it runs.
    """

    action: str
    recurring_run_id: str
    pipeline_version_id: str


def _list_recurring_runs(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = ""
    while True:
        page = client.list_recurring_runs(experiment_id=experiment_id, page_token=token, page_size=100)
        runs.extend(page.recurring_runs or [])
        token = page.next_page_token or ""
        if not token:
            return runs


@dataclass(frozen=True)
class Recurring:
    """One schedulable pipeline (``make pipeline-schedule PIPELINE=<key of SCHEDULES>``)."""

    pipeline: str
    job_name: str
    cron: str
    compile_name: str
    description: str


#: Issue 13: the monitoring loop's pipelines are scheduled the same way (one recurring run each).
SCHEDULES = {
    "training": Recurring(
        PIPELINE_NAME,
        JOB_NAME,
        DEFAULT_CRON,
        "compile_training",
        "Monthly retraining of the Chicago arrest model (make pipeline-schedule)",
    ),
    # Mondays 06:00 UTC: the newest landed month against the champion's profile.
    "monitoring": Recurring(
        MONITORING_PIPELINE,
        "chicago-arrest-weekly-monitoring",
        "0 0 6 * * 1",
        "compile_monitoring",
        "Weekly drift and performance monitoring (make pipeline-schedule PIPELINE=monitoring)",
    ),
    # The 9th, 04:00 UTC: the day after the monthly retraining, the newest landed month.
    "batch-scoring": Recurring(
        BATCH_SCORING_PIPELINE,
        "chicago-arrest-monthly-batch-scoring",
        "0 0 4 9 * *",
        "compile_batch_scoring",
        "Monthly batch scoring of the newest landed month (make pipeline-schedule PIPELINE=batch-scoring)",
    ),
}


def _ensure_pipeline(
    client: Any,
    package_path: str | None,
    which: Recurring | None = None,
    image: str | None = None,
    profile: str | None = None,
) -> tuple[str, str]:
    """The pipeline's id and its newest version, uploading it first when KFP does not have it yet.

    Without ``package_path`` the pipeline is compiled into a temporary folder with ``image`` as every step's
    image (the image ``make kind-up`` loaded), as ``pipeline run`` does: the committed YAML is never rewritten.
    """
    import tempfile
    from pathlib import Path

    import chicago_arrest.pipelines.compile as compiler

    which = which or SCHEDULES["training"]
    if package_path is not None:
        return kfp_api.pipeline_version(client, which.pipeline, lambda: package_path)
    with tempfile.TemporaryDirectory(prefix="chicago-arrest-compiled-") as tmp:
        compile_one = getattr(compiler, which.compile_name)
        return kfp_api.pipeline_version(
            client, which.pipeline, lambda: compile_one(Path(tmp), image=image, profile=profile)
        )


def _matches(run: Any, version_id: str, cron: str, params: dict[str, Any]) -> bool:
    ref = getattr(run, "pipeline_version_reference", None)
    trigger = getattr(getattr(run, "trigger", None), "cron_schedule", None)
    config = getattr(run, "runtime_config", None)
    current = dict(getattr(config, "parameters", None) or {})
    return (
        getattr(ref, "pipeline_version_id", None) == version_id
        and getattr(trigger, "cron", None) == cron
        and int(getattr(run, "max_concurrency", 0) or 0) == 1
        and bool(getattr(run, "no_catchup", False))
        and {k: str(v) for k, v in current.items()} == {k: str(v) for k, v in params.items()}
        and str(getattr(run, "mode", "ENABLE")).upper() != "DISABLE"
    )


def ensure_recurring_run(
    client: Any,
    *,
    cron: str = DEFAULT_CRON,
    params: dict[str, Any] | None = None,
    package_path: str | None = None,
    pipeline: str = "training",
    image: str | None = None,
    profile: str | None = None,
) -> ScheduleResult:
    """Make sure exactly one up-to-date recurring run exists (create, replace, or leave it).

    Args:
        client: A ``kfp.Client``.
        cron: KFP cron (6 fields, seconds first).
        params: Pipeline parameters of each scheduled run.
        package_path: Compiled pipeline to upload if the pipeline does not exist yet.
        pipeline: Key of :data:`SCHEDULES` (``training``, ``monitoring``, ``batch-scoring``); its own cron
            replaces the default ``cron`` of the training schedule.
        image: Every step's image when the pipeline has to be uploaded first (default: the components').
        profile: The cluster profile of the train tasks' requests then (default ``laptop``).

    Returns:
        The :class:`ScheduleResult`.
    """
    which = SCHEDULES[pipeline]
    cron = validate_cron(which.cron if cron == DEFAULT_CRON else cron)
    params = dict(DEFAULT_PARAMS if params is None else params)
    pipeline_id, version_id = _ensure_pipeline(client, package_path, which, image, profile)
    experiment_id = kfp_api.experiment_id(client)
    existing = [r for r in _list_recurring_runs(client, experiment_id) if r.display_name == which.job_name]
    if len(existing) == 1 and _matches(existing[0], version_id, cron, params):
        return ScheduleResult("unchanged", str(existing[0].recurring_run_id), version_id)
    for run in existing:
        client.delete_recurring_run(run.recurring_run_id)
    created = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=which.job_name,
        description=which.description,
        cron_expression=cron,
        max_concurrency=1,
        no_catchup=True,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
        enabled=True,
    )
    return ScheduleResult("updated" if existing else "created", str(created.recurring_run_id), version_id)


def delete_recurring_run(client: Any, pipeline: str = "training") -> ScheduleResult:
    """Delete every recurring run of ``pipeline`` (a :data:`SCHEDULES` key) in the experiment (none: no error)."""
    job_name = SCHEDULES[pipeline].job_name
    experiment_id = kfp_api.experiment_id(client)
    existing = [r for r in _list_recurring_runs(client, experiment_id) if r.display_name == job_name]
    for run in existing:
        client.delete_recurring_run(run.recurring_run_id)
    return ScheduleResult("deleted" if existing else "unchanged", "", "")
