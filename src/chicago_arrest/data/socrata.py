"""Socrata (SODA 2) client for the City of Chicago data portal, on top of ``sodapy``.

Paged, ordered queries (``$limit`` / ``$offset`` / ``$order``). urllib3's :class:`~urllib3.util.Retry`, mounted
on sodapy's ``requests`` session (:func:`retrying_adapter`), retries HTTP 429, 5xx, time-outs and connection
errors with exponential back-off and jitter, honouring ``Retry-After``; any other 4xx fails at once. Results
come back as DataFrames with the Socrata field names as columns and the values as the API sent them (text).

Pass ``client=`` (any object with a sodapy-like ``get(dataset_identifier, **params)``) to use another transport;
tests point a real sodapy client with :func:`retrying_adapter` at a local HTTP stand-in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from types import TracebackType
from typing import Any, Protocol

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from chicago_arrest.core.errors import ArrestError
from chicago_arrest.core.schema import RAW_COLUMNS
from chicago_arrest.core.settings import Settings

logger = logging.getLogger(__name__)

#: Stable paging order: Socrata's row identifier, unique and immutable.
DEFAULT_ORDER = ":id"
#: Column order of the "Police Stations" dataset (z8bn-74gv), ``location`` left out.
STATION_COLUMNS: tuple[str, ...] = (
    "district",
    "district_name",
    "address",
    "city",
    "state",
    "zip",
    "website",
    "phone",
    "fax",
    "tty",
    "x_coordinate",
    "y_coordinate",
    "latitude",
    "longitude",
)
#: Fields dropped from every result: the point column that repeats latitude / longitude.
DROPPED_FIELDS = frozenset({"location"})
#: Statuses worth retrying: 429 Too Many Requests and every 5xx.
RETRY_STATUSES = frozenset({429, *range(500, 600)})


class SocrataError(ArrestError):
    """A Socrata request failed for good (non-retryable status, or retries exhausted)."""


class SodaClient(Protocol):
    """What the client needs from ``sodapy.Socrata``: a ``get`` that returns the decoded JSON rows."""

    def get(self, dataset_identifier: str, **kwargs: Any) -> Any:
        """Run one SODA query (``where``, ``order``, ``limit``, ``offset``, ...) and return its rows."""
        ...


def retrying_adapter(settings: Settings) -> HTTPAdapter:
    """A ``requests`` adapter that retries up to ``settings.socrata_max_retries`` times.

    Retried: :data:`RETRY_STATUSES`, connection errors and time-outs. Waits ``Retry-After`` when the server
    sends it; else the first retry is immediate, then 2, 4, 8, ... s (capped at 60 s) plus up to 1 s of jitter.
    """
    retries = settings.socrata_max_retries
    return HTTPAdapter(
        max_retries=Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=1.0,
            backoff_max=60.0,
            backoff_jitter=1.0,
            status_forcelist=RETRY_STATUSES,
            respect_retry_after_header=True,
            raise_on_status=False,  # the last answer reaches sodapy, whose error carries the server's message
        )
    )


def soql_window(start: date, end: date, field: str = "date") -> str:
    """Return the SoQL ``$where`` of a half-open date window ``[start, end)`` on a floating timestamp.

    Args:
        start: First day (inclusive).
        end: Day after the last (exclusive).
        field: Timestamp field.

    Returns:
        E.g. ``date >= '2017-01-01T00:00:00' AND date < '2017-02-01T00:00:00'``.
    """
    return f"{field} >= '{start:%Y-%m-%d}T00:00:00' AND {field} < '{end:%Y-%m-%d}T00:00:00'"


def _flatten(value: Any) -> Any:
    """JSON values as text: booleans to ``true``/``false``, a URL object to its URL, others to JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        if set(value) <= {"url", "description"} and "url" in value:
            return value["url"]
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list):
        return json.dumps(value)
    return value


def records_to_frame(
    records: Iterable[dict[str, Any]], column_order: Sequence[str] = RAW_COLUMNS
) -> pd.DataFrame:
    """Build a DataFrame from SODA JSON rows.

    Drops ``location`` and every ``:``-prefixed system / computed field (``:@computed_region_*``, ``:id``);
    puts the columns of ``column_order`` first (those present), the others after in order of appearance.
    Values are kept as sent (Socrata sends text); JSON booleans become ``true`` / ``false`` like the CSV
    export, nested objects become text (a URL object its URL, others JSON).

    Args:
        records: Rows as decoded JSON objects; a field missing from a row is null.
        column_order: Preferred leading columns.

    Returns:
        The frame (``object`` columns). An empty input gives an empty frame with the ``column_order`` columns.
    """
    rows = [
        {k: _flatten(v) for k, v in rec.items() if k not in DROPPED_FIELDS and not k.startswith(":")}
        for rec in records
    ]
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype="object") for c in column_order})
    frame = pd.DataFrame.from_records(rows)
    first = [c for c in column_order if c in frame.columns]
    rest = [c for c in frame.columns if c not in set(first)]
    return frame[first + rest]


class SocrataClient:
    """Paged, retrying reader of the crimes and police-stations datasets.

    Args:
        settings: Domain, dataset ids, app token, timeout, page size and retry count (default: from the
            environment).
        client: A sodapy-like object to use instead of building ``sodapy.Socrata`` with
            :func:`retrying_adapter`.
    """

    def __init__(self, settings: Settings | None = None, *, client: SodaClient | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._client = client
        self._owns_client = client is None

    def __repr__(self) -> str:
        return f"SocrataClient(domain={self.settings.socrata_domain!r})"

    def __enter__(self) -> SocrataClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def source(self) -> str:
        """Where the crimes come from, e.g. ``socrata:https://data.cityofchicago.org/resource/ijzp-q8t2``."""
        return f"socrata:https://{self.settings.socrata_domain}/resource/{self.settings.crimes_dataset_id}"

    def close(self) -> None:
        """Close the HTTP session of the sodapy client this object built (not an injected one)."""
        if self._owns_client and self._client is not None:
            close = getattr(self._client, "close", None)
            if callable(close):
                close()
            self._client = None

    def _soda(self) -> SodaClient:
        if self._client is None:
            from sodapy import Socrata

            token = self.settings.socrata_app_token
            self._client = Socrata(
                self.settings.socrata_domain,
                token.get_secret_value() if token is not None else None,
                session_adapter={"prefix": "https://", "adapter": retrying_adapter(self.settings)},
                timeout=self.settings.socrata_timeout_s,
            )
            logger.debug(
                "sodapy client for %s (app token: %s)", self.settings.socrata_domain, "yes" if token else "no"
            )
        return self._client

    def get(self, dataset_id: str, **params: Any) -> list[dict[str, Any]]:
        """Run one SODA query (retried by the session, see :func:`retrying_adapter`).

        Args:
            dataset_id: Socrata dataset identifier.
            **params: sodapy query arguments (``where``, ``order``, ``limit``, ``offset``, ...).

        Returns:
            The rows.

        Raises:
            SocrataError: On a non-retryable HTTP status (4xx other than 429), an unexpected response, or when
                ``socrata_max_retries`` retries did not help.
        """
        what = f"Socrata query of {self.settings.socrata_domain}/{dataset_id} ({_describe(params)})"
        attempts = f"after {self.settings.socrata_max_retries + 1} attempt(s)"
        try:
            result = self._soda().get(dataset_id, **params)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in RETRY_STATUSES:
                raise SocrataError(f"{what} failed with HTTP {status} {attempts}: {exc}") from exc
            raise SocrataError(f"{what} failed with HTTP {status}, not retrying: {exc}") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SocrataError(f"{what} failed {attempts}; last error: {type(exc).__name__}: {exc}") from exc
        except requests.RequestException as exc:
            raise SocrataError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, list):
            raise SocrataError(f"{what} returned {type(result).__name__}, expected a JSON array of rows")
        return result

    def fetch_pages(
        self, dataset_id: str, *, where: str | None = None, order: str = DEFAULT_ORDER, label: str = ""
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the pages of an ordered query until a short page.

        Args:
            dataset_id: Socrata dataset identifier.
            where: SoQL ``$where``.
            order: SoQL ``$order`` (a stable, unique key keeps pages disjoint).
            label: What is fetched, for the progress log.

        Yields:
            Each page's rows (the last one may be empty).
        """
        limit = self.settings.socrata_page_size
        offset = 0
        page = 0
        while True:
            params: dict[str, Any] = {"order": order, "limit": limit, "offset": offset}
            if where is not None:
                params["where"] = where
            rows = self.get(dataset_id, **params)
            page += 1
            offset += len(rows)
            logger.info("%s: page %d, %d rows so far", label or dataset_id, page, offset)
            yield rows
            if len(rows) < limit:
                return

    def fetch_crimes(self, start: date, end: date) -> pd.DataFrame:
        """Fetch every crime with ``start <= date < end`` (Chicago local time).

        Args:
            start: First day (inclusive).
            end: Day after the last (exclusive).

        Returns:
            One row per record, Socrata field names, :data:`~chicago_arrest.core.schema.RAW_COLUMNS` first.

        Raises:
            SocrataError: When a page fails for good (nothing partial is returned).
            ValueError: When ``end`` is not after ``start``.
        """
        if end <= start:
            raise ValueError(f"empty window: end {end} is not after start {start}")
        records: list[dict[str, Any]] = []
        label = f"crimes {start:%Y-%m-%d}..{end:%Y-%m-%d}"
        for rows in self.fetch_pages(
            self.settings.crimes_dataset_id, where=soql_window(start, end), label=label
        ):
            records.extend(rows)
        return records_to_frame(records, RAW_COLUMNS)

    def fetch_boundaries(self, dataset_id: str) -> bytes:
        """Fetch a boundary dataset as GeoJSON (the portal's geospatial export; retried like the queries).

        Args:
            dataset_id: :attr:`Settings.districts_dataset_id` or :attr:`Settings.community_areas_dataset_id`.

        Returns:
            The GeoJSON bytes.

        Raises:
            SocrataError: When the export fails for good.
        """
        url = f"https://{self.settings.socrata_domain}/api/geospatial/{dataset_id}"
        if not self._owns_client:  # an injected (test) client: no network behind its back
            geojson = getattr(self._client, "geojson", None)
            if geojson is None:
                raise SocrataError(f"{url}: the injected client has no geojson(dataset_id); not fetched")
            return bytes(geojson(dataset_id))
        with requests.Session() as session:
            session.mount("https://", retrying_adapter(self.settings))
            try:
                response = session.get(
                    url,
                    params={"method": "export", "format": "GeoJSON"},
                    timeout=self.settings.socrata_timeout_s,
                )
                response.raise_for_status()
            except requests.RequestException as exc:
                raise SocrataError(f"GeoJSON export of {url} failed: {type(exc).__name__}: {exc}") from exc
        return response.content

    def fetch_stations(self) -> pd.DataFrame:
        """Fetch the police stations.

        Returns:
            One row per station, columns of :data:`STATION_COLUMNS` first.
        """
        records: list[dict[str, Any]] = []
        for rows in self.fetch_pages(self.settings.stations_dataset_id, label="police stations"):
            records.extend(rows)
        return records_to_frame(records, STATION_COLUMNS)


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"${k}={v}" for k, v in params.items())
