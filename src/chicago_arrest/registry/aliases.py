"""The registry side of a release: the two aliases and the tags that record how they moved.

One meaning per alias: ``champion`` is the version that serves (all requests, or all but the canary's share);
``challenger`` names a version only while it is under evaluation or canary: never the champion, removed when it
is promoted or a version is pinned, absent after a first run.

The history lives in MLflow, next to the aliases, so the local and the cluster paths read the same record:

* version tags of the champion, written when it became champion: ``previous_champion`` (the version it
  replaced), ``champion_since`` (ISO-8601 UTC) and ``champion_by`` (``first model``, ``gate``, ``deploy``,
  ``promote`` or ``rollback``). ``make rollback`` reads them to undo a promotion;
* registered-model tags: ``challenger_changed_at`` and ``split_changed_at.<target>`` (when the challenger alias
  and the traffic split of ``local`` / ``cluster`` last changed);
* the version tag ``gate`` (``passed`` / ``rejected``), written by the gate: only a version that passed it can
  be pinned with ``make promote VERSION=n`` or ``make rollback VERSION=n``;
* the version tag ``promote_forced`` of a champion that ``make promote FORCE=1`` made champion although it was
  measurably worse on labelled served traffic: what was overridden (removed when a version becomes champion
  without it).

Every write here is safe to repeat: the tags of a new champion are written before its alias moves, so an
interrupted change leaves the old alias and tags that the next run rewrites identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.names import (
    CHALLENGER,
    CHALLENGER_CHANGED_TAG,
    CHAMPION,
    CHAMPION_BY_TAG,
    CHAMPION_SINCE_TAG,
    GATE_TAG,
    MODEL_NAME,
    PREVIOUS_CHAMPION_TAG,
    PROMOTE_FORCED_TAG,
    SPLIT_CHANGED_TAG,
)
from chicago_arrest.registry.state import Split, Target

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from chicago_arrest.core.settings import Settings


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


def now() -> str:
    """The current time, ISO-8601 UTC to the second (the format of every time tag)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ChampionRecord:
    """How the champion got there (its version tags).

    Attributes:
        version: The champion.
        previous: The champion it replaced, or ``None``.
        since: When it became champion (ISO-8601), or ``None`` when not recorded.
        by: The verb that made it champion (``first model``, ``gate``, ``deploy``, ``promote``, ``rollback``).
        forced: What ``make promote FORCE=1`` overrode to make it champion, or ``None``.
    """

    version: str
    previous: str | None
    since: str | None
    by: str | None
    forced: str | None = None


def champion_record(aliases: Aliases, version: str) -> ChampionRecord:
    """The record of champion ``version`` (empty fields for a version without history tags)."""
    tags = aliases.version_tags(version) or {}
    previous = tags.get(PREVIOUS_CHAMPION_TAG) or None
    return ChampionRecord(
        version,
        previous if previous != version else None,
        tags.get(CHAMPION_SINCE_TAG) or None,
        tags.get(CHAMPION_BY_TAG) or None,
        tags.get(PROMOTE_FORCED_TAG) or None,
    )


def make_champion(aliases: Aliases, version: str, by: str, forced: str | None = None) -> str | None:
    """Point ``champion`` at ``version``, recording the champion it replaces, when, and by which verb.

    The tags go first, then the alias: when the alias write fails, the next run finds the old champion and
    writes the same tags again. Nothing is written when ``version`` already is the champion.

    Args:
        aliases: The registry.
        version: The new champion.
        by: The verb.
        forced: What ``FORCE=1`` overrode (the served comparison), recorded as :data:`PROMOTE_FORCED_TAG`.

    Returns:
        The champion before (``None`` for the first).
    """
    before = aliases.get(CHAMPION)
    if before == version:
        return before
    aliases.tag_version(
        version,
        {
            PREVIOUS_CHAMPION_TAG: before,
            CHAMPION_SINCE_TAG: now(),
            CHAMPION_BY_TAG: by,
            PROMOTE_FORCED_TAG: forced,
        },
    )
    aliases.set(CHAMPION, version)
    return before


def set_challenger(aliases: Aliases, version: str | None) -> str | None:
    """Point ``challenger`` at ``version``, or remove it (``None``); record when it changed.

    Returns:
        The challenger before.
    """
    before = aliases.get(CHALLENGER)
    if before == version:
        return before
    if version is None:
        aliases.delete(CHALLENGER)
    else:
        aliases.set(CHALLENGER, version)
    aliases.tag_model({CHALLENGER_CHANGED_TAG: now()})
    return before


def record_split(aliases: Aliases, target: Target) -> None:
    """Record that the traffic split of ``target`` changed now."""
    aliases.tag_model({SPLIT_CHANGED_TAG.format(target=target): now()})


def split_changed_at(tags: dict[str, str], target: Target) -> str | None:
    """When the split of ``target`` last changed, from the registered model's tags."""
    return tags.get(SPLIT_CHANGED_TAG.format(target=target))


def check_pinnable(aliases: Aliases, version: object) -> str:
    """Return ``version`` (normalised) if it exists and passed the gate once.

    Raises:
        ReleaseError: On a version that is not a positive integer, does not exist, or never passed the gate.
    """
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise ReleaseError(f"VERSION must be a registry version number (1, 2, ...), got {version!r}")
    text = str(int(text))
    tags = aliases.version_tags(text)
    if tags is None:
        raise ReleaseError(
            f"version {text} of registered model {MODEL_NAME!r} does not exist in the MLflow registry at "
            f"{aliases.where()}"
        )
    if tags.get(GATE_TAG) != "passed":
        verdict = tags.get(GATE_TAG)
        why = (
            f"the gate {verdict} it: {tags.get('gate_reason', '')}".rstrip(": ") if verdict else "no gate tag"
        )
        raise ReleaseError(
            f"version {text} never passed the gate ({why}): only a version that passed the gate can be "
            "champion"
        )
    return text


class MlflowAliases:
    """The registry of :class:`Aliases` in MLflow.

    A local SQLite registry whose file does not exist yet counts as empty and is not created by reading.

    Args:
        tracking_uri: MLflow tracking (and registry) URI; the client is made on first use, MLflow's global
            tracking URI is not touched.
        name: Registered model name.
        client: An existing client (the gate's, tests).
    """

    def __init__(self, tracking_uri: str, name: str = MODEL_NAME, client: MlflowClient | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowAliases:
        """The registry the settings name."""
        return cls(settings.resolved_tracking_uri())

    @classmethod
    def of(cls, client: MlflowClient, name: str = MODEL_NAME) -> MlflowAliases:
        """The registry behind an existing client."""
        return cls(str(client.tracking_uri), name, client)

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
        from chicago_arrest.registry.models import alias_version

        return None if self._missing() else alias_version(self.client, alias, self.name)

    def set(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        self.client.set_registered_model_alias(self.name, alias, version)

    def delete(self, alias: str) -> None:
        """Remove ``alias`` if it is set."""
        if self.get(alias) is not None:
            self.client.delete_registered_model_alias(self.name, alias)

    def version_tags(self, version: str) -> dict[str, str] | None:
        """The tags of ``version``, or ``None`` when it (or the registered model) does not exist."""
        from mlflow.exceptions import MlflowException

        if self._missing():
            return None
        try:
            return dict(self.client.get_model_version(self.name, version).tags)
        except MlflowException:
            return None

    def tag_version(self, version: str, tags: dict[str, str | None]) -> None:
        """Set (or, for ``None``, remove) tags of ``version``."""
        present = self.version_tags(version) or {}
        for key, value in tags.items():
            if value is not None:
                self.client.set_model_version_tag(self.name, version, key, value)
            elif key in present:
                self.client.delete_model_version_tag(self.name, version, key)

    def model_tags(self) -> dict[str, str]:
        """The registered model's tags (empty when it does not exist)."""
        from mlflow.exceptions import MlflowException

        if self._missing():
            return {}
        try:
            return dict(self.client.get_registered_model(self.name).tags)
        except MlflowException:
            return {}

    def tag_model(self, tags: dict[str, str]) -> None:
        """Set tags of the registered model."""
        for key, value in tags.items():
            self.client.set_registered_model_tag(self.name, key, value)

    def where(self) -> str:
        """The tracking URI."""
        return self.tracking_uri


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
