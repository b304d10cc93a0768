"""Run ``chicago-arrest-training``: locally with ``kfp.local`` (default) or on a KFP cluster (``KFP_HOST``).

Locally every step runs as a subprocess of this Python (``SubprocessRunner(use_venv=False)``), MLflow uses a
SQLite store under the data directory, and the deploy step updates the local serving state that
``make serve`` reads. With ``KFP_HOST`` set, a new pipeline version is uploaded and a run started.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from chicago_arrest.runtime import OMP_WAIT_POLICY, available_cpus
from chicago_arrest.settings import get_settings
from pipelines.training import PIPELINE_NAME

EXPERIMENT = "chicago-arrest"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the pipeline parameters)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--source", default="", help="local CSV/Parquet in the Socrata schema (default: Socrata API)"
    )
    p.add_argument("--stations", default="", help="local police stations file (default: next to --source)")
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--refresh-months", type=int, default=1)
    p.add_argument("--split", choices=["time", "random"], default="time")
    p.add_argument("--test-months", type=int, default=1)
    p.add_argument("--models", default="logreg,random_forest,xgboost", help="comma-separated model types")
    p.add_argument("--mi-threshold", type=float, default=0.001)
    p.add_argument("--calibration", choices=["sigmoid", "isotonic"], default="sigmoid")
    p.add_argument("--search-budget-s", type=float, default=0.0)
    p.add_argument("--promotion-margin", type=float, default=0.002)
    p.add_argument("--max-ece", type=float, default=0.05)
    p.add_argument("--canary-percent", type=int, default=10)
    p.add_argument("--deploy-target", choices=["auto", "local", "cluster", "none"], default="auto")
    p.add_argument("--kfp-host", default=os.environ.get("KFP_HOST", ""), help="KFP API/UI URL (env KFP_HOST)")
    return p.parse_args(argv)


def pipeline_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Map CLI options to pipeline parameters (validated)."""
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    from chicago_arrest.training import MODEL_TYPES

    unknown = [m for m in models if m not in MODEL_TYPES]
    if not models or unknown:
        raise SystemExit(f"--models must list some of {', '.join(MODEL_TYPES)}; got {args.models!r}")
    if not 0 <= args.canary_percent <= 100:
        raise SystemExit(f"--canary-percent must be in 0..100, got {args.canary_percent}")
    source = args.source
    if source and not args.kfp_host:
        path = Path(source).expanduser()
        if not path.is_file():
            raise SystemExit(f"SOURCE file not found: {source}")
        source = str(path.resolve())
    stations = (
        str(Path(args.stations).expanduser().resolve())
        if args.stations and not args.kfp_host
        else args.stations
    )
    return {
        "source": source,
        "stations_source": stations,
        "months": args.months,
        "refresh_months": args.refresh_months,
        "split_kind": args.split,
        "test_months": args.test_months,
        "models": models,
        "mi_threshold": args.mi_threshold,
        "calibration": args.calibration,
        "search_budget_s": args.search_budget_s,
        "promotion_margin": args.promotion_margin,
        "max_ece": args.max_ece,
        "canary_percent": args.canary_percent,
        "deploy_target": args.deploy_target,
    }


def latest_run_dir(root: Path, after: float) -> Path | None:
    """The newest ``<pipeline>-<timestamp>`` folder kfp.local created under ``root`` since ``after``."""
    runs = [p for p in root.glob(f"{PIPELINE_NAME}-*") if p.is_dir() and p.stat().st_mtime >= after - 1]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def run_local(arguments: dict[str, Any]) -> Path:
    """Run the whole pipeline with kfp.local; return the run's output folder."""
    from kfp import local

    from pipelines.training import training_pipeline

    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    os.environ["ARREST_DATA_DIR"] = str(data_dir)  # steps are subprocesses: give them absolute paths
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    # kfp.local runs the train tasks side by side: share the cores instead of oversubscribing them.
    cpus = available_cpus()
    os.environ.setdefault("ARREST_CPUS", str(max(1, cpus // min(len(arguments["models"]), cpus))))
    root = data_dir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    if arguments["deploy_target"] == "auto":
        arguments = {**arguments, "deploy_target": "local"}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    started = time.time()
    print(f"running {PIPELINE_NAME} locally (kfp.local) with {json.dumps(arguments)}", flush=True)
    training_pipeline(**arguments)
    run_dir = latest_run_dir(root, started)
    if run_dir is None:
        raise RuntimeError(f"kfp.local finished but no run folder appeared under {root}")
    print_local_summary(run_dir, time.time() - started)
    return run_dir


def print_local_summary(run_dir: Path, seconds: float) -> None:
    """Print where the artifacts, MLflow runs and registered model are, and the champion's metrics."""
    from chicago_arrest.registry import CHALLENGER, CHAMPION, MODEL_NAME, alias_version, configure_mlflow

    settings = get_settings()
    client = configure_mlflow(settings)
    summary = run_dir / "deploy" / "summary"
    print("\n" + "=" * 100)
    if summary.is_file():
        print(summary.read_text(encoding="utf-8"))
    champion = alias_version(client, CHAMPION)
    print(f"pipeline finished in {seconds:.0f} s")
    print(f"  artifacts        {run_dir}")
    print(f"  training report  {run_dir / 'evaluate' / 'report'}")
    print(f"  MLflow           {settings.resolved_tracking_uri()}  (mlflow ui --backend-store-uri <that>)")
    print(
        f"  registered model {MODEL_NAME}: champion v{champion}, challenger v{alias_version(client, CHALLENGER)}"
    )
    if champion:
        mv = client.get_model_version(MODEL_NAME, champion)
        keys = ("test_roc_auc", "test_pr_auc", "test_ece", "test_brier", "test_no_ab_roc_auc")
        print("  champion metrics " + ", ".join(f"{k}={mv.tags[k]}" for k in keys if k in mv.tags))
    print(f"  serving state    {settings.serving_config_path}  (make serve)")
    print("=" * 100)


def latest_version_id(client: Any, pipeline_id: str) -> str:
    """Id of the newest version of a KFP pipeline."""
    page = client.list_pipeline_versions(pipeline_id=pipeline_id, sort_by="created_at desc", page_size=1)
    if not page.pipeline_versions:
        raise LookupError(f"pipeline {PIPELINE_NAME!r} ({pipeline_id}) has no versions")
    return str(page.pipeline_versions[0].pipeline_version_id)


def run_cluster(arguments: dict[str, Any], host: str, client: Any = None) -> str:
    """Upload a new pipeline version to KFP at ``host``, start a run, and return its UI address."""
    import kfp

    from pipelines.compile import compile_training

    path = compile_training()
    client = client or kfp.Client(host=host)
    version_name = f"{PIPELINE_NAME}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    pipeline_id = client.get_pipeline_id(PIPELINE_NAME)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(path), pipeline_name=PIPELINE_NAME).pipeline_id
        version_id = latest_version_id(client, pipeline_id)
    else:
        version = client.upload_pipeline_version(
            str(path), pipeline_version_name=version_name, pipeline_id=pipeline_id
        )
        version_id = version.pipeline_version_id
    experiment = client.create_experiment(EXPERIMENT)
    run = client.run_pipeline(
        experiment_id=experiment.experiment_id,
        job_name=version_name,
        pipeline_id=pipeline_id,
        version_id=version_id,
        params=arguments,
        enable_caching=False,
    )
    url = f"{host.rstrip('/')}/#/runs/details/{run.run_id}"
    print(f"started run {run.run_id} of {PIPELINE_NAME} (version {version_name}): {url}")
    return url


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failure_message(exc: BaseException, arguments: dict[str, Any]) -> str:
    """One readable line (plus a hint) for a failed local run; the failing step's log is printed above it."""
    text = _ANSI.sub("", str(exc)).strip()
    lines = [
        f"error: {text}" if text else f"error: {type(exc).__name__}",
        "       (the failing step's own error is in its log above)",
    ]
    if "'ingest'" in text and not arguments.get("source"):
        lines.append(
            "hint: without SOURCE the ingest step fetches from the Socrata API (data.cityofchicago.org); offline, "
            "run `make pipeline-run SOURCE=path/to/crimes.csv` with a file in the Socrata schema"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (``make pipeline-run``)."""
    args = parse_args(argv)
    arguments = pipeline_arguments(args)
    if args.kfp_host:
        if arguments["source"]:
            print("note: on a cluster SOURCE must be a path readable inside the step's pod", file=sys.stderr)
        run_cluster(arguments, args.kfp_host)
        return 0
    try:
        run_local(arguments)
    except RuntimeError as exc:  # kfp.local reports a failed task as RuntimeError after streaming its log
        print(failure_message(exc, arguments), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
