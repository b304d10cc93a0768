"""Traffic of ``make serve``: the local serving state file (:mod:`chicago_arrest.registry.state`).

A running server watches the file and applies a change within about a second, without dropping a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filelock import FileLock

from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.names import MODEL_NAME
from chicago_arrest.registry.state import (
    ModelRef,
    ServingState,
    Split,
    Target,
    load_state,
    save_state,
    state_lock,
)


class LocalTraffic:
    """The :class:`~chicago_arrest.release.base.Traffic` of the local server.

    Args:
        path: The serving state file (``Settings().serving_config_path``).
        name: Registered model name of the ``models:/`` URIs written.
    """

    target: Target = "local"

    def __init__(self, path: Path, name: str = MODEL_NAME) -> None:
        self.path = Path(path)
        self.name = name
        self._lock: FileLock | None = None

    def exclusive(self) -> FileLock:
        """The file lock; :class:`~chicago_arrest.release.ops.Release` holds it for a whole operation."""
        if self._lock is None:
            self._lock = state_lock(self.path)
        return self._lock

    def read(self) -> Split | None:
        """The split in the file, or ``None`` when there is no file yet.

        Raises:
            ReleaseError: When the file is not a valid serving state.
        """
        try:
            return load_state(self.path).split()
        except FileNotFoundError:
            return None

    def write(self, split: Split) -> str:
        """Write ``split`` (nothing is written when it is already in force)."""
        with self.exclusive():
            try:
                current: ServingState | None = load_state(self.path)
            except (FileNotFoundError, ReleaseError):
                current = None
            if current is not None and current.split() == split:
                return f"local serving: unchanged, {split.describe()}"
            known = (
                {ref.version: ref for ref in (current.champion, current.challenger) if ref} if current else {}
            )

            def ref(version: str) -> ModelRef:
                return known.get(version) or ModelRef.registered(version, self.name)

            state = ServingState(
                champion=ref(split.champion),
                challenger=ref(split.challenger) if split.challenger else None,
                canary_percent=split.canary_percent,
            )
            save_state(state, self.path)
        return f"local serving: {split.describe()}"

    def details(self) -> dict[str, Any]:
        """The file's path, what the server loads for each role, and a note when it is missing or invalid."""
        details: dict[str, Any] = {"path": str(self.path)}
        try:
            state = load_state(self.path)
            details["champion_uri"] = state.champion.uri
            if state.challenger is not None:
                details["challenger_uri"] = state.challenger.uri
        except FileNotFoundError:
            details["notes"] = [
                f"no serving state yet at {self.path}: `make serve` serves the registry aliases; "
                "the next deploy, canary, promote or rollback writes it"
            ]
        except ReleaseError as exc:
            details["notes"] = [str(exc)]
        return details
