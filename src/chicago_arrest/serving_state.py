"""The LOCAL serving configuration: which registry versions ``make serve`` serves and how traffic is split.

One small JSON file at :attr:`Settings.serving_config_path <chicago_arrest.settings.Settings.serving_config_path>`
(``<data_dir>/serving/serving.json``)::

    {"champion": {"version": "3", "uri": "models:/chicago-crime-arrest-predictor/3"},
     "challenger": {"version": "4", "uri": "models:/chicago-crime-arrest-predictor/4"},
     "canary_percent": 10,
     "updated_at": "2026-11-23T14:05:00+00:00"}

The pipeline's deploy step writes it with :func:`deploy_local`; ``make canary|promote|rollback`` change it with
:func:`set_canary`, :func:`promote` and :func:`rollback`; the running server (``arrest_server``) watches it and
swaps models without dropping a request. Writes are atomic (temporary file + :func:`os.replace`), so a reader
never sees half a file, and read-modify-write cycles hold an advisory lock (``serving.json.lock``) so two
writers cannot lose each other's change. The same verbs exist for the cluster in :mod:`chicago_arrest.k8s`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chicago_arrest.settings import Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

#: Registered model name (the same as :data:`chicago_arrest.registry.MODEL_NAME`, without importing MLflow).
MODEL_NAME = "chicago-crime-arrest-predictor"


class ServingStateError(RuntimeError):
    """A serving change that cannot be made; the message says why and what to do."""


class NoChampionError(ServingStateError):
    """There is no champion to serve (no serving state and no ``champion`` alias in the registry)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelRef:
    """One served model.

    Attributes:
        version: Registry version (``"3"``), or any label for a model that is not in the registry.
        uri: What :func:`chicago_arrest.registry.load_arrest_model` loads: ``models:/<name>/<version>`` or a
            local MLflow model folder.
    """

    version: str
    uri: str

    def __post_init__(self) -> None:
        if not str(self.version).strip():
            raise ValueError("model version is empty")
        if not str(self.uri).strip():
            raise ValueError("model uri is empty")
        object.__setattr__(self, "version", str(self.version).strip())
        object.__setattr__(self, "uri", str(self.uri).strip())

    @classmethod
    def registered(cls, version: str | int, name: str = MODEL_NAME) -> ModelRef:
        """The reference of a registry version (``models:/<name>/<version>``)."""
        return cls(str(version), f"models:/{name}/{str(version).strip()}")

    def to_dict(self) -> dict[str, str]:
        """Plain dict."""
        return {"version": self.version, "uri": self.uri}

    @classmethod
    def from_dict(cls, data: Any, what: str) -> ModelRef:
        """Parse ``{"version": ..., "uri": ...}``.

        Raises:
            ServingStateError: When the object is malformed.
        """
        if not isinstance(data, dict) or "version" not in data or "uri" not in data:
            raise ServingStateError(f"{what} must be an object with 'version' and 'uri', got {data!r}")
        try:
            return cls(str(data["version"]), str(data["uri"]))
        except ValueError as exc:
            raise ServingStateError(f"{what}: {exc}") from exc


def _check_percent(percent: object) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ServingStateError(f"canary percent must be an integer in 0..100, got {percent!r}")
    return percent


@dataclass(frozen=True)
class ServingState:
    """What the local server serves.

    Attributes:
        champion: Serves ``100 - canary_percent`` % of requests.
        challenger: Serves ``canary_percent`` % of requests (``None``: no canary).
        canary_percent: 0..100; must be 0 without a challenger.
        updated_at: ISO-8601 UTC time of the last change.
    """

    champion: ModelRef
    challenger: ModelRef | None = None
    canary_percent: int = 0
    updated_at: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        _check_percent(self.canary_percent)
        if self.challenger is None and self.canary_percent:
            raise ServingStateError(f"canary_percent is {self.canary_percent} but there is no challenger")

    def changed(self, **changes: Any) -> ServingState:
        """A copy with ``changes`` applied and a fresh ``updated_at``."""
        return replace(self, **changes, updated_at=_now())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict() if self.challenger else None,
            "canary_percent": self.canary_percent,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ServingState:
        """Parse the JSON document.

        Raises:
            ServingStateError: When it is malformed.
        """
        if not isinstance(data, dict):
            raise ServingStateError(f"serving state must be a JSON object, got {type(data).__name__}")
        if data.get("champion") is None:
            raise ServingStateError("serving state has no champion")
        champion = ModelRef.from_dict(data["champion"], "champion")
        raw_challenger = data.get("challenger")
        challenger = None if raw_challenger is None else ModelRef.from_dict(raw_challenger, "challenger")
        return cls(
            champion=champion,
            challenger=challenger,
            canary_percent=_check_percent(data.get("canary_percent", 0)),
            updated_at=str(data.get("updated_at") or _now()),
        )


# ------------------------------------------------------------------------------------------------------------
# File I/O
# ------------------------------------------------------------------------------------------------------------


def state_path(settings: Settings | None = None) -> Path:
    """Where the serving state lives for these settings."""
    return (settings or Settings()).serving_config_path


def load_state(path: Path) -> ServingState:
    """Read the serving state.

    Args:
        path: The JSON file.

    Returns:
        The state.

    Raises:
        FileNotFoundError: When the file does not exist.
        ServingStateError: When it is not a valid serving state.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServingStateError(f"{path} is not valid JSON: {exc}") from exc
    try:
        return ServingState.from_dict(data)
    except ServingStateError as exc:
        raise ServingStateError(f"{path}: {exc}") from exc


def save_state(state: ServingState, path: Path) -> None:
    """Write the serving state atomically (temporary file in the same folder, fsync, :func:`os.replace`).

    Args:
        state: What to write.
        path: The JSON file; its folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(state.to_dict(), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for a read-modify-write of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------------------


def registry_client(settings: Settings) -> MlflowClient:
    """An MLflow client for the configured tracking/registry store (also set as MLflow's global URI).

    Unlike :func:`chicago_arrest.registry.configure_mlflow` this creates no experiment: serving only reads
    and moves aliases.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = settings.resolved_tracking_uri()
    if not settings.mlflow_tracking_uri:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def _aliases(client: MlflowClient, name: str) -> tuple[str | None, str | None]:
    from chicago_arrest.registry import CHALLENGER, CHAMPION, alias_version

    return alias_version(client, CHAMPION, name), alias_version(client, CHALLENGER, name)


def _no_champion(settings: Settings, name: str) -> NoChampionError:
    return NoChampionError(
        f"no 'champion' version of registered model {name!r} in the MLflow registry at "
        f"{settings.resolved_tracking_uri()} and no serving state at {settings.serving_config_path}: "
        "run `make pipeline-run` first"
    )


def state_from_registry(client: MlflowClient, settings: Settings, name: str = MODEL_NAME) -> ServingState:
    """Build a serving state from the registry aliases: champion, challenger (if another version), canary 0.

    Raises:
        NoChampionError: When the registry has no champion.
    """
    champion, challenger = _aliases(client, name)
    if champion is None:
        raise _no_champion(settings, name)
    return ServingState(
        champion=ModelRef.registered(champion, name),
        challenger=ModelRef.registered(challenger, name) if challenger and challenger != champion else None,
    )


class _Context:
    """Settings, path and a lazily created MLflow client for one operation."""

    def __init__(self, settings: Settings | None, client: MlflowClient | None, name: str) -> None:
        self.settings = settings or Settings()
        self.path = self.settings.serving_config_path
        self.name = name
        self._client = client

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = registry_client(self.settings)
        return self._client

    def current(self) -> ServingState:
        """The saved state, or one built from the registry aliases (not saved)."""
        try:
            return load_state(self.path)
        except FileNotFoundError:
            return state_from_registry(self.client, self.settings, self.name)


def ensure_state(
    settings: Settings | None = None, client: MlflowClient | None = None, name: str = MODEL_NAME
) -> ServingState:
    """Return the serving state; if the file does not exist yet, build it from the registry aliases and save it.

    Args:
        settings: Library settings (default: from the environment).
        client: MLflow client (default: one for ``settings``), only used when the file is missing.
        name: Registered model name.

    Returns:
        The state.

    Raises:
        NoChampionError: When there is neither a state file nor a champion in the registry.
        ServingStateError: When the file exists but is invalid.
    """
    ctx = _Context(settings, client, name)
    with _locked(ctx.path):
        try:
            return load_state(ctx.path)
        except FileNotFoundError:
            state = state_from_registry(ctx.client, ctx.settings, name)
            save_state(state, ctx.path)
            log.info("serving state created from the registry aliases at %s", ctx.path)
            return state


def deploy_local(
    champion: str | int | ModelRef,
    challenger: str | int | ModelRef | None = None,
    canary_percent: int = 0,
    *,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
) -> ServingState:
    """Set what the local server serves (the pipeline's deploy step calls this).

    Args:
        champion: Registry version (``"3"`` / ``3``) or a :class:`ModelRef` (e.g. a local model folder).
        challenger: Same, or ``None``; a challenger equal to the champion counts as none.
        canary_percent: Share of requests for the challenger (0..100).
        settings: Library settings (default: from the environment).
        name: Registered model name for version numbers.

    Returns:
        The saved state.

    Raises:
        ServingStateError: On a percentage out of range, or a canary without a challenger.
    """

    def ref(value: str | int | ModelRef) -> ModelRef:
        return value if isinstance(value, ModelRef) else ModelRef.registered(value, name)

    champ = ref(champion)
    chall = None if challenger is None else ref(challenger)
    if chall is not None and chall == champ:
        chall = None
    state = ServingState(champion=champ, challenger=chall, canary_percent=_check_percent(canary_percent))
    path = state_path(settings)
    with _locked(path):
        save_state(state, path)
    log.info("local serving: %s", describe(state))
    return state


def set_canary(
    percent: int,
    *,
    settings: Settings | None = None,
    client: MlflowClient | None = None,
    name: str = MODEL_NAME,
) -> ServingState:
    """Send ``percent`` % of requests to the challenger (``make canary PERCENT=P``).

    Without a challenger in the serving state, the registry's ``challenger`` alias (if it names another
    version than the champion) becomes the challenger.

    Args:
        percent: 0..100.
        settings: Library settings (default: from the environment).
        client: MLflow client (created only when the registry must be read).
        name: Registered model name.

    Returns:
        The saved state.

    Raises:
        ServingStateError: On a percentage out of range or when there is no challenger at all.
        NoChampionError: When there is nothing to serve.
    """
    percent = _check_percent(percent)
    ctx = _Context(settings, client, name)
    with _locked(ctx.path):
        state = ctx.current()
        challenger = state.challenger
        if challenger is None and percent > 0:
            _, registry_challenger = _aliases(ctx.client, name)
            if registry_challenger is None or registry_challenger == state.champion.version:
                raise ServingStateError(
                    "there is no challenger to send traffic to (the registry's 'challenger' alias is "
                    f"{registry_challenger or 'not set'}, champion is {state.champion.version}): train one "
                    "with `make pipeline-run`"
                )
            challenger = ModelRef.registered(registry_challenger, name)
        new = state.changed(challenger=challenger, canary_percent=percent)
        save_state(new, ctx.path)
    log.info("local serving: %s", describe(new))
    return new


def rollback(*, settings: Settings | None = None, client: MlflowClient | None = None) -> ServingState:
    """Send every request to the champion again (canary 0); the challenger stays loaded for a new canary.

    Args:
        settings: Library settings (default: from the environment).
        client: MLflow client (used only when there is no state file yet).

    Returns:
        The saved state.
    """
    ctx = _Context(settings, client, MODEL_NAME)
    with _locked(ctx.path):
        new = ctx.current().changed(canary_percent=0)
        save_state(new, ctx.path)
    log.info("local serving: %s", describe(new))
    return new


def promote(
    *,
    settings: Settings | None = None,
    client: MlflowClient | None = None,
    name: str = MODEL_NAME,
) -> ServingState:
    """Make the challenger the champion, in the registry and in the local serving state.

    The registry's ``champion`` alias moves to the challenger with
    :func:`chicago_arrest.registry.promote_challenger` (the previous champion version is kept as a tag). If
    the served challenger is not the version the registry's ``challenger`` alias names, the alias is moved to
    the served one first: what was tried under canary is what gets promoted. The state becomes
    ``champion ← challenger, challenger = None, canary 0``.

    Args:
        settings: Library settings (default: from the environment).
        client: MLflow client (default: one for ``settings``).
        name: Registered model name.

    Returns:
        The saved state.

    Raises:
        ServingStateError: When there is no challenger to promote, or the registry refuses the change.
    """
    from mlflow.exceptions import MlflowException

    from chicago_arrest.registry import CHALLENGER, promote_challenger, set_alias

    ctx = _Context(settings, client, name)
    with _locked(ctx.path):
        state = ctx.current()
        target = state.challenger
        _, registry_challenger = _aliases(ctx.client, name)
        if target is None:
            if registry_challenger is None or registry_challenger == state.champion.version:
                raise ServingStateError(
                    f"nothing to promote: no challenger is served and the registry's challenger alias is "
                    f"{registry_challenger or 'not set'} (champion {state.champion.version})"
                )
            target = ModelRef.registered(registry_challenger, name)
        try:
            if registry_challenger != target.version:
                log.warning(
                    "registry challenger alias is %s but version %s is served: moving the alias first",
                    registry_challenger,
                    target.version,
                )
                set_alias(ctx.client, CHALLENGER, target.version, name)
            previous, new_champion = promote_challenger(ctx.client, name)
        except (MlflowException, LookupError) as exc:
            raise ServingStateError(
                f"the registry refused the promotion of version {target.version}: {exc}"
            ) from exc
        new = state.changed(champion=target, challenger=None, canary_percent=0)
        save_state(new, ctx.path)
    log.info(
        "promoted version %s (previous champion %s); local serving: %s", new_champion, previous, describe(new)
    )
    return new


def status(
    *,
    settings: Settings | None = None,
    client: MlflowClient | None = None,
    name: str = MODEL_NAME,
) -> dict[str, Any]:
    """The local serving state and the registry aliases side by side (``make status``).

    Args:
        settings: Library settings (default: from the environment).
        client: MLflow client (default: one for ``settings``).
        name: Registered model name.

    Returns:
        ``{"path", "state" (dict or None), "registry": {"tracking_uri", "champion", "challenger"}, "notes"}``;
        never raises for a missing file or an unreachable registry (those become notes).
    """
    ctx = _Context(settings, client, name)
    notes: list[str] = []
    state: ServingState | None = None
    try:
        state = load_state(ctx.path)
    except FileNotFoundError:
        notes.append(f"no serving state yet at {ctx.path}: `make serve` creates it from the registry aliases")
    except ServingStateError as exc:
        notes.append(str(exc))
    champion = challenger = None
    try:
        champion, challenger = _aliases(ctx.client, name)
    except Exception as exc:  # an unreachable tracking server must not break `make status`
        notes.append(f"registry not readable: {type(exc).__name__}: {exc}")
    if state is not None and champion is not None and state.champion.version != champion:
        notes.append(
            f"served champion {state.champion.version} differs from the registry champion {champion} "
            "(restart-free fix: `make promote` or chicago_arrest.serving_state.deploy_local)"
        )
    if state is not None and state.challenger is None and challenger not in (None, champion):
        notes.append(
            f"registry challenger {challenger} is not served yet: `make canary PERCENT=10` starts it"
        )
    return {
        "path": str(ctx.path),
        "state": state.to_dict() if state else None,
        "registry": {
            "tracking_uri": ctx.settings.resolved_tracking_uri(),
            "champion": champion,
            "challenger": challenger,
        },
        "notes": notes,
    }


def describe(state: ServingState) -> str:
    """One line for humans: ``champion 3 (90%), challenger 4 (10%)``."""
    champion = f"champion {state.champion.version} ({100 - state.canary_percent}%)"
    if state.challenger is None:
        return champion
    return f"{champion}, challenger {state.challenger.version} ({state.canary_percent}%)"
