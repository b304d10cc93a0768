"""Command line of the project: ``python -m chicago_arrest.cli <group> <command>`` (also ``chicago-arrest``).

Groups register themselves in :data:`GROUPS`; each one is a function that adds its sub-parser. Today:

``serving`` — the canary verbs, the same locally and on the cluster::

    python -m chicago_arrest.cli serving canary --percent 10 --target local
    python -m chicago_arrest.cli serving promote --target cluster
    python -m chicago_arrest.cli serving rollback
    python -m chicago_arrest.cli serving status --json

``store`` — ``ensure-buckets BUCKET...`` creates missing buckets (the kind cluster's bucket Job runs it).

``--target local`` changes the local serving state (:mod:`chicago_arrest.serving_state`), which a running
``make serve`` picks up within about a second. ``--target cluster`` patches the InferenceService through
:mod:`chicago_arrest.k8s`; ``promote`` also moves the MLflow ``champion`` alias to the challenger.

Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


class CommandError(RuntimeError):
    """An operation failed for a reason the user can act on (printed without a traceback)."""


# ------------------------------------------------------------------------------------------------------------
# serving
# ------------------------------------------------------------------------------------------------------------


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        choices=("local", "cluster"),
        default="local",
        help="local: the serving state of `make serve`; cluster: the KServe InferenceService",
    )
    cluster = parser.add_argument_group("cluster target")
    cluster.add_argument(
        "--namespace", default=None, help="namespace of the InferenceService (default: models)"
    )
    cluster.add_argument("--name", default=None, help="InferenceService name (default: arrest-predictor)")
    cluster.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")


def _k8s_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key in ("namespace", "name", "context"):
        if getattr(args, key, None):
            kwargs[key] = getattr(args, key)
    return kwargs


def _print_state(state: Any) -> None:
    from chicago_arrest.serving_state import describe

    print(f"local serving: {describe(state)}")


def _cmd_canary(args: argparse.Namespace) -> int:
    if args.target == "cluster":
        from chicago_arrest import k8s

        print(k8s.set_canary(args.percent, **_k8s_kwargs(args)).strip())
        return 0
    from chicago_arrest import serving_state

    _print_state(serving_state.set_canary(args.percent))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    if args.target == "cluster":
        from chicago_arrest import k8s
        from chicago_arrest.registry import configure_mlflow, promote_challenger
        from chicago_arrest.settings import Settings

        print(k8s.promote(**_k8s_kwargs(args)).strip())
        try:
            previous, new = promote_challenger(configure_mlflow(Settings()))
        except LookupError as exc:
            raise CommandError(f"cluster traffic moved, but the MLflow alias was not: {exc}") from exc
        print(f"MLflow: champion alias -> version {new} (was {previous})")
        return 0
    from chicago_arrest import serving_state

    _print_state(serving_state.promote())
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    if args.target == "cluster":
        from chicago_arrest import k8s

        print(k8s.rollback(**_k8s_kwargs(args)).strip())
        return 0
    from chicago_arrest import serving_state

    _print_state(serving_state.rollback())
    return 0


def _format_local_status(report: dict[str, Any]) -> str:
    lines = [f"Local serving state {report['path']}"]
    state = report["state"]
    if state is None:
        lines.append("  (none)")
    else:
        challenger = state["challenger"]
        lines.append(f"  champion:   {state['champion']['version']}  ({state['champion']['uri']})")
        lines.append(
            f"  challenger: {challenger['version']}  ({challenger['uri']})"
            if challenger
            else "  challenger: -"
        )
        lines.append(
            f"  canary:     {state['canary_percent']}% to the challenger (updated {state['updated_at']})"
        )
    registry = report["registry"]
    lines.append(f"MLflow registry {registry['tracking_uri']}")
    lines.append(f"  @champion:   {registry['champion'] or '-'}")
    lines.append(f"  @challenger: {registry['challenger'] or '-'}")
    lines.extend(f"Note: {note}" for note in report["notes"])
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace) -> int:
    from chicago_arrest import serving_state

    if args.target == "cluster":
        from chicago_arrest import k8s

        summary = k8s.status(**_k8s_kwargs(args))
        if args.json:
            print(json.dumps(summary.to_dict(), indent=2))
        else:
            print(k8s.format_status(summary))
        return 0
    report = serving_state.status()
    print(json.dumps(report, indent=2) if args.json else _format_local_status(report))
    return 0


def _percent(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be in 0..100, got {value}")
    return value


def add_serving(subparsers: Any) -> None:
    """Register ``serving {canary,promote,rollback,status}``."""
    serving = subparsers.add_parser(
        "serving", help="canary / promote / rollback / status of the served model", description=__doc__
    )
    commands = serving.add_subparsers(dest="command", metavar="COMMAND", required=True)

    canary = commands.add_parser("canary", help="send PERCENT%% of requests to the challenger")
    canary.add_argument("--percent", type=_percent, required=True, help="0..100")
    _add_target(canary)
    canary.set_defaults(handler=_cmd_canary)

    promote = commands.add_parser("promote", help="make the challenger the champion (100%% of requests)")
    _add_target(promote)
    promote.set_defaults(handler=_cmd_promote)

    rollback = commands.add_parser("rollback", help="send every request to the champion (canary 0%%)")
    _add_target(rollback)
    rollback.set_defaults(handler=_cmd_rollback)

    status = commands.add_parser("status", help="what is served, and the registry aliases")
    _add_target(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_cmd_status)


#: Command groups: name → function that registers the group's sub-parser. Add new groups here.
# ------------------------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------------------------


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chicago_arrest.experiment import compare_models, markdown, read_records

    crimes = read_records(args.source)
    stations_path = (
        Path(args.stations) if args.stations else Path(args.source).with_name("police_stations.csv")
    )
    if not stations_path.is_file():
        raise CommandError(f"police stations file not found: {stations_path} (pass --stations)")
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    table, window = compare_models(
        crimes, read_records(stations_path), split=args.split, test_months=args.test_months, models=models
    )
    print(
        f"split {window['kind']}: train {window['train_start']}..{window['train_end']} "
        f"({window['train_rows']} rows), test {window['test_start']}..{window['test_end']} "
        f"({window['test_rows']} rows)"
    )
    print(markdown(table))
    if args.output:
        Path(args.output).write_text(
            json.dumps({"window": window, "models": table.to_dict(orient="records")}, indent=2, default=str),
            encoding="utf-8",
        )
    return 0


def add_model(subparsers: Any) -> None:
    """``model evaluate``: compare the model types on a split (no registry)."""
    model = subparsers.add_parser("model", help="offline model comparison")
    sub = model.add_subparsers(dest="command", required=True)
    evaluate = sub.add_parser("evaluate", help="train every model type on a split and print the test metrics")
    evaluate.add_argument("--source", required=True, help="CSV/Parquet in the Socrata schema")
    evaluate.add_argument("--stations", default="", help="police stations (default: next to --source)")
    evaluate.add_argument("--split", choices=("time", "random"), default="time")
    evaluate.add_argument("--test-months", type=int, default=1)
    evaluate.add_argument("--models", default="logreg,random_forest,xgboost")
    evaluate.add_argument("--output", default="", help="also write the results as JSON")
    evaluate.set_defaults(handler=_cmd_evaluate)


# ------------------------------------------------------------------------------------------------------------
# store
# ------------------------------------------------------------------------------------------------------------


def _cmd_ensure_buckets(args: argparse.Namespace) -> int:
    from chicago_arrest.settings import get_settings
    from chicago_arrest.store import S3Store, make_store

    settings = get_settings()
    if settings.store_backend != "s3":
        raise CommandError("ensure-buckets needs ARREST_STORE_BACKEND=s3 (and ARREST_S3_ENDPOINT and keys)")
    # Every name is checked (by S3Store) before the first bucket is created.
    stores = [make_store(settings, bucket=bucket) for bucket in args.buckets]
    for bucket, store in zip(args.buckets, stores, strict=True):
        assert isinstance(store, S3Store)
        created = store.ensure_bucket()
        print(f"bucket {bucket}: {'created' if created else 'exists'} at {store.endpoint_url}", flush=True)
    return 0


def add_store(subparsers: Any) -> None:
    """``store``: object store chores (the cluster's bucket Job runs ``ensure-buckets``)."""
    store = subparsers.add_parser("store", help="object store chores")
    sub = store.add_subparsers(dest="command", metavar="COMMAND", required=True)
    ensure = sub.add_parser("ensure-buckets", help="create missing buckets on the S3 API of ARREST_S3_*")
    ensure.add_argument("buckets", nargs="+", metavar="BUCKET")
    ensure.set_defaults(handler=_cmd_ensure_buckets)


GROUPS: dict[str, Callable[[Any], None]] = {"serving": add_serving, "model": add_model, "store": add_store}


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every group of :data:`GROUPS`."""
    parser = argparse.ArgumentParser(
        prog="chicago-arrest", description="Chicago arrest prediction: operations."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for register in GROUPS.values():
        register(groups)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Failures that are the user's or the environment's, reported as one line (imported lazily)."""
    errors: list[type[BaseException]] = [CommandError, FileNotFoundError, PermissionError]
    from chicago_arrest.serving_state import ServingStateError
    from chicago_arrest.store import StoreError

    errors += [ServingStateError, StoreError]
    if "chicago_arrest.k8s" in sys.modules:
        errors.append(sys.modules["chicago_arrest.k8s"].KubectlError)
    try:
        from mlflow.exceptions import MlflowException

        errors.append(MlflowException)
    except ImportError:  # pragma: no cover - mlflow is a dependency
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Exit code.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except Exception as exc:
        if isinstance(exc, _expected_errors()):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
