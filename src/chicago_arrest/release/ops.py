"""The release operations, written once for every target: deploy, canary, promote, rollback, status.

A :class:`Release` moves two things that must agree: the registry aliases (``champion`` / ``challenger``,
:class:`~chicago_arrest.release.base.Aliases`) and the traffic split in force
(:class:`~chicago_arrest.release.base.Traffic`: the local serving state or the InferenceService). Every
operation moves both here, the registry first and traffic second, and says what it did
(:meth:`Outcome.message`). When the second step fails, :class:`~chicago_arrest.release.base.ReleaseError`
names what moved and what did not; running the same operation again finishes it, and running it after it has
finished changes nothing.

``open_release("local")`` or ``open_release("cluster", context=...)`` builds one from the settings.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from chicago_arrest.names import CHALLENGER, CHAMPION, MODEL_NAME
from chicago_arrest.release.base import Aliases, ReleaseError, Split, Target, Traffic, check_percent
from chicago_arrest.settings import Settings, get_settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What an operation did.

    Attributes:
        target: ``local`` or ``cluster``.
        action: ``deploy``, ``canary``, ``promote`` or ``rollback``.
        split: The split in force afterwards.
        lines: One line per thing done (or found already done), registry first.
    """

    target: Target
    action: str
    split: Split
    lines: tuple[str, ...]

    def message(self) -> str:
        """The lines, for a terminal or a log."""
        return "\n".join(self.lines)


def registry_split(aliases: Aliases, nothing_served: str) -> Split:
    """What the registry aliases say should serve: champion, challenger (if another version), canary 0.

    Args:
        aliases: The registry aliases.
        nothing_served: Why the split is derived (for the error), e.g. ``no serving state at <path>``.

    Raises:
        ReleaseError: When the registry has no champion (saying to run the pipeline first).
    """
    champion = aliases.get(CHAMPION)
    if champion is None:
        raise ReleaseError(
            f"no {CHAMPION!r} version of registered model {MODEL_NAME!r} in the MLflow registry at "
            f"{aliases.where()} and {nothing_served}: run `make pipeline-run` first"
        )
    return Split(champion, aliases.get(CHALLENGER))


class Release:
    """Release operations over one traffic backend and the registry aliases.

    Args:
        traffic: Where requests go (local serving state or InferenceService).
        aliases: The registry's ``champion`` / ``challenger`` aliases.
    """

    def __init__(self, traffic: Traffic, aliases: Aliases) -> None:
        self.traffic = traffic
        self.aliases = aliases

    @property
    def target(self) -> Target:
        """``local`` or ``cluster``."""
        return self.traffic.target

    def _exclusive(self) -> contextlib.AbstractContextManager[Any]:
        """The backend's lock for a whole read-modify-write, if it has one (the local file does)."""
        exclusive = getattr(self.traffic, "exclusive", None)
        return exclusive() if callable(exclusive) else contextlib.nullcontext()

    def current(self) -> Split:
        """The split in force; when nothing is served yet, the one the registry aliases name."""
        split = self.traffic.read()
        return split or registry_split(self.aliases, f"nothing is served yet ({self.target})")

    def _rerun(self, action: str, split: Split) -> str:
        """The command that repeats ``action`` (and so finishes it)."""
        where = "" if self.target == "local" else f" TARGET={self.target}"
        if action == "deploy":
            return "the deploy step (`make pipeline-run`)"
        percent = f" PERCENT={split.canary_percent}" if action == "canary" else ""
        return f"`make {action}{percent}{where}`"

    def _registry(self, action: str, done: list[str], step: Callable[[], T]) -> T:
        """Run a registry step (always before traffic moves); on failure say what already moved."""
        try:
            return step()
        except Exception as exc:
            moved = f"; already done: {'; '.join(done)}" if done else ""
            raise ReleaseError(
                f"{action} stopped: the registry at {self.aliases.where()} refused a change "
                f"({type(exc).__name__}: {exc}); {self.target} serving was not changed{moved}"
            ) from exc

    def _write(self, action: str, split: Split, done: list[str]) -> Outcome:
        """Move traffic, the last step of every operation; on failure say what already moved."""
        try:
            done.append(self.traffic.write(split))
        except Exception as exc:
            moved = f"Already done: {'; '.join(done)}. " if done else "The registry was not changed. "
            raise ReleaseError(
                f"{action} did not finish: {self.target} serving was not changed to {split.describe()} "
                f"({type(exc).__name__}: {exc}). {moved}Run {self._rerun(action, split)} again to finish it."
            ) from exc
        outcome = Outcome(self.target, action, split, tuple(done))
        log.info("%s (%s): %s", action, self.target, " | ".join(outcome.lines))
        return outcome

    def deploy(self, champion: str, challenger: str | None = None, canary_percent: int = 0) -> Outcome:
        """Serve ``champion`` and, under canary, ``challenger`` (the pipeline's deploy step).

        The registry aliases are pointed at the same versions first (after the gate they already are).

        Raises:
            ReleaseError: On a percent out of range, a canary without a challenger, or a failed step.
        """
        split = Split(champion, challenger, canary_percent)
        with self._exclusive():
            done: list[str] = []
            for alias, version in ((CHAMPION, split.champion), (CHALLENGER, split.challenger)):
                if version is None:
                    continue
                before = self.aliases.get(alias)
                if before != version:
                    self._registry("deploy", done, functools.partial(self.aliases.set, alias, version))
                    done.append(f"registry: {alias} alias -> version {version} (was {before or 'not set'})")
            return self._write("deploy", split, done)

    def canary(self, percent: int) -> Outcome:
        """Send ``percent`` % of requests to the challenger (0 … 100).

        Without a challenger in serving, the registry's ``challenger`` alias (if it names another version than
        the champion) becomes the challenger. The aliases do not move.

        Raises:
            ReleaseError: On a percent out of range, or when there is no challenger at all.
        """
        percent = check_percent(percent)
        with self._exclusive():
            split = self.current()
            challenger = split.challenger
            if challenger is None and percent > 0:
                challenger = self.aliases.get(CHALLENGER)
                if challenger is None or challenger == split.champion:
                    raise ReleaseError(
                        f"there is no challenger to send traffic to (the registry's {CHALLENGER!r} alias is "
                        f"{challenger or 'not set'}, champion is {split.champion}): train one with "
                        "`make pipeline-run`"
                    )
            return self._write("canary", Split(split.champion, challenger, percent), [])

    def rollback(self) -> Outcome:
        """Send every request to the champion (canary 0); the challenger stays ready for a new canary."""
        with self._exclusive():
            split = self.current()
            return self._write("rollback", Split(split.champion, split.challenger, 0), [])

    def promote(self) -> Outcome:
        """Make the challenger under canary the champion: the registry alias first, then 100 % of traffic.

        If the registry's ``challenger`` alias names another version than the one served, it is moved to the
        served one first: what was tried under canary is what gets promoted. When the traffic step fails the
        registry has already moved; running ``promote`` again finishes the job. After a finished promotion
        it says there is nothing left to do.

        Raises:
            ReleaseError: When there is nothing to promote, or a step failed (saying what moved).
        """
        with self._exclusive():
            split = self.current()
            champion_alias, challenger_alias = self.aliases.get(CHAMPION), self.aliases.get(CHALLENGER)
            target = split.challenger
            if target is None and challenger_alias != split.champion:
                target = challenger_alias  # not served yet, or the traffic step of a promotion failed
            if target is None:
                if challenger_alias is not None and champion_alias == split.champion:
                    line = (
                        f"nothing left to do: version {split.champion} is the registry champion and serves "
                        "all requests"
                    )
                    return Outcome(self.target, "promote", split, (line,))
                raise ReleaseError(
                    f"nothing to promote: no challenger is served and the registry's {CHALLENGER!r} alias is "
                    f"{challenger_alias or 'not set'} (champion {split.champion})"
                )
            version: str = target
            done: list[str] = []
            if champion_alias == version:
                done.append(f"registry: version {version} is already the champion")
            else:
                if challenger_alias != version:
                    self._registry("promote", done, lambda: self.aliases.set(CHALLENGER, version))
                    done.append(
                        f"registry: {CHALLENGER} alias -> version {version} (was "
                        f"{challenger_alias or 'not set'}), the version under canary"
                    )
                previous = self._registry("promote", done, lambda: self.aliases.promote(version))
                done.append(f"registry: {CHAMPION} alias -> version {version} (was {previous or 'not set'})")
            return self._write("promote", Split(version), done)

    def status(self) -> dict[str, Any]:
        """The split in force, the backend's details and the registry aliases, with notes where they disagree.

        Never raises for an unreadable serving state or registry: those become notes.

        Returns:
            ``{"target", "serving": {champion, challenger, canary_percent} | None, "backend": {...},
            "registry": {"tracking_uri", "model", "champion", "challenger"}, "notes": [...]}``.
        """
        notes: list[str] = []
        split: Split | None = None
        try:
            split = self.traffic.read()
        except Exception as exc:  # a broken file or an unreachable cluster must not break `make status`
            notes.append(f"serving not readable: {exc}")
        try:
            details = dict(self.traffic.details())
        except Exception as exc:
            details = {}
            notes.append(f"{self.target} details not readable: {type(exc).__name__}: {exc}")
        notes.extend(str(note) for note in details.pop("notes", ()) if str(note) not in notes)
        champion = challenger = None
        try:
            champion, challenger = self.aliases.get(CHAMPION), self.aliases.get(CHALLENGER)
        except Exception as exc:  # an unreachable tracking server must not break `make status`
            notes.append(f"registry not readable: {type(exc).__name__}: {exc}")
        if split is not None:
            notes.extend(_disagreements(split, champion, challenger))
        return {
            "target": self.target,
            "serving": None
            if split is None
            else {
                "champion": split.champion,
                "challenger": split.challenger,
                "canary_percent": split.canary_percent,
            },
            "backend": details,
            "registry": {
                "tracking_uri": self.aliases.where(),
                "model": MODEL_NAME,
                "champion": champion,
                "challenger": challenger,
            },
            "notes": notes,
        }


def _disagreements(split: Split, champion: str | None, challenger: str | None) -> list[str]:
    """Notes where the split in force and the registry aliases disagree, with the command that fixes it."""
    notes = []
    if champion is not None and split.champion != champion:
        fix = (
            "a promotion did not finish: `make promote` finishes it"
            if split.challenger == champion or challenger == champion
            else "`make promote` or a new deploy makes them agree"
        )
        notes.append(
            f"served champion {split.champion} differs from the registry champion {champion} ({fix})"
        )
    if split.challenger is None and challenger not in (None, champion, split.champion):
        notes.append(
            f"registry challenger {challenger} is not served yet: `make canary PERCENT=10` starts it"
        )
    if split.challenger is not None and challenger not in (None, split.challenger):
        notes.append(
            f"served challenger {split.challenger} differs from the registry challenger {challenger}: "
            "`make promote` promotes the served one"
        )
    return notes


class MlflowAliases:
    """The registry aliases of the registered model in MLflow (:class:`~chicago_arrest.release.base.Aliases`).

    A local SQLite registry whose file does not exist yet counts as empty and is not created by reading.

    Args:
        tracking_uri: MLflow tracking (and registry) URI; the client is made on first use, MLflow's global
            tracking URI is not touched.
        name: Registered model name.
        client: An existing client (tests).
    """

    def __init__(self, tracking_uri: str, name: str = MODEL_NAME, client: MlflowClient | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowAliases:
        """The aliases of the registry the settings name."""
        return cls(settings.resolved_tracking_uri())

    def _missing(self) -> bool:
        prefix = "sqlite:///"
        return (
            self._client is None
            and self.tracking_uri.startswith(prefix)
            and not Path(self.tracking_uri.removeprefix(prefix)).exists()
        )

    @property
    def client(self) -> MlflowClient:
        """The MLflow client (created on first use)."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def get(self, alias: str) -> str | None:
        """The version ``alias`` names, or ``None`` (also for a registry that does not exist yet)."""
        from chicago_arrest.registry import alias_version

        return None if self._missing() else alias_version(self.client, alias, self.name)

    def set(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        from chicago_arrest.registry import set_alias

        set_alias(self.client, alias, version, self.name)

    def promote(self, version: str) -> str | None:
        """Make ``version`` the champion (today's semantics: the challenger alias stays on it, tags record it).

        Returns:
            The previous champion.
        """
        from chicago_arrest.registry import promote_challenger

        if self.get(CHALLENGER) != version:
            self.set(CHALLENGER, version)
        previous, _ = promote_challenger(self.client, self.name)
        return previous

    def where(self) -> str:
        """The tracking URI."""
        return self.tracking_uri


def open_release(
    target: Target,
    *,
    settings: Settings | None = None,
    context: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
) -> Release:
    """The release operations of ``target`` with the registry of ``settings``.

    Args:
        target: ``local`` (the serving state of ``make serve``) or ``cluster`` (the InferenceService).
        settings: Library settings (default: from the environment).
        context: kubeconfig context (cluster only; default: the current one, or in-cluster config in a pod).
        namespace: Namespace of the InferenceService (cluster only).
        name: InferenceService name (cluster only).

    Raises:
        ReleaseError: On an unknown target.
    """
    settings = settings or get_settings()
    aliases = MlflowAliases.from_settings(settings)
    if target == "local":
        from chicago_arrest.release.local import LocalTraffic

        return Release(LocalTraffic(settings.serving_config_path), aliases)
    if target == "cluster":
        from chicago_arrest.release.kserve import KServeTraffic

        traffic = KServeTraffic.from_settings(settings, context=context, namespace=namespace, name=name)
        return Release(traffic, aliases)
    raise ReleaseError(f"unknown release target {target!r}: use 'local' or 'cluster'")


def _render(value: Any, indent: str) -> list[str]:
    """Backend details as indented ``key: value`` lines (lists of objects one JSON line each)."""
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(f"{indent}{key}:")
            lines.extend(_render(item, indent + "  "))
        elif isinstance(item, list) and item:
            lines.append(f"{indent}{key}:")
            lines.extend(f"{indent}  - {json.dumps(x) if isinstance(x, dict | list) else x}" for x in item)
        else:
            lines.append(f"{indent}{key}: {'-' if item in (None, {}, []) else item}")
    return lines


def format_status(report: dict[str, Any]) -> str:
    """Render :meth:`Release.status` as text for a terminal."""
    serving = report.get("serving")
    if serving is None:
        lines = [f"Serving ({report['target']}): nothing yet"]
    else:
        split = Split(serving["champion"], serving["challenger"], serving["canary_percent"])
        lines = [f"Serving ({report['target']}): {split.describe()}"]
    lines.extend(_render(report.get("backend") or {}, "  "))
    registry = report["registry"]
    lines.append(f"MLflow registry {registry['tracking_uri']} ({registry['model']})")
    lines.append(f"  @{CHAMPION}:   {registry['champion'] or '-'}")
    lines.append(f"  @{CHALLENGER}: {registry['challenger'] or '-'}")
    lines.extend(f"Note: {note}" for note in report["notes"])
    return "\n".join(lines)
