"""Expected failures: what a user can act on, reported as one line and exit code 1, never as a traceback.

Every such error of the project derives from :class:`ArrestError` (the store, ingest, Socrata, a target, a
release, Vertex, a command). :func:`expected_errors` is the one list that the command line and the pipeline
steps (:func:`chicago_arrest.steps.run_step`) catch; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys


class ArrestError(RuntimeError):
    """An operation failed for a reason the user can act on; the message says why and what to do."""


class IngestError(ArrestError):
    """Ingest cannot proceed (bad input file, stations missing, ...)."""


class ReleaseError(ArrestError):
    """A release operation that cannot be done or did not finish; the message says why and what to do."""


class VertexError(ArrestError):
    """A Vertex AI run cannot be prepared, submitted or checked (one line says why and what to do)."""


#: Built-in failures that mean a missing file, no permission, a bad value or something not found.
EXPECTED_BUILTINS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    PermissionError,
    ValueError,
    LookupError,
)


def expected_errors() -> tuple[type[BaseException], ...]:
    """:class:`ArrestError`, :data:`EXPECTED_BUILTINS` and, when MLflow is loaded, its ``MlflowException``."""
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    mlflow_error = getattr(mlflow_exceptions, "MlflowException", None)
    return (ArrestError, *EXPECTED_BUILTINS, *([mlflow_error] if mlflow_error else []))
