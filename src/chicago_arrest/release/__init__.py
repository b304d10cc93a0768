"""Releasing a model version: one set of operations (deploy, canary, promote, rollback, status) for every target.

* :mod:`~chicago_arrest.release.base`: the contract (:class:`Split`, the ``Traffic`` and ``Aliases`` protocols).
* :mod:`~chicago_arrest.release.ops`: :class:`Release`, written once; :func:`open_release` builds one.
* :mod:`~chicago_arrest.release.history`: the registry side: aliases, their history tags, version pins.
* :mod:`~chicago_arrest.release.state` and :mod:`~chicago_arrest.release.local`: the local serving state file
  that ``make serve`` watches.
* :mod:`~chicago_arrest.release.kserve`: the KServe InferenceService (imported only for ``cluster``).
"""

from chicago_arrest.release.base import ReleaseError, Split, Target, check_percent
from chicago_arrest.release.ops import MlflowAliases, Outcome, Release, format_status, open_release

__all__ = [
    "MlflowAliases",
    "Outcome",
    "Release",
    "ReleaseError",
    "Split",
    "Target",
    "check_percent",
    "format_status",
    "open_release",
]
