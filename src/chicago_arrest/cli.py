"""The one command line of the project: ``chicago-arrest`` (also ``python -m chicago_arrest.cli``).

::

    chicago-arrest serving canary --percent 10 [--target local|cluster] [--context C]
    chicago-arrest serving promote | rollback [--version N] | status [--json]
    chicago-arrest model evaluate --source crimes.csv [--split time] [--test-months 1]
    chicago-arrest store ensure-buckets BUCKET...
    chicago-arrest pipeline run [--source crimes.csv] [--months 12] ...   (make pipeline-run)
    chicago-arrest pipeline schedule | unschedule [--pipeline training|monitoring|batch-scoring] | compile
    chicago-arrest pipeline batch-score | monitor --source FILE|YYYY-MM[..YYYY-MM]|serving ...  (issue 13)

The serving verbs are the same for both targets: :func:`chicago_arrest.release.ops.open_release` picks the
backend. ``pipeline run``'s options are derived from the signature of
:func:`pipelines.training.training_pipeline` (names, types, defaults, help), the one home of the pipeline
defaults. Heavy modules are imported inside the commands, so ``--help`` and the serving verbs start fast.

Exit codes: 0 success, 1 the operation failed (one line ``error: ...`` says why), 2 bad usage.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import re
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from chicago_arrest.names import BUCKETS

#: Expected failures besides :class:`CommandError`, by module (looked up only if the module was loaded):
#: reported as one line and exit code 1.
EXPECTED_ERRORS = {
    "chicago_arrest.release.base": ("ReleaseError",),
    "chicago_arrest.targets": ("TargetError",),
    "chicago_arrest.store": ("StoreError",),
    "chicago_arrest.ingest": ("IngestError",),
    "chicago_arrest.socrata": ("SocrataError",),
    "mlflow.exceptions": ("MlflowException",),
    "chicago_arrest.vertex": ("VertexError",),
    "builtins": ("FileNotFoundError", "PermissionError"),
}
_PIPELINE_DEFAULT = "default: the training pipeline's"
PIPELINE_RUN_HELP = (
    "Train, register and deploy: on KFP (the kind-up cluster, or KFP_HOST), else with kfp.local."
)
#: Extra spellings of ``pipeline run`` options whose parameter names are longer than the historical flags.
FLAG_ALIASES = {"stations_source": "--stations", "split_kind": "--split"}


class CommandError(RuntimeError):
    """An operation failed for a reason the user can act on (printed as one line, exit code 1)."""


def _expected_errors() -> tuple[type[BaseException], ...]:
    loaded = [
        getattr(sys.modules[m], name)
        for m, names in EXPECTED_ERRORS.items()
        if m in sys.modules
        for name in names
    ]
    return (CommandError, *loaded)


class _App(TyperGroup):
    """The root group: an expected failure anywhere below becomes ``error: <message>`` and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not isinstance(exc, _expected_errors()):
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None


class _PipelineGroup(TyperGroup):
    """``pipeline``: builds ``run`` only when asked for, since its options need the pipeline (and kfp)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return ["run", *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name == "run" and "run" not in self.commands:
            single = typer.Typer(add_completion=False)
            try:
                function = pipeline_run_function()
            except CommandError as exc:  # outside the project folder: the command says so when run
                error = exc

                def function() -> None:
                    raise error

            single.command("run", help=PIPELINE_RUN_HELP)(function)
            self.add_command(typer.main.get_command(single), "run")
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_App,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Chicago arrest prediction: serving, model, store and pipeline operations.",
)
serving_app = typer.Typer(
    no_args_is_help=True, help="canary / promote / rollback / status of the served model"
)
model_app = typer.Typer(no_args_is_help=True, help="offline model comparison (no registry)")
store_app = typer.Typer(no_args_is_help=True, help="object store chores")
pipeline_app = typer.Typer(
    cls=_PipelineGroup, no_args_is_help=True, help="run, schedule or compile the training pipeline"
)
app.add_typer(serving_app, name="serving")
app.add_typer(model_app, name="model")
app.add_typer(store_app, name="store")
app.add_typer(pipeline_app, name="pipeline")


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="log at INFO level")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _one_of(*choices: str) -> Callable[[str | None], str | None]:
    """An option callback that accepts only ``choices`` or nothing (a usage error otherwise)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


# ------------------------------------------------------------------------------------------------------------
# serving
# ------------------------------------------------------------------------------------------------------------

TargetOption = Annotated[
    str | None,
    typer.Option(
        callback=_one_of("local", "cluster"),
        metavar="[local|cluster]",
        help="local: the serving state of `make serve`; cluster: the KServe InferenceService "
        "[default: cluster once `make kind-up` recorded one, else local]",
    ),
]
ContextOption = Annotated[
    str | None,
    typer.Option(
        help="kubeconfig context of the cluster (default: the recorded kind cluster's, else the current)"
    ),
]
NamespaceOption = Annotated[
    str | None, typer.Option(help="namespace of the InferenceService (default: models)")
]
NameOption = Annotated[str | None, typer.Option(help="InferenceService name (default: arrest-predictor)")]
VersionOption = Annotated[
    int | None,
    typer.Option(min=1, help="registry version to serve as champion; it must have passed the gate once"),
]


def _release(
    target: str | None, context: str | None, namespace: str | None, name: str | None, *, err: bool = False
) -> Any:
    """Resolve the target (:func:`chicago_arrest.targets.resolve_target`), say it first, open its release."""
    from chicago_arrest.release.ops import open_release
    from chicago_arrest.targets import resolve_target

    resolved = resolve_target(target)
    typer.echo(resolved.line(), err=err)
    resolved.use_cluster_mlflow()
    return open_release(
        resolved.target,  # type: ignore[arg-type]
        context=resolved.context(context),
        namespace=namespace,
        name=name,
    )


@serving_app.command()
def canary(
    percent: Annotated[
        int, typer.Option(min=0, max=100, help="share of requests for the challenger, 0..100")
    ],
    target: TargetOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    name: NameOption = None,
) -> None:
    """Send PERCENT% of requests to the challenger."""
    typer.echo(_release(target, context, namespace, name).canary(percent).message())


@serving_app.command()
def promote(
    target: TargetOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    name: NameOption = None,
    version: VersionOption = None,
) -> None:
    """Make the challenger the champion (registry alias first, then 100% of requests); --version pins one."""
    ops = _release(target, context, namespace, name)
    typer.echo((ops.promote() if version is None else ops.promote(version=version)).message())


@serving_app.command()
def rollback(
    target: TargetOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    name: NameOption = None,
    version: VersionOption = None,
) -> None:
    """Stop a canary (0% to the challenger), else undo the last promotion; --version pins a version."""
    ops = _release(target, context, namespace, name)
    typer.echo((ops.rollback() if version is None else ops.rollback(version=version)).message())


@serving_app.command()
def status(
    target: TargetOption = None,
    context: ContextOption = None,
    namespace: NamespaceOption = None,
    name: NameOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """What is served, and the registry aliases."""
    from chicago_arrest.release.ops import format_status

    report = _release(target, context, namespace, name, err=as_json).status()
    typer.echo(json.dumps(report, indent=2, default=str) if as_json else format_status(report))


# ------------------------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------------------------


@model_app.command()
def evaluate(
    source: Annotated[Path, typer.Option(help="CSV/Parquet in the Socrata schema")],
    stations: Annotated[Path | None, typer.Option(help="police stations (default: next to --source)")] = None,
    split: Annotated[str | None, typer.Option(metavar="[time|random]", help=_PIPELINE_DEFAULT)] = None,
    months: Annotated[int | None, typer.Option(min=1, help=_PIPELINE_DEFAULT)] = None,
    test_months: Annotated[int | None, typer.Option(min=1, help=_PIPELINE_DEFAULT)] = None,
    models: Annotated[str | None, typer.Option(help=f"comma-separated; {_PIPELINE_DEFAULT}")] = None,
    output: Annotated[Path | None, typer.Option(help="also write the results as JSON")] = None,
) -> None:
    """Train every model type on a split through the pipeline's own steps and print the test metrics."""
    from chicago_arrest.experiment import evaluate_file, markdown
    from chicago_arrest.split import SplitKind

    defaults = {k: p.default for k, p in pipeline_signature().parameters.items()}
    split = split or defaults["split_kind"]
    if split not in typing.get_args(SplitKind):
        raise typer.BadParameter(f"--split must be one of {', '.join(typing.get_args(SplitKind))}")
    table, window = evaluate_file(
        source,
        stations=stations,
        split=split,
        months=months or defaults["months"],
        test_months=test_months or defaults["test_months"],
        models=_model_list(models) if models is not None else defaults["models"],
        output=output,
    )
    typer.echo(
        f"split {window['kind']}: train {window['train_start']}..{window['train_end']} "
        f"({window['train_rows']} rows), test {window['test_start']}..{window['test_end']} "
        f"({window['test_rows']} rows)"
    )
    typer.echo(markdown(table))


def _model_list(text: str) -> list[str]:
    """The model types of a comma-separated list (a usage error if empty or unknown)."""
    from chicago_arrest.training import MODEL_TYPES

    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models or set(models) - set(MODEL_TYPES):
        raise typer.BadParameter(f"--models must list some of {', '.join(MODEL_TYPES)}; got {text!r}")
    return models


# ------------------------------------------------------------------------------------------------------------
# store
# ------------------------------------------------------------------------------------------------------------


@store_app.command("ensure-buckets")
def ensure_buckets(
    buckets: Annotated[list[str], typer.Argument(metavar="BUCKET...", help=f"e.g. {' '.join(BUCKETS)}")],
) -> None:
    """Create the missing buckets on the S3 API of ARREST_S3_* (the kind cluster's bucket Job runs this)."""
    from chicago_arrest.settings import get_settings
    from chicago_arrest.store import S3Store, make_store

    settings = get_settings()
    if settings.store_backend != "s3":
        raise CommandError("ensure-buckets needs ARREST_STORE_BACKEND=s3 (and ARREST_S3_ENDPOINT and keys)")
    # Every name is checked (by S3Store) before the first bucket is created.
    stores = [make_store(settings, bucket=bucket) for bucket in buckets]
    for bucket, store in zip(buckets, stores, strict=True):
        assert isinstance(store, S3Store)
        created = store.ensure_bucket()
        typer.echo(f"bucket {bucket}: {'created' if created else 'exists'} at {store.endpoint_url}")


# ------------------------------------------------------------------------------------------------------------
# pipeline
# ------------------------------------------------------------------------------------------------------------

KfpHostOption = Annotated[
    str,
    typer.Option(envvar="KFP_HOST", help="KFP API/UI URL [default: the one `make kind-up` recorded, if any]"),
]
PipelineTargetOption = Annotated[
    str | None,
    typer.Option(
        "--target",
        callback=_one_of("local", "cluster", "vertex"),
        metavar="[local|cluster|vertex]",
        help="where to run [default: cluster if KFP_HOST is set or `make kind-up` recorded one, else local]",
    ),
]


#: ``make pipeline-schedule PIPELINE=...`` (issue 13: the monitoring loop's pipelines too).
PipelineChoice = Annotated[
    str,
    typer.Option(
        callback=_one_of("training", "monitoring", "batch-scoring"),
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


def _pipelines(module: str) -> Any:
    """``pipelines.<module>``: the pipeline code lives in the project folder, not in the installed package."""
    try:
        return importlib.import_module(f"pipelines.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("pipelines", "components"):
            raise
        raise CommandError(
            f"the pipeline commands run from the project's folder (no module {exc.name!r} here): "
            "cd to the checkout, or use make"
        ) from None


def pipeline_signature() -> inspect.Signature:
    """The Python signature of :func:`pipelines.training.training_pipeline`: the pipeline defaults."""
    return inspect.signature(_pipelines("training").training_pipeline.pipeline_func)


def pipeline_run_function() -> Callable[..., None]:
    """The ``pipeline run`` command: one option per pipeline parameter, plus ``--kfp-host``.

    A list parameter (``models``) is one comma-separated option; ``stations_source`` and ``split_kind`` also
    answer to their historical flags (:data:`FLAG_ALIASES`).
    """
    func = _pipelines("training").training_pipeline.pipeline_func
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
                str, typer.Option(f"--{name}", help=f"--target vertex: {text} (make {name.upper()}=)")
            ],
        )
        for name, text in (
            ("project", "Google Cloud project"),
            ("region", "Vertex AI region, e.g. us-central1"),
            ("bucket", "GCS bucket of the pipeline root (gs://BUCKET/pipeline-root)"),
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
    from chicago_arrest.artifact import CalibrationMethod
    from chicago_arrest.release.base import Target
    from chicago_arrest.split import SplitKind

    arguments = {**values, "models": _model_list(values["models"])}
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
        if values["source"] and not Path(values["source"]).expanduser().is_file():
            raise CommandError(f"SOURCE file not found: {values['source']}")
        for key in ("source", "stations_source"):
            arguments[key] = str(Path(values[key]).expanduser().resolve()) if values[key] else ""
    return arguments


def _pipeline_run(values: dict[str, Any]) -> None:
    import os

    from chicago_arrest.targets import resolve_target

    run = _pipelines("run")
    kfp_host = values.pop("kfp_host")
    verbose = values.pop("verbose", False)
    gcp = {key: values.pop(key, "") for key in ("project", "region", "bucket")}
    resolved = resolve_target(values.pop("target"), kfp_host=kfp_host)
    typer.echo(resolved.line())
    if resolved.target == "vertex":  # issue 17: submit the compiled Vertex pipeline (chicago_arrest.vertex)
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
        record = resolved.cluster_record
        image = os.environ.get("ARREST_IMAGE") or (record.image if record else None)
        run.run_cluster(arguments, host, image=image)
        return
    try:
        run.run_local(arguments, verbose=verbose)
    except RuntimeError as exc:  # kfp.local reports a failed task as RuntimeError after streaming its log
        typer.echo(run.failure_message(exc, arguments), err=True)
        raise typer.Exit(1) from None


def _kfp_client(host: str, target: str | None = None) -> Any:
    """The KFP client of the resolved target (the recorded cluster's KFP, or ``host``); says the target first."""
    from chicago_arrest.targets import resolve_target

    resolved = resolve_target(target, kfp_host=host)
    typer.echo(resolved.line())
    host = resolved.kfp_host(host) if resolved.target == "cluster" else ""
    if not host:
        raise CommandError(
            "recurring runs need a KFP cluster: run make kind-up, or set KFP_HOST (e.g. http://localhost:3000). "
            "Locally, run `make pipeline-run` instead."
        )
    import kfp

    return kfp.Client(host=host)


def _check_cron(value: str | None) -> str | None:
    try:
        return None if value is None else _pipelines("schedule").validate_cron(value)
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
    schedule = _pipelines("schedule")
    which = schedule.SCHEDULES[pipeline]
    cron = cron or which.cron
    result = schedule.ensure_recurring_run(_kfp_client(kfp_host, target), cron=cron, pipeline=pipeline)
    typer.echo(
        f"recurring run {which.job_name!r}: {result.action} (id {result.recurring_run_id}, pipeline version "
        f"{result.pipeline_version_id}, cron {cron!r})"
    )


@pipeline_app.command()
def unschedule(
    kfp_host: KfpHostOption = "", target: PipelineTargetOption = None, pipeline: PipelineChoice = "training"
) -> None:
    """Delete the recurring run of a pipeline from KFP."""
    schedule = _pipelines("schedule")
    client = _kfp_client(kfp_host, target)
    action = schedule.delete_recurring_run(client, pipeline).action
    typer.echo(f"recurring run {schedule.SCHEDULES[pipeline].job_name!r}: {action}")


@pipeline_app.command("compile")
def compile_pipeline(
    out_dir: Annotated[Path | None, typer.Option(help="output folder (default: pipelines/compiled)")] = None,
) -> None:
    """Compile the pipelines to pipelines/compiled/<name>.yaml (committed; Vertex with the vertex extra)."""
    compiler = _pipelines("compile")
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
    from chicago_arrest.progress import latest_reports, open_in_browser
    from chicago_arrest.settings import get_settings

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


# --- issue 13: batch scoring and monitoring (pipelines chicago-arrest-batch-scoring / chicago-arrest-monitoring)

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
    if source == "serving":
        if not serving:
            raise CommandError("SOURCE=serving is for make monitor; batch-score a file or landed months")
        if on_cluster:
            raise CommandError(
                "SOURCE=serving is the local server's request log; on a cluster see KServe's logger"
            )
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
    import os

    from chicago_arrest.targets import resolve_target

    module, run, compiler = _pipelines(which), _pipelines("run"), _pipelines("compile")
    resolved = resolve_target(target, kfp_host=kfp_host)
    typer.echo(resolved.line())
    if resolved.target == "vertex":
        raise CommandError(f"{module.PIPELINE_NAME} runs locally or on the kind cluster, not on Vertex yet")
    if resolved.target == "cluster":
        host = resolved.kfp_host(kfp_host)
        if not host:
            raise CommandError("the cluster target needs KFP's address: set KFP_HOST or run make kind-up")
        record = resolved.cluster_record
        image = os.environ.get("ARREST_IMAGE") or (record.image if record else None)
        run.run_cluster_pipeline(
            getattr(compiler, f"compile_{which}"), module.PIPELINE_NAME, arguments, host, image=image
        )
        return None
    try:
        return run.run_local_pipeline(
            getattr(module, f"{which}_pipeline"), module.PIPELINE_NAME, arguments, verbose=verbose
        )
    except RuntimeError as exc:
        typer.echo(run.failure_message(exc, arguments), err=True)
        raise typer.Exit(1) from None


@pipeline_app.command("batch-score")
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
        out = _pipelines("run").step_output(run_dir, "batch-score")
        typer.echo(
            f"predictions  {out.get('predictions')}  ({out.get('scored')} records, model v{out.get('model_version')})"
        )
        typer.echo(
            f"quarantine   {out.get('quarantine')}  ({out.get('quarantined')} records: {out.get('reasons') or 'none'})"
        )


@pipeline_app.command("monitor")
def monitor_command(
    source: SourceOption = "",
    version: VersionText = "",
    retrain: Annotated[str, typer.Option(callback=_one_of("auto", "never"), metavar="[auto|never]")] = "auto",
    summary: Annotated[Path | None, typer.Option(help="write the decision as JSON here")] = None,
    psi_threshold: Annotated[float, typer.Option(help="PSI that counts as drift")] = 0.2,
    max_auc_drop: Annotated[float, typer.Option(help="realised ROC-AUC drop that counts as degraded")] = 0.03,
    max_ece: Annotated[float, typer.Option(help="realised ECE that counts as degraded")] = 0.05,
    training_source: Annotated[
        str, typer.Option(help="SOURCE of the training run a drift starts [default: the training pipeline's]")
    ] = "",
    kfp_host: KfpHostOption = "",
    target: PipelineTargetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Drift and realised performance of the champion on recent records; retrain on drift (make monitor)."""
    import json as _json

    on_cluster = _is_cluster(target, kfp_host)
    chosen = _loop_source(source, on_cluster=on_cluster, serving=True)
    arguments = {
        **chosen,
        "version": _version(version),
        "psi_threshold": psi_threshold,
        "max_auc_drop": max_auc_drop,
        "max_ece": max_ece,
        "retrain": retrain,
        # A retraining run needs labelled months of history, not the records monitored: given explicitly.
        "training_source": str(Path(training_source).expanduser().resolve())
        if training_source and not on_cluster
        else training_source,
    }
    run_dir = _run_loop_pipeline("monitoring", arguments, target, kfp_host, verbose)
    if run_dir is None:
        if summary:
            typer.echo(
                "note: SUMMARY is written by local runs; on the cluster see the run's report", err=True
            )
        return
    out = _pipelines("run").step_output(run_dir, "monitor")
    keys = ("decision", "reasons", "psi", "prediction_psi", "realised", "retrain")
    result = {k: out.get(k) for k in keys}
    result["realised"] = result["realised"] or None
    typer.echo(
        f"decision     {str(result['decision']).upper()} (model v{out.get('model_version')}, {out.get('rows')} records)"
    )
    for reason in result["reasons"] or []:
        typer.echo(f"  - {reason}")
    typer.echo(
        f"retrain      {result['retrain']}{': ' + out['retrain_run'] if out.get('retrain_run') else ''}"
    )
    typer.echo(f"report       {run_dir / 'monitor' / 'report.html'}  (MLflow run {out.get('mlflow_run_id')})")
    if summary:
        summary.expanduser().write_text(_json.dumps(result, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"summary      {summary}")


def _is_cluster(target: str | None, kfp_host: str) -> bool:
    from chicago_arrest.targets import resolve_target

    return resolve_target(target, kfp_host=kfp_host).target == "cluster"


def _version(text: str) -> str:
    if text and not text.strip().isdigit():
        raise typer.BadParameter(f"VERSION must be a registry version number, got {text!r}")
    return text.strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 1 an expected failure, 2 bad usage.
    """
    try:
        app(args=None if argv is None else list(argv), prog_name="chicago-arrest")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
