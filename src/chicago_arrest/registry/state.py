"""The LOCAL serving state file: which models ``make serve`` serves and how requests are split.

One small JSON file at :attr:`Settings.serving_config_path <chicago_arrest.core.settings.Settings.serving_config_path>`
(``<data_dir>/serving/serving.json``)::

    {"champion": {"version": "3", "uri": "models:/chicago-crime-arrest-predictor/3"},
     "challenger": {"version": "4", "uri": "models:/chicago-crime-arrest-predictor/4"},
     "canary_percent": 10,
     "updated_at": "2026-11-23T14:05:00+00:00"}

The release operations write it through :class:`chicago_arrest.release.local.LocalTraffic`; the model server
(``arrest_server``) only reads it and swaps models when it changes. Writes are atomic (temporary file +
:func:`os.replace`), so a reader never sees half a file; read-modify-write cycles hold :func:`state_lock`
(``serving.json.lock``) so two writers cannot lose each other's change.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.files import write_atomically
from chicago_arrest.core.names import MODEL_NAME

#: Where a split is in force: the local serving state, or the InferenceService of the cluster.
Target = Literal["local", "cluster"]


def check_percent(percent: object) -> int:
    """Return ``percent`` if it is an integer in 0..100.

    Raises:
        ReleaseError: Otherwise, naming the value.
    """
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ReleaseError(f"canary percent must be an integer in 0..100, got {percent!r}")
    return percent


@dataclasses.dataclass(frozen=True)
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@pydantic_dataclass(frozen=True, config=ConfigDict(coerce_numbers_to_str=True, str_strip_whitespace=True))
class ModelRef:
    """One served model.

    Attributes:
        version: Registry version (``"3"``), or any label for a model that is not in the registry.
        uri: What the server loads: ``models:/<name>/<version>`` or a local MLflow model folder.
    """

    version: str = Field(min_length=1)
    uri: str = Field(min_length=1)

    @classmethod
    def registered(cls, version: str | int, name: str = MODEL_NAME) -> ModelRef:
        """The reference of a registry version (``models:/<name>/<version>``)."""
        return cls(str(version).strip(), f"models:/{name}/{str(version).strip()}")


class ServingState(BaseModel):
    """What the local server serves.

    Attributes:
        champion: Serves ``100 - canary_percent`` % of requests.
        challenger: Serves ``canary_percent`` % of requests (``None``: no canary).
        canary_percent: 0..100; must be 0 without a challenger.
        updated_at: ISO-8601 UTC time of the last change.
    """

    model_config = ConfigDict(frozen=True)

    champion: ModelRef
    challenger: ModelRef | None = None
    canary_percent: int = 0
    updated_at: str = Field(default_factory=_now)

    @field_validator("canary_percent", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> int:
        try:
            return check_percent(value)
        except ReleaseError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _canary_needs_challenger(self) -> ServingState:
        if self.challenger is None and self.canary_percent:
            raise ValueError(f"canary_percent is {self.canary_percent} but there is no challenger")
        return self

    @classmethod
    def from_split(cls, split: Split, name: str = MODEL_NAME) -> ServingState:
        """The state that serves ``split`` (registry versions as ``models:/`` URIs)."""
        challenger = ModelRef.registered(split.challenger, name) if split.challenger else None
        return cls(
            champion=ModelRef.registered(split.champion, name),
            challenger=challenger,
            canary_percent=split.canary_percent,
        )

    def split(self) -> Split:
        """The versions and the share of the challenger."""
        challenger = self.challenger.version if self.challenger else None
        return Split(self.champion.version, challenger, self.canary_percent)


def load_state(path: Path) -> ServingState:
    """Read the serving state.

    Raises:
        FileNotFoundError: When the file does not exist.
        ReleaseError: When it is not a valid serving state (the message names the file and the field).
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        return ServingState.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}" for err in exc.errors()
        )
        raise ReleaseError(f"{path} is not a valid serving state: {problems}") from None


def save_state(state: ServingState, path: Path) -> None:
    """Write the serving state atomically (temporary file in the same folder, fsync, :func:`os.replace`)."""
    write_atomically(Path(path), (state.model_dump_json(indent=2) + "\n").encode("utf-8"))


def state_lock(path: Path) -> FileLock:
    """The lock of read-modify-write cycles of ``path`` (``<path>.lock``; re-entrant in one thread)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.with_name(path.name + ".lock"))
