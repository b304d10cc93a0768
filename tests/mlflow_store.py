"""MLflow's process-wide state (tracking URI, its environment variable, the active experiment), restored.

``mlflow.set_tracking_uri`` writes ``MLFLOW_TRACKING_URI`` into ``os.environ`` and ``mlflow.set_experiment``
remembers an experiment id; both outlive the test that set them, so a later test (or a child process it
starts) would talk to another test's store. Module-scoped fixtures run before the per-test restore of
``tests/conftest.py``, so they use :func:`tracking_store` themselves.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _globals() -> tuple[object, object]:
    if "mlflow" not in sys.modules:
        return None, None
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils

    return utils._tracking_uri, fluent._active_experiment_id


@contextmanager
def mlflow_state_restored() -> Iterator[None]:
    """Restore the tracking URI (module global and environment) and the active experiment on exit."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    uri, experiment = _globals()
    try:
        yield
    finally:
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env
        if "mlflow" in sys.modules:
            from mlflow.tracking import fluent
            from mlflow.tracking._tracking_service import utils

            utils._tracking_uri = uri
            fluent._active_experiment_id = experiment


@contextmanager
def tracking_store(folder: Path, experiment: str = "tests") -> Iterator[str]:
    """Use a SQLite MLflow store in ``folder`` (and an experiment of its own) inside the block."""
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with mlflow_state_restored():
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(experiment)
        yield uri
