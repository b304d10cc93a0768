"""``chicago-arrest pipeline batch-score`` and ``pipeline monitor``: the monitoring loop's pipelines (issue 13).

``batch-score`` runs ``chicago-arrest-batch-scoring`` and ``monitor`` runs ``chicago-arrest-monitoring``, locally
with kfp.local or on the kind cluster's KFP, on one SOURCE (a file, landed months or the served traffic); both
print what the run found. :mod:`chicago_arrest.cli.pipeline` adds both commands to the ``pipeline`` group.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from chicago_arrest.cli.common import (
    CommandError,
    KfpHostOption,
    PipelineTargetOption,
    cluster_profile,
    one_of,
    pipelines,
    step_image,
)

_MONTHS = re.compile(r"^\d{4}-\d{2}(\.\.\d{4}-\d{2})?$")
SourceOption = Annotated[
    str,
    typer.Option(
        help="file (CSV/Parquet, Socrata schema), YYYY-MM[..YYYY-MM] landed in the store, or serving"
    ),
]
VersionText = Annotated[str, typer.Option(help="registry version [default: the champion]")]
VerboseOption = Annotated[bool, typer.Option("--verbose", help="stream every step's full output")]


def _loop_source(source: str, *, on_cluster: bool, serving: bool) -> dict[str, str]:
    """``source``/``months`` arguments of the loop's pipelines from one SOURCE (a file, months or serving)."""
    if not source:  # the newest month landed in the object store
        return {"source": "", "months": ""}
    if source == "serving":  # locally the request log; on the cluster the KServe logger's events
        if not serving:
            raise CommandError("SOURCE=serving is for make monitor; batch-score a file or landed months")
        return {"source": "serving", "months": ""}
    path = Path(source).expanduser()
    if _MONTHS.match(source) and not path.exists():
        return {"source": "", "months": source}
    if on_cluster:
        return {"source": source, "months": ""}
    if not path.is_file():
        raise CommandError(f"SOURCE file not found: {source}")
    return {"source": str(path.resolve()), "months": ""}


def _run_loop_pipeline(
    which: str, arguments: dict[str, Any], target: str | None, kfp_host: str, verbose: bool
) -> Any:
    """Run ``pipelines.<which>`` on the resolved target; the local run's folder, or None on a cluster."""
    from chicago_arrest.core.targets import resolve_target

    module, run, compiler = pipelines(which), pipelines("run"), pipelines("compile")
    resolved = resolve_target(target, kfp_host=kfp_host)
    typer.echo(resolved.line())
    if resolved.target == "vertex":
        raise CommandError(f"{module.PIPELINE_NAME} runs locally or on the kind cluster, not on Vertex yet")
    if resolved.target == "cluster":
        host = resolved.kfp_host(kfp_host)
        if not host:
            raise CommandError("the cluster target needs KFP's address: set KFP_HOST or run make kind-up")
        run.run_cluster_pipeline(
            getattr(compiler, f"compile_{which}"),
            module.PIPELINE_NAME,
            arguments,
            host,
            image=step_image(resolved),
            profile=cluster_profile(resolved),
        )
        return None
    try:
        return run.run_local_pipeline(
            getattr(module, f"{which}_pipeline"), module.PIPELINE_NAME, arguments, verbose=verbose
        )
    except RuntimeError as exc:
        typer.echo(run.failure_message(exc, arguments), err=True)
        raise typer.Exit(1) from None


def batch_score(
    source: SourceOption = "",
    version: VersionText = "",
    kfp_host: KfpHostOption = "",
    target: PipelineTargetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Score records in bulk into predictions/<name>.parquet of the object store (make batch-score)."""
    resolved_cluster = _is_cluster(target, kfp_host)
    arguments = {
        **_loop_source(source, on_cluster=resolved_cluster, serving=False),
        "version": _version(version),
    }
    run_dir = _run_loop_pipeline("batch_scoring", arguments, target, kfp_host, verbose)
    if run_dir is not None:
        out = pipelines("run").step_output(run_dir, "batch-score")
        typer.echo(
            f"predictions  {out.get('predictions')}  ({out.get('scored')} records, model v{out.get('model_version')})"
        )
        typer.echo(
            f"quarantine   {out.get('quarantine')}  ({out.get('quarantined')} records: {out.get('reasons') or 'none'})"
        )


def monitor_command(
    source: SourceOption = "",
    version: VersionText = "",
    retrain: Annotated[str, typer.Option(callback=one_of("auto", "never"), metavar="[auto|never]")] = "auto",
    summary: Annotated[Path | None, typer.Option(help="write the decision as JSON here")] = None,
    psi_threshold: Annotated[
        float | None, typer.Option(help="PSI that counts as drift [default: the monitoring pipeline's]")
    ] = None,
    max_auc_drop: Annotated[
        float | None,
        typer.Option(
            help="realised ROC-AUC drop that counts as degraded [default: the monitoring pipeline's]"
        ),
    ] = None,
    max_ece: Annotated[
        float | None,
        typer.Option(help="realised ECE that counts as degraded [default: the monitoring pipeline's]"),
    ] = None,
    training_source: Annotated[
        str, typer.Option(help="SOURCE of the training run a drift starts [default: the training pipeline's]")
    ] = "",
    labels: Annotated[
        str,
        typer.Option(
            help="SOURCE=serving: CSV/Parquet with id and arrest, the labels known now "
            "[default: the months landed in the object store]"
        ),
    ] = "",
    min_labelled: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="SOURCE=serving: labelled records a version needs before its realised metrics count "
            "[default: the monitoring pipeline's]",
        ),
    ] = None,
    kfp_host: KfpHostOption = "",
    target: PipelineTargetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Drift and realised performance of the champion on recent records; retrain on drift (make monitor)."""
    import json as _json

    on_cluster = _is_cluster(target, kfp_host)
    chosen = _loop_source(source, on_cluster=on_cluster, serving=True)
    if labels and chosen["source"] != "serving":
        raise CommandError("LABELS is for SOURCE=serving (a file or landed months carries its own labels)")
    if labels and not on_cluster and not Path(labels).expanduser().is_file():
        raise CommandError(f"LABELS file not found: {labels}")
    arguments: dict[str, Any] = {
        **chosen,
        "version": _version(version),
        "retrain": retrain,
        # A retraining run needs labelled months of history, not the records monitored: given explicitly.
        "training_source": _local_path(training_source, on_cluster),
        "labels": _local_path(labels, on_cluster),
    }
    # Thresholds left unset take the pipeline's defaults (chicago_arrest.monitoring.drift.Thresholds).
    thresholds = {
        "psi_threshold": psi_threshold,
        "max_auc_drop": max_auc_drop,
        "max_ece": max_ece,
        "min_labelled": min_labelled,
    }
    arguments.update({k: v for k, v in thresholds.items() if v is not None})
    run_dir = _run_loop_pipeline("monitoring", arguments, target, kfp_host, verbose)
    if run_dir is None:
        if summary:
            typer.echo(
                "note: SUMMARY is written by local runs; on the cluster see the run's report", err=True
            )
        return
    out = pipelines("run").step_output(run_dir, "monitor")
    keys = ("decision", "reasons", "psi", "prediction_psi", "realised", "retrain")
    result = {k: out.get(k) for k in keys}
    result["realised"] = result["realised"] or None
    if "realised_served" in out:  # the step's output has "" for null (kfp_safe): null again in SUMMARY
        result["realised_served"] = _nulls(out["realised_served"])
        result["served"] = _nulls(out.get("served") or {})
    typer.echo(
        f"decision     {str(result['decision']).upper()} (model v{out.get('model_version')}, {out.get('rows')} records)"
    )
    for reason in result["reasons"] or []:
        typer.echo(f"  - {reason}")
    if "realised_served" in result:
        for line in _served_lines(result["realised_served"], result["served"]):
            typer.echo(line)
    typer.echo(
        f"retrain      {result['retrain']}{': ' + out['retrain_run'] if out.get('retrain_run') else ''}"
    )
    typer.echo(f"report       {run_dir / 'monitor' / 'report.html'}  (MLflow run {out.get('mlflow_run_id')})")
    if summary:
        summary.expanduser().write_text(_json.dumps(result, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"summary      {summary}")


def _local_path(path: str, on_cluster: bool) -> str:
    """An absolute path on a local run (the step runs in another folder); as given on a cluster (the pod's)."""
    return str(Path(path).expanduser().resolve()) if path and not on_cluster else path


def _nulls(value: Any) -> Any:
    """A KFP step output back to JSON: ``""`` (how a step's ``None`` travels) becomes ``null``."""
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return None if value == "" else value


def _served_lines(by_version: dict[str, Any], served: dict[str, Any]) -> list[str]:
    """What the monitor found on served traffic, for the terminal."""
    from chicago_arrest.reports.monitoring import comparison_lines, labels_line, served_version_line

    lines = [f"labels       {labels_line(served.get('labels') or {})}"]
    lines += [f"served       {served_version_line(entry)}" for entry in by_version.values()]
    if served.get("comparison"):
        lines += [f"canary       {line}" for line in comparison_lines(served["comparison"])]
    lines += [f"skipped      {problem}" for problem in served.get("problems") or []]
    return lines


def _is_cluster(target: str | None, kfp_host: str) -> bool:
    from chicago_arrest.core.targets import resolve_target

    return resolve_target(target, kfp_host=kfp_host).target == "cluster"


def _version(text: str) -> str:
    if text and not text.strip().isdigit():
        raise typer.BadParameter(f"VERSION must be a registry version number, got {text!r}")
    return text.strip()
