"""The functions the KFP components call, by stage: file paths in, file paths out, a JSON-able summary back.

- :mod:`chicago_arrest.steps.data`: ingest, validate (the data contract), enrich (a report branch), split.
- :mod:`chicago_arrest.steps.training`: train one model type, evaluate the candidates.
- :mod:`chicago_arrest.steps.release`: register in MLflow, gate against the champion, deploy, the summary.

Every component in :mod:`chicago_arrest.components` is one call,
``run_step(step_function, artifact paths..., params...)``: :func:`run_step` sets up logging and turns expected
failures into one line and exit code 1. A step logs its one-line summary (:func:`log_summary`) and fills
the KFP metrics and artifact metadata it is handed (any object with ``log_metric`` and a plain ``dict``), so
everything here is plain Python, unit-tested without KFP, and runs the same under ``kfp.local``, on a cluster
and in ``chicago-arrest model evaluate`` (:mod:`chicago_arrest.steps.experiment`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import pandas as pd

from chicago_arrest.core.errors import expected_errors
from chicago_arrest.core.runtime import release_memory

log = logging.getLogger(__name__)

T = TypeVar("T")


class MetricsSink(Protocol):
    """What a step logs scalar metrics to (a KFP ``Output[Metrics]``)."""

    def log_metric(self, metric: str, value: float) -> None:
        """Record one scalar."""
        ...


def kfp_safe(value: Any) -> Any:
    """Make a summary safe for a KFP ``dict`` output (no ``None``, no numpy scalars)."""
    if isinstance(value, dict):
        return {str(k): kfp_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [kfp_safe(v) for v in value]
    if value is None:
        return ""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


#: How :func:`read_dataset` gives text columns: pandas strings (Python objects, the default), Arrow-backed
#: pandas strings (compact; what the data contract works on), or categoricals (Parquet's dictionary encoding).
TextAs = Literal["python", "arrow", "category"]


def read_dataset(
    path: str | Path, columns: Sequence[str] | None = None, *, text: TextAs = "python"
) -> pd.DataFrame:
    """Read a Dataset artifact written by a step (Parquet).

    A year of records (268,000 rows, 21 fields) is ~400 MB as Python strings, ~150 MB as Arrow-backed strings
    and 16 MB (the model's fields) as categoricals: the steps that only pass text on or map it read it compactly.

    Args:
        path: The Parquet file.
        columns: Only these columns (those the file lacks are left out); default: all.
        text: How text columns are given (:data:`TextAs`); the values are the same text either way.
    """
    frame = _read_parquet(path, columns, text)
    release_memory()  # the read's Arrow buffers, freed but kept by Arrow's pool
    return frame


def _read_parquet(path: str | Path, columns: Sequence[str] | None, text: TextAs) -> pd.DataFrame:
    if columns is None and text == "python":
        return pd.read_parquet(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    names = schema.names if columns is None else [c for c in columns if c in schema.names]
    kinds = {n: schema.field(n).type for n in names}
    strings = [n for n, t in kinds.items() if pa.types.is_string(t) or pa.types.is_large_string(t)]
    if text == "category":
        return pd.read_parquet(path, columns=names, read_dictionary=strings or None)
    table = pq.read_table(path, columns=names)
    if text == "python":
        return table.to_pandas()
    arrow = pd.StringDtype("pyarrow")
    return table.to_pandas(types_mapper={pa.string(): arrow, pa.large_string(): arrow}.get)


def write_dataset(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a Dataset artifact (Parquet, no index), creating the folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def log_metrics(sink: MetricsSink | None, values: dict[str, Any]) -> None:
    """Log every numeric (non-boolean) value of ``values`` to ``sink``, if there is one."""
    if sink is None:
        return
    for key, value in values.items():
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
            sink.log_metric(key, float(value))


#: How a step's one-line summary starts in its log; a local run's console shows the rest as the step's line
#: (:mod:`chicago_arrest.pipelines.progress`).
SUMMARY_PREFIX = "summary: "


def log_summary(text: str) -> None:
    """Log the step's one-line result for a person: its key figures (a local run's console line)."""
    log.info("%s%s", SUMMARY_PREFIX, text)


def _setup_logging() -> None:
    """Progress output for a step process (INFO to stderr, timestamps); idempotent.

    Under KFP the executor has already given the root logger a handler: only the level is set then, so that
    each line is printed once.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("urllib3", "alembic", "mlflow.store", "botocore", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_step(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one step in a component process: logging set up, expected failures as one line and exit 1.

    Expected failures are no network, a missing file, bad data, a release that cannot be done: without this
    KFP's executor prints a full stack trace for a user's mistake, such as running without internet access and
    without ``SOURCE``. Bugs keep their traceback.

    In a pod, a step marked :func:`~chicago_arrest.steps.retry.retry_safe` is called again after a transient
    network failure (:func:`~chicago_arrest.steps.retry.call_with_retries`): KFP 2.17.0's backend does not
    retry a step whose Python raised (see :mod:`chicago_arrest.steps.retry`).

    Args:
        fn: The step function.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What ``fn`` returns.

    Raises:
        SystemExit: With code 1 on an expected failure.
    """
    from chicago_arrest.steps.retry import RETRY_SAFE, call_with_retries, on_cluster

    _setup_logging()
    try:
        if getattr(fn, RETRY_SAFE, False) and on_cluster():
            return call_with_retries(fn, *args, **kwargs)
        return fn(*args, **kwargs)
    except expected_errors() as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
