"""Run the training pipeline (``chicago-arrest pipeline run``): locally with ``kfp.local``, or on KFP.

Locally every step runs as a subprocess of this Python (``SubprocessRunner(use_venv=False)``), MLflow uses a
SQLite store under the data directory, and the deploy step updates the local serving state that
``make serve`` reads. The console shows one line per step (:class:`chicago_arrest.pipelines.progress.LocalRun`), every
step's full log is in ``<run folder>/logs/``, and ``verbose`` streams it all. With ``KFP_HOST`` set, a new
pipeline version is uploaded and a run started.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chicago_arrest.core import kfp_api
from chicago_arrest.core.names import CHALLENGER, CHAMPION, MODEL_NAME
from chicago_arrest.core.names import TRAINING_PIPELINE as PIPELINE_NAME
from chicago_arrest.core.runtime import OMP_WAIT_POLICY, available_cpus
from chicago_arrest.core.settings import get_settings


def latest_run_dir(root: Path, after: float) -> Path | None:
    """The newest ``<pipeline>-<timestamp>`` folder kfp.local created under ``root`` since ``after``."""
    runs = [p for p in root.glob(f"{PIPELINE_NAME}-*") if p.is_dir() and p.stat().st_mtime >= after - 1]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


class StepFailedError(RuntimeError):
    """A step of a local run failed: which one, its error line and its log file."""

    def __init__(self, label: str, error: str, log: Path) -> None:
        super().__init__(f"step {label!r} failed: {error}")
        self.label, self.error, self.log = label, error, log


def run_local(arguments: dict[str, Any], *, verbose: bool = False) -> Path:
    """Run the whole pipeline with kfp.local; return the run's output folder.

    Quiet by default (:class:`chicago_arrest.pipelines.progress.LocalRun`: one line per step, every step's log in
    ``<run>/logs/``); ``verbose`` streams every step's output as kfp.local does.

    Raises:
        StepFailedError: When a step fails (its error line and log file).
    """
    from chicago_arrest.pipelines.training import training_pipeline

    # kfp.local runs the train tasks side by side: share the cores instead of oversubscribing them. Only the
    # train tasks: every other step runs alone and uses every core.
    cpus = available_cpus()
    os.environ.setdefault("ARREST_TRAIN_CPUS", str(max(1, cpus // min(len(arguments["models"]), cpus))))
    if arguments["deploy_target"] == "auto":
        arguments = {**arguments, "deploy_target": "local"}
    started = time.time()
    run_dir = run_local_pipeline(training_pipeline, PIPELINE_NAME, arguments, verbose=verbose)
    print_local_summary(run_dir, time.time() - started)
    return run_dir


def print_local_summary(run_dir: Path, seconds: float) -> None:
    """Print where the artifacts, MLflow runs and registered model are, and the champion's metrics."""
    from chicago_arrest.registry.models import alias_version, configure_mlflow

    settings = get_settings()
    client = configure_mlflow(settings)
    summary = run_dir / "deploy" / "summary"
    print("\n" + "=" * 100)
    if summary.is_file():
        print(summary.read_text(encoding="utf-8"))
    champion = alias_version(client, CHAMPION)
    print(f"pipeline finished in {seconds:.0f} s")
    print(f"  artifacts        {run_dir}")
    print(f"  step logs        {run_dir / 'logs'}")
    print(f"  training report  {run_dir / 'evaluate' / 'report.html'}  (make report)")
    print(f"  MLflow           {settings.resolved_tracking_uri()}  (make mlflow-ui)")
    challenger = alias_version(client, CHALLENGER)
    print(
        f"  registered model {MODEL_NAME}: champion v{champion}, "
        f"challenger {'v' + challenger if challenger else '- (none under canary)'}"
    )
    if champion:
        description = client.get_model_version(MODEL_NAME, champion).description or ""
        for line in description.splitlines():
            print(f"  champion         {line}")
    print(f"  serving state    {settings.serving_config_path}  (make serve)")
    print("=" * 100)


def run_cluster(
    arguments: dict[str, Any],
    host: str,
    client: Any = None,
    image: str | None = None,
    profile: str | None = None,
) -> str:
    """Upload a new pipeline version to KFP at ``host``, start a run, and return its UI address.

    The pipeline is compiled into a temporary folder (the committed YAML is left alone), with ``image`` as
    every step's image when given and the train tasks' requests of cluster ``profile`` (``small``: a hosted runner).
    """
    from chicago_arrest.pipelines.compile import compile_training

    return run_cluster_pipeline(compile_training, PIPELINE_NAME, arguments, host, client, image, profile)


def run_vertex(
    arguments: dict[str, Any],
    *,
    project: str,
    region: str,
    bucket: str,
    image: str = "",
    service_account: str = "",
    aiplatform: Any = None,
) -> Any:
    """Submit the committed ``chicago-arrest-vertex-training`` YAML to Vertex AI Pipelines (issue 17).

    See :func:`chicago_arrest.pipelines.vertex_submit.submit`: the ``vertex`` extra and Application Default
    Credentials are checked first (one line each when missing); ``service_account`` is the run's identity.
    """
    from chicago_arrest.core.names import VERTEX_PIPELINE
    from chicago_arrest.pipelines.compile import COMPILED_DIR
    from chicago_arrest.pipelines.vertex_submit import submit

    template = COMPILED_DIR / f"{VERTEX_PIPELINE}.yaml"
    return submit(
        arguments,
        project=project,
        region=region,
        bucket=bucket,
        template=template,
        image=image,
        service_account=service_account,
        aiplatform=aiplatform,
    )


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failure_message(exc: BaseException, arguments: dict[str, Any]) -> str:
    """One line for a failed local run: the failing step, its error and its log file (plus a hint)."""
    text = _ANSI.sub("", str(exc)).strip()
    if isinstance(exc, StepFailedError):
        lines = [f"error: step {exc.label!r} failed: {exc.error} (log: {exc.log})"]
    else:
        lines = [f"error: {text}" if text else f"error: {type(exc).__name__}"]
    if "'ingest'" in text and not arguments.get("source"):
        lines.append(
            "hint: without SOURCE the ingest step fetches from the Socrata API (data.cityofchicago.org); offline, "
            "run `make pipeline-run SOURCE=path/to/crimes.csv` with a file in the Socrata schema"
        )
    return "\n".join(lines)


# --- Other pipelines (issue 13: chicago-arrest-batch-scoring, chicago-arrest-monitoring) ----------------------


@contextlib.contextmanager
def without_retries(pipeline: Any) -> Iterator[None]:
    """Run ``pipeline`` (a compiled ``@dsl.pipeline``) without its tasks' retry policies, then restore them.

    ``kfp.local`` honours ``set_retry`` for every failure (``kfp/local/orchestrator/task_executor.py`` @ kfp
    2.17.0); a local failure is a deterministic one or a Socrata one its client already retried, so a local run
    fails at once instead (:mod:`chicago_arrest.steps.retry`). The cluster's compiled YAML keeps the policies.
    """
    spec = pipeline.component_spec.implementation.graph
    saved = type(spec)()
    saved.CopyFrom(spec)
    dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
    for dag in dags:
        for task in dag.tasks.values():
            task.ClearField("retry_policy")
    try:
        yield
    finally:
        spec.CopyFrom(saved)


def run_local_pipeline(pipeline: Any, name: str, arguments: dict[str, Any], *, verbose: bool = False) -> Path:
    """Run a one-off pipeline with kfp.local and the quiet progress reporter; return the run's folder.

    The local run of every pipeline (:func:`run_local` adds the training pipeline's settings and summary): one
    line per step, logs in ``<run>/logs/``.

    Raises:
        StepFailedError: When a step fails (its error line and log file).
    """
    from kfp import local

    from chicago_arrest.pipelines.progress import LocalRun

    data_dir = get_settings().data_dir.resolve()
    os.environ["ARREST_DATA_DIR"] = str(data_dir)  # steps are subprocesses: give them absolute paths
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    root = data_dir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    started = time.time()
    reporter = LocalRun(root, verbose=verbose)
    reporter.header(name, "local", arguments)
    try:
        with reporter.capture(), without_retries(pipeline):
            pipeline(**arguments)
    except RuntimeError as exc:
        failed = reporter.failed
        if failed is None:
            where = f" (kfp.local's log: {reporter.kfp_log})" if reporter.kfp_log else ""
            raise RuntimeError(f"{exc}{where}") from exc
        raise StepFailedError(failed.label, failed.error, failed.log) from None
    run_dir = reporter.run_dir or latest_run_dir(root, started)
    if run_dir is None:
        raise RuntimeError(f"kfp.local finished but no run folder appeared under {root}")
    return run_dir


def step_output(run_dir: Path, task: str) -> dict[str, Any]:
    """The return value (``Output``) of a finished task of a local run."""
    try:
        output = json.loads((run_dir / task / "executor_output.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict((output.get("parameterValues") or {}).get("Output") or {})


def run_cluster_pipeline(
    compile_fn: Any,
    name: str,
    arguments: dict[str, Any],
    host: str,
    client: Any = None,
    image: str | None = None,
    profile: str | None = None,
) -> str:
    """Upload a new version of a pipeline (compiled by ``compile_fn``) to KFP, start a run, return its URL."""
    import tempfile

    client = client or kfp_api.client(host)
    version_name = f"{name}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    with tempfile.TemporaryDirectory(prefix="chicago-arrest-compiled-") as tmp:
        ids = kfp_api.pipeline_version(
            client,
            name,
            lambda: compile_fn(Path(tmp), image=image, profile=profile),
            new_version=version_name,
        )
    run_id = kfp_api.start_run(client, version_name, ids, arguments)
    url = f"{host.rstrip('/')}/#/runs/details/{run_id}"
    print(f"started run {run_id} of {name} (version {version_name}): {url}")
    return url
