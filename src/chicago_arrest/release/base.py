"""The contract between the release operations and the two places traffic can be split.

:class:`Split` says which registry versions serve and how requests are shared. A :class:`Traffic` backend reads
and writes it: :mod:`chicago_arrest.release.local` (the serving state that ``make serve`` watches) or
:mod:`chicago_arrest.release.kserve` (the ``arrest-predictor`` InferenceService). The operations themselves
(deploy, canary, promote, rollback, status) are written once, in :mod:`chicago_arrest.release.ops`, on top of a
``Traffic`` and the registry aliases (:class:`Aliases`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Target = Literal["local", "cluster"]


class ReleaseError(RuntimeError):
    """A release operation that cannot be done or did not finish; the message says why and what to do."""


def check_percent(percent: object) -> int:
    """Return ``percent`` if it is an integer in 0..100.

    Raises:
        ReleaseError: Otherwise, naming the value.
    """
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ReleaseError(f"canary percent must be an integer in 0..100, got {percent!r}")
    return percent


@dataclass(frozen=True)
class Split:
    """Who serves: the champion gets ``100 - canary_percent`` %, the challenger ``canary_percent`` %.

    Attributes:
        champion: Registry version of the champion (``"3"``).
        challenger: Registry version of the challenger, or ``None``.
        canary_percent: 0..100; 0 when there is no challenger.
    """

    champion: str
    challenger: str | None = None
    canary_percent: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "champion", str(self.champion).strip())
        if not self.champion:
            raise ReleaseError("champion version is empty")
        challenger = None if self.challenger is None else str(self.challenger).strip() or None
        if challenger == self.champion:
            challenger = None
        object.__setattr__(self, "challenger", challenger)
        percent = check_percent(self.canary_percent)
        if challenger is None and percent:
            raise ReleaseError(f"a canary of {percent} % needs a challenger")

    def describe(self) -> str:
        """One line for humans: ``champion 3 (90%), challenger 4 (10%)``."""
        champion = f"champion {self.champion} ({100 - self.canary_percent}%)"
        if self.challenger is None:
            return champion
        return f"{champion}, challenger {self.challenger} ({self.canary_percent}%)"


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


class Aliases(Protocol):
    """The registry: the ``champion`` / ``challenger`` aliases and the tags that record the release history.

    Primitive reads and writes only (MLflow in production, dicts in tests); what to write when is decided once,
    in :mod:`chicago_arrest.release.ops`.
    """

    def get(self, alias: str) -> str | None:
        """The version an alias names, or ``None``."""
        ...

    def set(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        ...

    def delete(self, alias: str) -> None:
        """Remove ``alias`` (nothing happens when it is not set)."""
        ...

    def version_tags(self, version: str) -> dict[str, str] | None:
        """The tags of a version, or ``None`` when the version does not exist."""
        ...

    def tag_version(self, version: str, tags: dict[str, str | None]) -> None:
        """Set the tags of a version (``None`` removes a tag)."""
        ...

    def model_tags(self) -> dict[str, str]:
        """The tags of the registered model (empty when it does not exist)."""
        ...

    def tag_model(self, tags: dict[str, str]) -> None:
        """Set tags of the registered model."""
        ...

    def where(self) -> str:
        """Where the registry is (the tracking URI), for messages."""
        ...
