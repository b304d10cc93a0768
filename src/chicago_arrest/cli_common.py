"""What the command modules of ``chicago-arrest`` share: the expected errors and option helpers.

:mod:`chicago_arrest.cli` (the entry point) and :mod:`chicago_arrest.cli_pipeline` (the ``pipeline`` group)
both import this module; neither imports the other's commands back (``python -m chicago_arrest.cli`` runs
``cli`` as ``__main__``, so importing it again would build a second app).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

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


class CommandError(RuntimeError):
    """An operation failed for a reason the user can act on (printed as one line, exit code 1)."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """:class:`CommandError` and the loaded :data:`EXPECTED_ERRORS`."""
    loaded = [
        getattr(sys.modules[m], name)
        for m, names in EXPECTED_ERRORS.items()
        if m in sys.modules
        for name in names
    ]
    return (CommandError, *loaded)


def one_of(*choices: str) -> Callable[[str | None], str | None]:
    """An option callback that accepts only ``choices`` or nothing (a usage error otherwise)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


def model_list(text: str) -> list[str]:
    """The model types of a comma-separated list (a usage error if empty or unknown)."""
    from chicago_arrest.training import MODEL_TYPES

    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models or set(models) - set(MODEL_TYPES):
        raise typer.BadParameter(f"--models must list some of {', '.join(MODEL_TYPES)}; got {text!r}")
    return models
