"""What the command modules of ``chicago-arrest`` share: the expected errors, option helpers and where pipelines run.

:mod:`chicago_arrest.cli` (the entry point), :mod:`chicago_arrest.cli.pipeline` (the ``pipeline`` group) and
:mod:`chicago_arrest.cli.loop` (its ``batch-score`` and ``monitor``) import this module; none imports the entry
point's commands back (``python -m chicago_arrest.cli`` runs
``cli`` as ``__main__``, so importing it again would build a second app).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Annotated, Any

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


KfpHostOption = Annotated[
    str,
    typer.Option(envvar="KFP_HOST", help="KFP API/UI URL [default: the one `make kind-up` recorded, if any]"),
]
PipelineTargetOption = Annotated[
    str | None,
    typer.Option(
        "--target",
        callback=one_of("local", "cluster", "vertex"),
        metavar="[local|cluster|vertex]",
        help="where to run [default: cluster if KFP_HOST is set or `make kind-up` recorded one, else local]",
    ),
]


def pipelines(module: str) -> Any:
    """``chicago_arrest.pipelines.<module>``, imported when a command needs it (kfp is slow to import)."""
    return importlib.import_module(f"chicago_arrest.pipelines.{module}")


def cluster_profile(resolved: Any) -> str | None:
    """The cluster profile `make kind-up` recorded (``small`` on a hosted runner), for the train tasks' requests."""
    record = resolved.cluster_record
    return record.cluster_profile if record else None


def step_image(resolved: Any) -> str | None:
    """The image of the steps on a cluster: ``IMAGE=`` (``ARREST_IMAGE``), else the one `make kind-up` loaded."""
    record = resolved.cluster_record
    return os.environ.get("ARREST_IMAGE") or (record.image if record else None)
