"""Release steps: register the selected model in MLflow, gate it against the champion, deploy the outcome.

The deploy step decides what the gate's outcome means for serving (first model or promoted: the champion
serves alone; passed under canary: the challenger gets its share; rejected: nothing changes) and hands it to
the one release interface, :func:`chicago_arrest.release.ops.open_release`, which moves the registry aliases
and the traffic of the local serving state or the InferenceService.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import joblib

from chicago_arrest.core.names import CHAMPION, MODEL_NAME
from chicago_arrest.core.settings import Settings, get_settings
from chicago_arrest.steps import MetricsSink, kfp_safe, log_summary, read_dataset
from chicago_arrest.steps.retry import retry_safe


@retry_safe
def register_step(
    model_paths: list[str],
    evaluation: dict[str, Any],
    test_path: str | Path,
    report_path: str | Path,
    charts_dir: str | Path,
    *,
    window: dict[str, Any],
    source: str,
    kfp_run: str = "",
    settings: Settings | None = None,
    card_out: str | Path | None = None,
) -> dict[str, Any]:
    """Log the training run to MLflow (parent run + one nested run per model) and register the selected model.

    Args:
        model_paths: Saved candidates.
        evaluation: Output of the evaluate step (``selected_index`` and per-candidate metrics).
        test_path: Test records (the logged input example).
        report_path: HTML report, logged as an artifact.
        charts_dir: PNG charts and per-crime-type tables, logged as artifacts.
        window: The data window.
        source: Where the data came from.
        kfp_run: KFP run name.
        settings: Library settings.
        card_out: Where to write the version's model card as HTML too (the component's ``Output[HTML]``).

    Returns:
        ``version`` (registry version of the selected model), ``run_id``, ``model_uri``, ``experiment_id``,
        ``tracking_uri``, ``model_card`` (its artifact URI), and the selected model's metrics.
    """
    from chicago_arrest.registry.models import (
        configure_mlflow,
        kfp_run_tags,
        log_training_run,
        registered_by_run,
        tag_version,
    )

    settings = settings or get_settings()
    client = configure_mlflow(settings)
    models, test = [joblib.load(p) for p in model_paths], read_dataset(test_path)
    tags = {"source": source or "socrata", "kfp.run": kfp_run, **kfp_run_tags()}
    # Safe to repeat (a KFP or in-process retry, chicago_arrest.steps.retry): a version an earlier attempt of the
    # same KFP run registered is reused, never registered twice; the rest below writes the same things again.
    run = registered_by_run(client, kfp_run)
    if run is None:
        run = log_training_run(
            client, models, evaluation, test, report_path, charts_dir, window=window, tags=tags
        )
    else:
        chosen = models[int(evaluation["selected_index"])]
        tags.update({f"window.{k}": str(v) for k, v in window.items()})
        tag_version(client, run["version"], chosen, window, run["metrics"], tags)
    # Issue 13: the reference profile of monitoring, with the version (chicago_arrest.monitoring.drift).
    from chicago_arrest.steps.monitoring import store_reference_profile

    store_reference_profile(client, run, models[int(evaluation["selected_index"])], test)
    # Issue 14: the version's model card, logged with it and named in its description.
    from chicago_arrest.reports.model_card import publish_model_card

    chosen = models[int(evaluation["selected_index"])]
    run["model_card"] = publish_model_card(
        client,
        run,
        model_type=str((chosen.info or {}).get("model_type")),
        window=window,
        source=source or "socrata",
        charts_dir=charts_dir,
        threshold=float(chosen.threshold),
        card_out=card_out,
    )
    log_summary(f"registered {run.get('model_uri') or 'version ' + str(run.get('version'))}")
    return kfp_safe({**run, "tracking_uri": settings.resolved_tracking_uri()})


def gate_step(
    registration: dict[str, Any],
    evaluation: dict[str, Any],
    test_path: str | Path,
    report_out: str | Path,
    *,
    margin: float = 0.0,
    max_ece: float = 0.05,
    canary_percent: int = 10,
    noise: float = 1.0,
    max_area_ece: float = 0.0,
    settings: Settings | None = None,
    metrics: MetricsSink | None = None,
) -> dict[str, Any]:
    """Compare the new version (challenger) with the champion on the same test window.

    With ``canary_percent`` strictly between 0 and 100 a passing version becomes ``challenger`` and is rolled
    out as a canary (the operator promotes); with 0 or 100 it is promoted directly. The first model always
    becomes champion, and there is no challenger after it; a rejected version moves no alias. The decision is
    written into the version's description and tags (:func:`chicago_arrest.release.gate.record_gate`).

    Args:
        registration: Output of the register step (``version``).
        evaluation: Output of the evaluate step (the challenger's metrics on the same window).
        test_path: The test window both models are scored on.
        report_out: HTML report path.
        margin: ROC-AUC improvement required on top of the noise (see :func:`~chicago_arrest.release.gate.decide`).
        max_ece: Upper bound of the challenger's ECE, overall and in every test month.
        canary_percent: Canary share; 0 or 100 promotes a passing challenger directly.
        noise: Bootstrap standard errors of the challenger's test ROC-AUC added to ``margin``.
        max_area_ece: Upper bound of the challenger's ECE in its worst police district or community area
            (areas with at least 30 test rows); 0 = not checked (the default).
        settings: Library settings.
        metrics: Receives both models' metrics, ``passed`` and ``promoted``.

    Returns:
        The :class:`~chicago_arrest.release.gate.GateDecision` as a dict.
    """
    from chicago_arrest.registry.models import configure_mlflow
    from chicago_arrest.release.gate import gate
    from chicago_arrest.reports.training import gate_report

    settings = settings or get_settings()
    decision = gate(
        configure_mlflow(settings),
        str(registration["version"]),
        read_dataset(test_path),
        margin=margin,
        max_ece=max_ece,
        auto_promote=not 0 < canary_percent < 100,
        challenger_metrics=evaluation["candidates"][evaluation["selected"]],
        noise=noise,
        max_area_ece=max_area_ece,
    ).as_dict()
    Path(report_out).parent.mkdir(parents=True, exist_ok=True)
    Path(report_out).write_text(gate_report(decision, canary_percent), encoding="utf-8")
    if metrics is not None:
        for role in ("challenger", "champion"):
            for key, value in decision[role].items():
                metrics.log_metric(f"{role}_{key}", float(value))
        metrics.log_metric("passed", float(decision["passed"]))
        metrics.log_metric("promoted", float(decision["promoted"]))
    verdict = "promote" if decision["promoted"] else "canary" if decision["passed"] else "reject"
    log_summary(f"{verdict} v{decision['challenger_version']}: {decision.get('reason', '')}")
    return kfp_safe(decision)


def resolve_target(target: str) -> Literal["local", "cluster", "none"]:
    """``auto`` means ``cluster`` inside Kubernetes (a KFP step pod), ``local`` elsewhere."""
    if target == "auto":
        return "cluster" if os.environ.get("KUBERNETES_SERVICE_HOST") else "local"
    if target not in ("local", "cluster", "none"):
        raise ValueError(f"deploy target must be auto, local, cluster or none, got {target!r}")
    return target  # type: ignore[return-value]


@retry_safe
def deploy_step(
    decision: dict[str, Any],
    registration: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    canary_percent: int = 10,
    target: str = "auto",
    summary_out: str | Path | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Hand the outcome of the gate to serving, and write the run's Markdown summary.

    - First model / promoted: the champion serves 100 %.
    - Passed with a canary: the challenger gets ``canary_percent`` % (the champion the rest).
    - Rejected: serving is left as it is.

    Serving is changed through :func:`chicago_arrest.release.ops.open_release`: locally the serving state that
    ``make serve`` reads (a running server picks it up); on a cluster the ``arrest-predictor``
    InferenceService, after publishing the version to the models bucket.

    Args:
        decision: Output of the gate step.
        registration: Output of the register step (for the summary).
        evaluation: Output of the evaluate step (for the summary).
        canary_percent: Share of requests for a passing challenger.
        target: ``auto`` (cluster inside Kubernetes, else local), ``local``, ``cluster`` or ``none``.
        summary_out: Where the Markdown summary is written (:func:`summary_markdown`); none when empty.
        settings: Library settings.

    Returns:
        What was done: ``target``, ``action``, ``champion``, ``challenger``, ``canary_percent``, ``message``.
    """
    from chicago_arrest.registry.models import alias_version, configure_mlflow

    settings = settings or get_settings()
    where = resolve_target(target)
    champion = alias_version(configure_mlflow(settings), CHAMPION)
    version = str(decision["challenger_version"])
    if decision["promoted"]:
        action, challenger, percent = "promote", None, 0
    elif decision["passed"]:
        action, challenger, percent = "canary", version, int(canary_percent)
    else:
        action, challenger, percent = "none", None, 0
    result: dict[str, Any] = {
        "target": where,
        "action": action,
        "champion": champion,
        "challenger": challenger,
        "canary_percent": percent,
        "message": "",
    }
    if where == "none" or action == "none":
        result["message"] = f"serving unchanged ({decision.get('reason')})"
    elif champion is None:
        raise RuntimeError(f"registered model {MODEL_NAME} has no champion after the gate")
    else:
        from chicago_arrest.release.ops import open_release

        outcome = open_release(where, settings=settings).deploy(
            champion=champion, challenger=challenger, canary_percent=percent
        )
        result["message"] = outcome.message()
    log_summary(f"{action}: {result['message']}")
    if summary_out:
        Path(summary_out).write_text(
            summary_markdown(registration, evaluation, decision, result), encoding="utf-8"
        )
    return kfp_safe(result)


def summary_markdown(
    registration: dict[str, Any],
    evaluation: dict[str, Any],
    decision: dict[str, Any],
    deployed: dict[str, Any],
) -> str:
    """The run's summary as Markdown (shown by the KFP UI and printed by ``make pipeline-run``)."""
    import pandas as pd

    from chicago_arrest.reports.format import COLUMNS, Column, md_table

    m = evaluation["metrics"]
    verdict = (
        "promoted to champion"
        if decision["promoted"]
        else "passed: canary"
        if decision["passed"]
        else "rejected"
    )
    lines = [
        "# Chicago arrest model: training run",
        "",
        f"- Selected model: **{evaluation['selected']}**, registered as "
        f"`{registration['model_uri']}` (MLflow run `{registration['run_id']}`)",
        f"- Gate: **{verdict}** ({decision['reason']})",
        f"- Serving: {deployed['action']} on {deployed['target']} "
        f"(champion v{deployed['champion']}, challenger {deployed['challenger'] or '-'}, "
        f"canary {deployed['canary_percent']} %)",
        "",
    ]
    keys = ("roc_auc", "pr_auc", "f1", "brier", "ece")
    table = pd.DataFrame(
        {
            "metric": [COLUMNS[k].header for k in keys],
            "all": [m.get(f"test_{k}") for k in keys],
            "no_ab": [m.get(f"test_no_ab_{k}") for k in keys],
        }
    )
    view: dict[str, Column | str] = {
        "metric": "metric",
        "all": Column("all crime types", "metric"),
        "no_ab": Column("without arrest-based types", "metric"),
    }
    return "\n".join(lines) + "\n" + md_table(table, view) + "\n"
