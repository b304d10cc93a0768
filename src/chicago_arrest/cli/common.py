"""What the command modules of ``chicago-arrest`` share: the expected errors and option helpers.

:mod:`chicago_arrest.cli` (the entry point) and :mod:`chicago_arrest.cli.pipeline` (the ``pipeline`` group)
both import this module; neither imports the other's commands back (``python -m chicago_arrest.cli`` runs
``cli`` as ``__main__``, so importing it again would build a second app).
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from chicago_arrest.core.errors import ArrestError


class CommandError(ArrestError):
    """An operation failed for a reason the user can act on (printed as one line, exit code 1)."""


def one_of(*choices: str) -> Callable[[str | None], str | None]:
    """An option callback that accepts only ``choices`` or nothing (a usage error otherwise)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


def model_list(text: str) -> list[str]:
    """The model types of a comma-separated list (a usage error if empty or unknown)."""
    from chicago_arrest.model.training import MODEL_TYPES

    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models or set(models) - set(MODEL_TYPES):
        raise typer.BadParameter(f"--models must list some of {', '.join(MODEL_TYPES)}; got {text!r}")
    return models
