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
:func:`chicago_arrest.pipelines.training.training_pipeline` (names, types, defaults, help), the one home of the pipeline
defaults. Heavy modules are imported inside the commands, so ``--help`` and the serving verbs start fast.
The ``pipeline`` group lives in :mod:`chicago_arrest.cli.pipeline` (its ``batch-score`` and ``monitor`` in
:mod:`chicago_arrest.cli.loop`), what they share in :mod:`chicago_arrest.cli.common`.

Exit codes: 0 success, 1 the operation failed (one line ``error: ...`` says why), 2 bad usage.
"""

from __future__ import annotations

import json
import logging
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from chicago_arrest.cli.common import CommandError, model_list, one_of
from chicago_arrest.cli.pipeline import pipeline_app, pipeline_signature
from chicago_arrest.core.errors import expected_errors
from chicago_arrest.core.names import BUCKETS

_PIPELINE_DEFAULT = "default: the training pipeline's"


class _App(TyperGroup):
    """The root group: an expected failure anywhere below becomes ``error: <message>`` and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not isinstance(exc, expected_errors()):
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None


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


# ------------------------------------------------------------------------------------------------------------
# serving
# ------------------------------------------------------------------------------------------------------------

TargetOption = Annotated[
    str | None,
    typer.Option(
        callback=one_of("local", "cluster"),
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
    """Resolve the target (:func:`chicago_arrest.core.targets.resolve_target`), say it first, open its release."""
    from chicago_arrest.core.targets import resolve_target
    from chicago_arrest.release.ops import open_release

    resolved = resolve_target(target)
    typer.echo(resolved.line(), err=err)
    resolved.use_cluster_mlflow()
    return open_release(
        resolved.target,  # type: ignore[arg-type]
        context=resolved.context(context),
        namespace=namespace,
        name=name,
        record=resolved.cluster_record,
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
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="promote even when it is measurably worse than the champion on labelled served traffic "
            "(recorded on the version)",
        ),
    ] = False,
) -> None:
    """Make the challenger the champion (registry alias first, then 100% of requests); --version pins one.

    First prints how it did against the champion on labelled served traffic (`make monitor SOURCE=serving`
    records that) and refuses a version that is measurably worse, unless --force.
    """
    ops = _release(target, context, namespace, name)
    outcome = ops.promote(force=force) if version is None else ops.promote(version=version, force=force)
    typer.echo(outcome.message())


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
    from chicago_arrest.data.split import SplitKind
    from chicago_arrest.steps.experiment import evaluate_file, markdown

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
        models=model_list(models) if models is not None else defaults["models"],
        output=output,
    )
    typer.echo(
        f"split {window['kind']}: train {window['train_start']}..{window['train_end']} "
        f"({window['train_rows']} rows), test {window['test_start']}..{window['test_end']} "
        f"({window['test_rows']} rows)"
    )
    typer.echo(markdown(table))


@model_app.command("year-ahead")
def year_ahead_command(
    train: Annotated[
        str, typer.Option(help="training crime file(s): a path, paths separated by commas, a folder")
    ],
    test: Annotated[
        str, typer.Option(help="the later file(s), scored month by month (after the window only)")
    ],
    months: Annotated[int | None, typer.Option(min=1, help=f"training window; {_PIPELINE_DEFAULT}")] = None,
    stations: Annotated[Path | None, typer.Option(help="police stations (default: next to --train)")] = None,
    models: Annotated[str | None, typer.Option(help=f"comma-separated; {_PIPELINE_DEFAULT}")] = None,
    output: Annotated[Path | None, typer.Option(help="also write the results as JSON")] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="also write every later record's probability")
    ] = None,
) -> None:
    """Train with the pipeline's own steps on one window; score every month after it (a year ahead)."""
    from chicago_arrest.steps.year_ahead import markdown, write, year_ahead

    defaults = {k: p.default for k, p in pipeline_signature().parameters.items()}
    result = year_ahead(
        train,
        test,
        months=months or defaults["months"],
        stations=stations,
        test_months=defaults["test_months"],
        models=model_list(models) if models is not None else defaults["models"],
    )
    write(result, output, predictions)
    w = result.window
    typer.echo(
        f"trained on {w['train_start']}..{w['train_end']} ({w['train_rows']:,} rows; selected {result.selected}: "
        f"{result.selection.split('; ')[0]}); its test months {w['test_start']}..{w['test_end']}: ROC-AUC "
        f"{result.in_window['roc_auc']:.4f}, ECE {result.in_window['ece']:.4f}"
    )
    typer.echo(markdown(result))


# ------------------------------------------------------------------------------------------------------------
# store
# ------------------------------------------------------------------------------------------------------------


@store_app.command("ensure-buckets")
def ensure_buckets(
    buckets: Annotated[list[str], typer.Argument(metavar="BUCKET...", help=f"e.g. {' '.join(BUCKETS)}")],
) -> None:
    """Create the missing buckets on the S3 API of ARREST_S3_* (the kind cluster's bucket Job runs this)."""
    from chicago_arrest.core.settings import get_settings
    from chicago_arrest.core.store import S3Store, make_store

    settings = get_settings()
    if settings.store_backend != "s3":
        raise CommandError("ensure-buckets needs ARREST_STORE_BACKEND=s3 (and ARREST_S3_ENDPOINT and keys)")
    # Every name is checked (by S3Store) before the first bucket is created.
    stores = [make_store(settings, bucket=bucket) for bucket in buckets]
    for bucket, store in zip(buckets, stores, strict=True):
        assert isinstance(store, S3Store)
        created = store.ensure_bucket()
        typer.echo(f"bucket {bucket}: {'created' if created else 'exists'} at {store.endpoint_url}")


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
