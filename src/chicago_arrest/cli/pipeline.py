"""``chicago-arrest pipeline``: run, batch-score, monitor, schedule, unschedule, compile and report.

``pipeline run``'s options are derived from the signature of :func:`chicago_arrest.pipelines.training.training_pipeline`
(names, types, defaults, help), the one home of the pipeline defaults. :mod:`chicago_arrest.cli` adds
:data:`pipeline_app` to the root app; this module must not import :mod:`chicago_arrest.cli` (see
:mod:`chicago_arrest.cli.common`). ``batch-score`` and ``monitor`` are written in :mod:`chicago_arrest.cli.loop`
and added to the group here.
"""

from __future__ import annotations

import inspect
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from chicago_arrest.cli.common import (
    CommandError,
    KfpHostOption,
    PipelineTargetOption,
    cluster_profile,
    model_list,
    one_of,
    pipelines,
    step_image,
)
from chicago_arrest.cli.loop import batch_score, monitor_command

PIPELINE_RUN_HELP = (
    "Train, register and deploy: on KFP (the kind-up cluster, or KFP_HOST), else with kfp.local."
)
#: Extra spellings of ``pipeline run`` options whose parameter names are longer than the historical flags.
FLAG_ALIASES = {"stations_source": "--stations", "split_kind": "--split"}


class _PipelineGroup(TyperGroup):
    """``pipeline``: builds ``run`` only when asked for, since its options need the pipeline (and kfp)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return ["run", *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name == "run" and "run" not in self.commands:
            single = typer.Typer(add_completion=False)
            function = pipeline_run_function()
            single.command("run", help=PIPELINE_RUN_HELP)(function)
            self.add_command(typer.main.get_command(single), "run")
        return super().get_command(ctx, cmd_name)


pipeline_app = typer.Typer(
    cls=_PipelineGroup, no_args_is_help=True, help="run, schedule or compile the training pipeline"
)


#: ``make pipeline-schedule PIPELINE=...`` (issue 13: the monitoring loop's pipelines too).
PipelineChoice = Annotated[
    str,
    typer.Option(
        callback=one_of("training", "monitoring", "batch-scoring"),
        metavar="[training|monitoring|batch-scoring]",
        help="which pipeline's recurring run (monitoring: weekly; batch-scoring: monthly)",
    ),
]


def _docstring_args(doc: str) -> dict[str, str]:
    """``name: text`` of a Google docstring's ``Args:`` section (continuation lines joined)."""
    helps: dict[str, str] = {}
    section = doc.split("Args:", 1)[1] if "Args:" in doc else ""
    name = ""
    for line in section.splitlines():
        match = re.match(r"\s{4}(\w+): (.*)", line)
        if match:
            name, helps[match[1]] = match[1], match[2]
        elif line.startswith(" " * 8) and name:
            helps[name] += " " + line.strip()
        elif line.strip():
            break
    return {key: text.replace("``", "") for key, text in helps.items()}


def pipeline_signature() -> inspect.Signature:
    """The Python signature of :func:`chicago_arrest.pipelines.training.training_pipeline`: the pipeline defaults."""
    return inspect.signature(pipelines("training").training_pipeline.pipeline_func)


def pipeline_run_function() -> Callable[..., None]:
    """The ``pipeline run`` command: one option per pipeline parameter, plus ``--kfp-host``.

    A list parameter (``models``) is one comma-separated option; ``stations_source`` and ``split_kind`` also
    answer to their historical flags (:data:`FLAG_ALIASES`).
    """
    func = pipelines("training").training_pipeline.pipeline_func
    hints = typing.get_type_hints(func)
    helps = _docstring_args(inspect.getdoc(func) or "")
    params = []
    for param in pipeline_signature().parameters.values():
        kind, default = hints[param.name], param.default
        if typing.get_origin(kind) is list:
            kind, default = str, ",".join(default)
        flags = [f"--{param.name.replace('_', '-')}"]
        if param.name in FLAG_ALIASES:
            flags.append(FLAG_ALIASES[param.name])
        option = typer.Option(default, *flags, help=helps.get(param.name, ""))
        params.append(
            inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        )
    host = inspect.Parameter("kfp_host", inspect.Parameter.KEYWORD_ONLY, default="", annotation=KfpHostOption)
    target = inspect.Parameter(
        "target", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=PipelineTargetOption
    )

    def run(**values: Any) -> None:
        _pipeline_run(values)

    verbose = inspect.Parameter(
        "verbose",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[
            bool,
            typer.Option("--verbose", help="stream every step's full output (make pipeline-run VERBOSE=1)"),
        ],
    )
    vertex = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default="",
            annotation=Annotated[
                str,
                typer.Option(
                    f"--{name.replace('_', '-')}", help=f"--target vertex: {text} (make {name.upper()}=)"
                ),
            ],
        )
        for name, text in (
            ("project", "Google Cloud project"),
            ("region", "Vertex AI region, e.g. us-central1"),
            ("bucket", "GCS bucket of the pipeline root (gs://BUCKET/pipeline-root)"),
            ("service_account", "the run's service account e-mail (empty: the Compute Engine default)"),
        )
    ]
    run.__signature__ = inspect.Signature([*params, host, target, verbose, *vertex])  # type: ignore[attr-defined]
    return run


def pipeline_arguments(values: dict[str, Any], *, on_cluster: bool) -> dict[str, Any]:
    """Check the ``pipeline run`` options and return the pipeline's arguments.

    Raises:
        typer.BadParameter: For a value no pipeline accepts (exit code 2).
        CommandError: When SOURCE is not a file on a local run.
    """
    from chicago_arrest.data.split import SplitKind
    from chicago_arrest.model.artifact import CalibrationMethod
    from chicago_arrest.registry.state import Target

    arguments = {**values, "models": model_list(values["models"])}
    if not 0 <= values["canary_percent"] <= 100:
        raise typer.BadParameter(f"--canary-percent must be in 0..100, got {values['canary_percent']}")
    for key, choices in (
        ("split_kind", typing.get_args(SplitKind)),
        ("calibration", typing.get_args(CalibrationMethod)),
        ("deploy_target", ("auto", *typing.get_args(Target), "none")),
    ):
        if values[key] not in choices:
            raise typer.BadParameter(f"--{key.replace('_', '-')} must be one of {', '.join(choices)}")
    if not on_cluster:
        arguments["source"] = _local_sources(values["source"])
        stations = values["stations_source"]
        arguments["stations_source"] = str(Path(stations).expanduser().resolve()) if stations else ""
    return arguments


def _local_sources(source: str) -> str:
    """SOURCE with every file or folder made absolute (the steps run elsewhere); files separated by commas.

    Raises:
        CommandError: Naming a file or folder that does not exist.
    """
    resolved = []
    for part in (p.strip() for p in source.split(",")):
        if not part:
            continue
        path = Path(part).expanduser()
        if not path.exists():
            raise CommandError(f"SOURCE file not found: {part}")
        resolved.append(str(path.resolve()))
    return ",".join(resolved)


def _pipeline_run(values: dict[str, Any]) -> None:

    from chicago_arrest.core.targets import resolve_target

    run = pipelines("run")
    kfp_host = values.pop("kfp_host")
    verbose = values.pop("verbose", False)
    gcp = {key: values.pop(key, "") for key in ("project", "region", "bucket", "service_account")}
    resolved = resolve_target(values.pop("target"), kfp_host=kfp_host)
    typer.echo(resolved.line())
    if (
        resolved.target == "vertex"
    ):  # issue 17: submit the compiled Vertex pipeline (pipelines/vertex_submit.py)
        run.run_vertex(
            pipeline_arguments(values, on_cluster=True), image=os.environ.get("ARREST_IMAGE", ""), **gcp
        )
        return
    host = resolved.kfp_host(kfp_host)
    arguments = pipeline_arguments(values, on_cluster=resolved.target == "cluster")
    if resolved.target == "cluster":
        if not host:
            raise CommandError(
                "the cluster target needs KFP's address: set KFP_HOST (e.g. http://localhost:3000) or run make kind-up"
            )
        if arguments["source"]:
            typer.echo("note: on a cluster SOURCE must be a path readable inside the step's pod", err=True)
        run.run_cluster(arguments, host, image=step_image(resolved), profile=cluster_profile(resolved))
        return
    try:
        run.run_local(arguments, verbose=verbose)
    except RuntimeError as exc:  # kfp.local reports a failed task as RuntimeError after streaming its log
        typer.echo(run.failure_message(exc, arguments), err=True)
        raise typer.Exit(1) from None


def _kfp_client(host: str, target: str | None = None) -> tuple[Any, Any]:
    """The KFP client of the resolved target (the recorded cluster's KFP, or ``host``) and the target itself.

    Says the target first.
    """
    from chicago_arrest.core.targets import resolve_target

    resolved = resolve_target(target, kfp_host=host)
    typer.echo(resolved.line())
    host = resolved.kfp_host(host) if resolved.target == "cluster" else ""
    if not host:
        raise CommandError(
            "recurring runs need a KFP cluster: run make kind-up, or set KFP_HOST (e.g. http://localhost:3000). "
            "Locally, run `make pipeline-run` instead."
        )
    from chicago_arrest.core import kfp_api

    return kfp_api.client(host), resolved


def _check_cron(value: str | None) -> str | None:
    try:
        return None if value is None else pipelines("schedule").validate_cron(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@pipeline_app.command()
def schedule(
    cron: Annotated[
        str | None,
        typer.Option(
            envvar="CRON", callback=_check_cron, help="KFP cron, 6 fields, seconds first [default: monthly]"
        ),
    ] = None,
    kfp_host: KfpHostOption = "",
    target: PipelineTargetOption = None,
    pipeline: PipelineChoice = "training",
) -> None:
    """Create or update a recurring run on KFP (exactly one per pipeline, on its latest version)."""
    schedule = pipelines("schedule")
    which = schedule.SCHEDULES[pipeline]
    cron = cron or which.cron
    client, resolved = _kfp_client(kfp_host, target)
    # A pipeline KFP does not have yet is compiled with the image the cluster runs (never into the committed YAML).
    result = schedule.ensure_recurring_run(
        client,
        cron=cron,
        pipeline=pipeline,
        image=step_image(resolved),
        profile=cluster_profile(resolved),
    )
    typer.echo(
        f"recurring run {which.job_name!r}: {result.action} (id {result.recurring_run_id}, pipeline version "
        f"{result.pipeline_version_id}, cron {cron!r})"
    )


@pipeline_app.command()
def unschedule(
    kfp_host: KfpHostOption = "", target: PipelineTargetOption = None, pipeline: PipelineChoice = "training"
) -> None:
    """Delete the recurring run of a pipeline from KFP."""
    schedule = pipelines("schedule")
    client, _ = _kfp_client(kfp_host, target)
    action = schedule.delete_recurring_run(client, pipeline).action
    typer.echo(f"recurring run {schedule.SCHEDULES[pipeline].job_name!r}: {action}")


@pipeline_app.command("vertex-smoke")
def vertex_smoke(
    project: Annotated[str, typer.Option("--project", help="Google Cloud project (make PROJECT=)")] = "",
    region: Annotated[
        str, typer.Option("--region", help="Vertex AI region, e.g. us-central1 (make REGION=)")
    ] = "",
    bucket: Annotated[
        str, typer.Option("--bucket", help="GCS bucket of the pipeline root (make BUCKET=)")
    ] = "",
    service_account: Annotated[
        str, typer.Option("--service-account", help="the run's service account (make SERVICE_ACCOUNT=)")
    ] = "",
    timeout: Annotated[int, typer.Option("--timeout", help="seconds to wait for the pipeline")] = 3600,
    keep: Annotated[
        bool, typer.Option("--keep", help="keep the endpoint, model and objects it created")
    ] = False,
) -> None:
    """On a real Google Cloud project: PASS/FAIL checks of the image, the bucket, the account and an endpoint."""
    from chicago_arrest.cli.vertex_smoke import run_smoke

    code = run_smoke(
        project=project,
        region=region,
        bucket=bucket,
        service_account=service_account,
        image=os.environ.get("ARREST_IMAGE", ""),
        timeout_s=timeout,
        keep=keep,
    )
    if code:
        raise typer.Exit(code)


@pipeline_app.command("compile")
def compile_pipeline(
    out_dir: Annotated[
        Path | None, typer.Option(help="output folder (default: chicago_arrest/pipelines/compiled)")
    ] = None,
) -> None:
    """Compile the pipelines to chicago_arrest/pipelines/compiled/<name>.yaml (committed; Vertex: vertex extra)."""
    compiler = pipelines("compile")
    for compile_one in compiler.COMPILERS:
        path = compile_one(out_dir or compiler.COMPILED_DIR)
        typer.echo(f"compiled {path}" if path else f"skipped {compile_one.__name__}: uv sync --extra vertex")


@pipeline_app.command("report")
def report(
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="open it in a browser if one can")
    ] = True,
) -> None:
    """Print the path of the newest local run's training report (then its other reports) and open it."""
    from chicago_arrest.cli.reports import latest_reports, open_in_browser
    from chicago_arrest.core.settings import get_settings

    root = get_settings().data_dir.resolve() / "kfp"
    found = latest_reports(root)
    if found is None:
        raise CommandError(f"no HTML report under {root}: run `make pipeline-run` first")
    typer.echo(str(found.main))
    for step, path in found.pages.items():
        if path != found.main:
            typer.echo(f"  also ({step}): {path}")
    if open_browser and not open_in_browser(found.main):
        typer.echo("  (no browser here: open the path above in one)", err=True)


# issue 13: the monitoring loop's pipelines (chicago-arrest-batch-scoring / chicago-arrest-monitoring), registered
# last so ``pipeline --help`` lists the commands in the same order as before.
pipeline_app.command("batch-score")(batch_score)
pipeline_app.command("monitor")(monitor_command)
