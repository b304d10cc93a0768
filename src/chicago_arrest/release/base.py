"""The contract between the release operations and the two places traffic can be split.

A :class:`Traffic` backend reads and writes a :class:`~chicago_arrest.registry.state.Split` (which registry versions
serve and how requests are shared): :mod:`chicago_arrest.release.local` (the serving state that ``make serve``
watches) or :mod:`chicago_arrest.release.kserve` (the ``arrest-predictor`` InferenceService). The operations
themselves (deploy, canary, promote, rollback, status) are written once, in :mod:`chicago_arrest.release.ops`, on
top of a ``Traffic`` and the registry aliases (:class:`~chicago_arrest.registry.aliases.Aliases`).
"""

from __future__ import annotations

from typing import Any, Protocol

from chicago_arrest.registry.state import Split, Target


class Traffic(Protocol):
    """Where requests go. Implementations are idempotent: writing the split that is in force changes nothing."""

    #: ``local`` or ``cluster``.
    target: Target

    def read(self) -> Split | None:
        """The split in force, or ``None`` when nothing is served yet."""
        ...

    def write(self, split: Split) -> str:
        """Make ``split`` the split in force; return one line saying what was done."""
        ...

    def details(self) -> dict[str, Any]:
        """Backend facts for ``status`` (the state file's path, the InferenceService's revisions, ...)."""
        ...
