"""Champion/challenger routing and hot reload of the local serving state.

A :class:`Deployment` is an immutable snapshot (models + split). Each request reads the current snapshot
once, so a swap never changes the model under a request in flight. :class:`StateWatcher` polls the serving
state file, loads any new model *before* swapping the reference (a single attribute assignment), and only
then lets the old models go: promotion under load drops no request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chicago_arrest.model.artifact import ArrestModel
from chicago_arrest.registry.state import ModelRef, ServingState, load_state

log = logging.getLogger(__name__)

Role = Literal["champion", "challenger"]
CHAMPION: Role = "champion"
CHALLENGER: Role = "challenger"


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory.

    Attributes:
        version: Registry version (what responses report as ``model_version``).
        uri: Where it was loaded from.
        model: The model.
        card: Where the version's model card is (the ``model_card`` entry of its MLmodel metadata; empty for a
            model logged without one).
    """

    version: str
    uri: str
    model: ArrestModel
    card: str = ""


def bucket(request_id: str) -> int:
    """Stable bucket 0..99 of a request id (the same id always lands in the same bucket, in any process)."""
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


@dataclass(frozen=True)
class Deployment:
    """What is served right now.

    Attributes:
        champion: Serves ``100 - canary_percent`` % of requests.
        challenger: Serves ``canary_percent`` % (``None``: no canary).
        canary_percent: 0..100.
    """

    champion: LoadedModel
    challenger: LoadedModel | None = None
    canary_percent: int = 0

    def choose(self, request_id: str | None) -> tuple[LoadedModel, Role]:
        """Pick the model for a request.

        With a request id the choice is deterministic: ``bucket(id) < canary_percent`` → challenger. Without
        one it is random with the same odds.

        Args:
            request_id: V2 ``id`` or ``x-request-id`` header, if the client sent one.

        Returns:
            ``(model, role)``.
        """
        if self.challenger is None or self.canary_percent <= 0:
            return self.champion, CHAMPION
        draw = bucket(request_id) if request_id else random.randrange(100)
        if draw < self.canary_percent:
            return self.challenger, CHALLENGER
        return self.champion, CHAMPION

    def models(self) -> dict[Role, LoadedModel]:
        """The loaded models by role."""
        out: dict[Role, LoadedModel] = {CHAMPION: self.champion}
        if self.challenger is not None:
            out[CHALLENGER] = self.challenger
        return out


Loader = Callable[[ModelRef], LoadedModel]


def build_deployment(
    state: ServingState,
    loader: Loader,
    current: Deployment | None = None,
    spare: Iterable[LoadedModel] = (),
) -> Deployment:
    """Load what ``state`` names, reusing models already in ``current`` or ``spare`` (matched by URI and version).

    Args:
        state: The serving state.
        loader: Loads one model.
        current: The deployment being replaced, if any.
        spare: Models kept in memory though not served (the one a promotion or rollback just retired).

    Returns:
        The new deployment (not yet active).
    """
    cache = {(m.uri, m.version): m for m in spare}
    cache.update({(m.uri, m.version): m for m in (current.models().values() if current else ())})

    def get(ref: ModelRef) -> LoadedModel:
        hit = cache.get((ref.uri, ref.version))
        if hit is None:
            hit = loader(ref)
            cache[(ref.uri, ref.version)] = hit
        return hit

    champion = get(state.champion)
    challenger = get(state.challenger) if state.challenger is not None else None
    return Deployment(champion, challenger, state.canary_percent if challenger is not None else 0)


class DeploymentHolder:
    """Holds the current :class:`Deployment`; reads are a plain attribute read, swaps are one assignment."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._listeners: list[Callable[[Deployment], None]] = []

    @property
    def current(self) -> Deployment:
        """The active deployment."""
        return self._deployment

    def on_swap(self, listener: Callable[[Deployment], None]) -> None:
        """Call ``listener(new_deployment)`` after every swap (and once now)."""
        self._listeners.append(listener)
        listener(self._deployment)

    def swap(self, deployment: Deployment) -> None:
        """Make ``deployment`` active (atomic under the GIL)."""
        self._deployment = deployment
        for listener in self._listeners:
            try:
                listener(deployment)
            except Exception:  # a metrics listener must never break a swap
                log.exception("deployment listener failed")


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class StateWatcher:
    """Background thread that applies changes of the serving state file to a :class:`DeploymentHolder`.

    Args:
        path: The serving state file.
        holder: Receives new deployments.
        loader: Loads one model (called in the watcher thread, never in a request).
        poll_interval_s: Seconds between checks of the file's mtime/size/inode.
        retry_s: Seconds before retrying a state whose models failed to load.
        on_reload: Called with ``"ok"`` or ``"error"`` after each reload attempt (for metrics).

    The model a change stops serving is kept in memory, one at most (:attr:`spare`): the usual next operation
    undoes the last one (a rollback after a promotion, a canary again after a rollback), and it then swaps in
    without loading anything.
    """

    def __init__(
        self,
        path: Path,
        holder: DeploymentHolder,
        loader: Loader,
        *,
        poll_interval_s: float = 1.0,
        retry_s: float = 10.0,
        on_reload: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.holder = holder
        self.loader = loader
        self.poll_interval_s = poll_interval_s
        self.retry_s = retry_s
        self.on_reload = on_reload
        # None: the first check re-reads the file, so a change made while the server was starting is not missed
        # (models already loaded are reused, so that costs nothing).
        self._seen: tuple[int, int, int] | None = None
        self._retry_at = 0.0
        self.spare: LoadedModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="serving-state-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.check()
            except Exception:  # never let the watcher die
                log.exception("serving state watcher failed")

    def check(self) -> bool:
        """Apply the file if it changed since the last successful check.

        Returns:
            Whether a new deployment was swapped in.
        """
        signature = _signature(self.path)
        if signature is None:
            if self._seen is not None:
                log.warning("serving state %s disappeared; keeping the current models", self.path)
                self._seen = None
            return False
        if signature == self._seen or time.monotonic() < self._retry_at:
            return False
        try:
            state = load_state(self.path)
            spare = [self.spare] if self.spare is not None else []
            deployment = build_deployment(state, self.loader, self.holder.current, spare)
        except FileNotFoundError:
            return False
        except Exception as exc:  # a bad file or a model that fails to load: keep serving the old models
            self._retry_at = time.monotonic() + self.retry_s
            log.error("serving state %s not applied (retry in %.0fs): %s", self.path, self.retry_s, exc)
            if self.on_reload:
                self.on_reload("error")
            return False
        self._seen = signature
        self._retry_at = 0.0
        old = self.holder.current
        if deployment == old:
            return False
        self.holder.swap(deployment)
        serving = {(m.uri, m.version) for m in deployment.models().values()}
        retired = [m for m in old.models().values() if (m.uri, m.version) not in serving]
        if retired:
            self.spare = retired[0]
        elif self.spare is not None and (self.spare.uri, self.spare.version) in serving:
            self.spare = None
        if self.on_reload:
            self.on_reload("ok")
        log.info(
            "serving: champion %s, challenger %s at %d%% (was champion %s, challenger %s at %d%%)",
            deployment.champion.version,
            deployment.challenger.version if deployment.challenger else "-",
            deployment.canary_percent,
            old.champion.version,
            old.challenger.version if old.challenger else "-",
            old.canary_percent,
        )
        return True
