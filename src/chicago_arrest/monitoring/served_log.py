"""What was served, read from where it was logged: the local request log, or KServe's logger on the cluster.

Two writers, one table of served records (:data:`SERVED_COLUMNS` next to the raw fields the request carried):

* ``make serve`` writes its request log (``arrest_server.request_log``): Parquet files under
  ``<data dir>/serving/requests``, one row per scored record, typed.
* On the cluster, KServe's agent (the InferenceService's ``spec.predictor.logger``, ``mode: all``) posts every
  request and response as a CloudEvent in binary mode to the payload sink (``arrest_server.payload_sink``),
  which writes them, unchanged, as gzipped JSON Lines objects under :data:`EVENTS_PREFIX` of the bucket
  :data:`chicago_arrest.core.names.SERVED_BUCKET`: one line per event in the CloudEvents JSON format
  (:func:`event_from_http`). What the agent sends, at KServe v0.20.0 (``pkg/logger/handler.go`` and
  ``worker.go``, cloudevents sdk-go v2.16.2 ``protocol/http``):

  * headers ``Ce-Id`` (shared by a request and its response; the incoming ``Ce-Id``, else a UUID),
    ``Ce-Type`` ``org.kubeflow.serving.inference.request`` / ``.response``, ``Ce-Source`` (the pod's name),
    ``Ce-Time`` (RFC 3339, UTC), ``Ce-Specversion`` ``1.0``, the extensions ``Ce-Inferenceservicename``,
    ``Ce-Namespace``, ``Ce-Component``, ``Ce-Endpoint``, ``Ce-Metadata``, ``Ce-Recordedtime``, and
    ``Content-Type`` (the request's, on both events);
  * the body: the raw request or response body;
  * a response event only when the predictor answered 200; events of one request may arrive in any order;
    every HTTP request through the agent is logged (metadata GETs too, with an empty body).

  :func:`read_events` pairs a request with its response by ``(source, id)`` and reads the records from the
  V2 (``content_type: "pd"``) or V1 body and the probabilities and the version from the response.

Bad or late input is reported, never fatal: an object or file that cannot be read, a line that is not an
event, a body that is not a readable inference request, a request whose response never came, are counted in
:attr:`ServedLog.problems` and skipped. The role (champion / challenger) of a cluster record is not in the log
(each revision serves one version); :mod:`chicago_arrest.monitoring.realised` gives it from the registry.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from chicago_arrest.core.parsing import parse_timestamps
from chicago_arrest.core.schema import DATE, LABEL, RECORD_KEYS

log = logging.getLogger(__name__)

#: Key prefix of the payload sink's objects in the served bucket.
EVENTS_PREFIX = "events/"
REQUEST_EVENT = "org.kubeflow.serving.inference.request"
RESPONSE_EVENT = "org.kubeflow.serving.inference.response"
#: CloudEvents attributes the sink keeps (HTTP binary mode: header ``ce-<name>``), besides ``datacontenttype``.
EVENT_ATTRIBUTES = (
    "specversion",
    "id",
    "type",
    "source",
    "time",
    "recordedtime",
    "inferenceservicename",
    "namespace",
    "component",
    "endpoint",
    "metadata",
)
#: What a served record has besides the raw fields of its request (the request log's own columns).
SERVED_COLUMNS = (
    *RECORD_KEYS,
    "arrest_probability",
    "predicted_arrest",
    "model_version",
    "role",
    "request_id",
    "logged_at",
)
REQUEST_LOG_GLOB = "requests-*.parquet"


def request_log_dir(data_dir: Path) -> Path:
    """Folder of the local model server's request log (``<data dir>/serving/requests``)."""
    return Path(data_dir) / "serving" / "requests"


@dataclass
class ServedLog:
    """Served records and what could not be read.

    Attributes:
        records: One row per served record: the raw fields its request carried and :data:`SERVED_COLUMNS`
            (``role`` is null for cluster records).
        problems: One line per thing skipped (an unreadable object, a body that is not an inference
            request, ...), with counts.
        sources: Where the records came from (for the report).
    """

    records: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------------
# The payload sink's format (written by arrest_server.payload_sink, read here)
# ------------------------------------------------------------------------------------------------------------


def event_from_http(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """One CloudEvent (JSON format) from an HTTP request in binary content mode.

    Args:
        headers: The request's headers, names in any case.
        body: The request's body (``data``: embedded when it is JSON, else ``data_base64``).

    Returns:
        ``{"specversion", "id", "type", "source", ..., "datacontenttype", "data" | "data_base64"}`` with the
        attributes that were present.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    event: dict[str, Any] = {name: lower[f"ce-{name}"] for name in EVENT_ATTRIBUTES if f"ce-{name}" in lower}
    if "content-type" in lower:
        event["datacontenttype"] = lower["content-type"]
    if body:
        try:
            event["data"] = orjson.loads(body)
        except orjson.JSONDecodeError:
            import base64

            event["data_base64"] = base64.b64encode(body).decode("ascii")
    return event


def events_object(events: Iterable[dict[str, Any]]) -> bytes:
    """Events as one object: JSON Lines, gzipped."""
    return gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in events), compresslevel=5)


def events_key(now: dt.datetime, writer: str, seq: int) -> str:
    """``events/<UTC date>/<writer>-<UTC time>-<seq>.jsonl.gz``: a day per folder, names sort by time."""
    return f"{EVENTS_PREFIX}{now:%Y-%m-%d}/{writer}-{now:%Y%m%dT%H%M%S%f}-{seq}.jsonl.gz"


# ------------------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------------------


def read_request_log(folder: Path) -> tuple[list[pd.DataFrame], list[str]]:
    """The local request log's files (each one frame) and the files that could not be read."""
    frames, problems = [], []
    for path in sorted(Path(folder).glob(REQUEST_LOG_GLOB)):
        try:
            frames.append(pd.read_parquet(path))
        except Exception as exc:  # a truncated or foreign file must not stop monitoring
            problems.append(
                f"request log file {path.name} skipped: not readable ({type(exc).__name__}: {exc})"
            )
    return frames, problems


def read_events(store: Any, prefix: str = EVENTS_PREFIX) -> tuple[pd.DataFrame, list[str]]:
    """Served records from the payload sink's objects under ``prefix`` of ``store``.

    Returns:
        The records (``role`` null) and one line per problem (objects, lines, requests skipped).
    """
    problems: list[str] = []
    events: list[dict[str, Any]] = []
    bad_lines = 0
    for key in store.list_keys(prefix):
        try:
            lines = gzip.decompress(store.get_bytes(key)).splitlines()
        except Exception as exc:
            problems.append(f"logger object {key} skipped: not readable ({type(exc).__name__}: {exc})")
            continue
        for line in lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                bad_lines += 1
                continue
            if isinstance(event, dict) and event.get("id") and event.get("type"):
                events.append(event)
            else:
                bad_lines += 1
    if bad_lines:
        problems.append(f"{bad_lines} logger line(s) skipped: not a CloudEvent with an id and a type")
    frame, more = records_from_events(events)
    return frame, problems + more


def records_from_events(events: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """Pair request and response events and read their records (see the module)."""
    requests: dict[tuple[str, str], dict[str, Any]] = {}
    responses: dict[tuple[str, str], dict[str, Any]] = {}
    duplicates = 0
    for event in events:
        kind = event.get("type")
        target = requests if kind == REQUEST_EVENT else responses if kind == RESPONSE_EVENT else None
        if target is None:
            continue
        pair = (str(event.get("source", "")), str(event["id"]))
        if pair in target:
            duplicates += 1  # the same event delivered twice
            continue
        target[pair] = event
    table = _Table()
    counts = {"no response": 0, "unreadable request": 0, "unreadable response": 0, "rows disagree": 0}
    for pair, request in requests.items():
        data = request.get("data")
        if data is None and "data_base64" not in request:
            continue  # no body: not an inference (a metadata or health GET through the agent)
        response = responses.get(pair)
        if response is None:
            counts["no response"] += 1  # not answered 200, or its event was lost
            continue
        columns, rows = _request_columns(data)
        if columns is None:
            counts["unreadable request"] += 1
            continue
        answer = _response_values(response.get("data"))
        if answer is None:
            counts["unreadable response"] += 1
            continue
        probabilities, version, request_id = answer
        if len(probabilities) != rows:
            counts["rows disagree"] += 1
            continue
        served: dict[str, list[Any]] = {
            "arrest_probability": probabilities,
            "predicted_arrest": [None] * rows,
            "model_version": [version] * rows,
            "role": [None] * rows,
            "request_id": [request_id or pair[1]] * rows,
            "logged_at": [request.get("time") or request.get("recordedtime")] * rows,
        }
        table.add({**columns, **served}, rows)
    orphans = len(set(responses) - set(requests))
    problems = [
        f"{n} logged request(s) skipped: {what}"
        for what, n in (
            ("no response event (not answered 200, or the event was lost)", counts["no response"]),
            (
                "the body is not a JSON V2 (content_type pd) or V1 inference request",
                counts["unreadable request"],
            ),
            ("the response has no arrest_probability / predictions", counts["unreadable response"]),
            ("the response has another number of records than the request", counts["rows disagree"]),
        )
        if n
    ]
    if orphans:
        problems.append(f"{orphans} response event(s) without their request event skipped")
    if duplicates:
        problems.append(f"{duplicates} duplicate event(s) (same source, id and type) counted once")
    return _served_frame(table.frame()), problems


class _Table:
    """Columns grown request by request (a column first seen later is null before)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.rows = 0

    def add(self, columns: Mapping[str, list[Any]], rows: int) -> None:
        for name, values in columns.items():
            if name not in self.columns:
                self.columns[name] = [None] * self.rows
            self.columns[name].extend(values)
        self.rows += rows
        for values in self.columns.values():
            if len(values) < self.rows:
                values.extend([None] * (self.rows - len(values)))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in self.columns.items()})


def _flat(data: Any) -> list[Any] | None:
    if not isinstance(data, list):
        return None
    if data and all(isinstance(v, list) for v in data):  # [[v], [v]]: shape [n, 1]
        data = [x for v in data for x in v]
    return data


def _request_columns(body: Any) -> tuple[dict[str, list[Any]] | None, int]:
    """The fields of a V2 ``pd`` or V1 request body, one list per field, and the number of records."""
    if isinstance(body, dict) and isinstance(body.get("inputs"), list):
        columns: dict[str, list[Any]] = {}
        for item in body["inputs"]:
            values = _flat(item.get("data")) if isinstance(item, dict) else None
            if values is None or not isinstance(item.get("name"), str):
                return None, 0
            columns[item["name"]] = values
        sizes = {len(v) for v in columns.values()}
        return (columns, sizes.pop()) if len(sizes) == 1 else (None, 0)
    if isinstance(body, dict) and isinstance(body.get("instances"), list):
        rows = body["instances"]
        if not all(isinstance(r, dict) for r in rows):
            return None, 0
        names = dict.fromkeys(k for r in rows for k in r)
        return {name: [r.get(name) for r in rows] for name in names}, len(rows)
    return None, 0


def _response_values(body: Any) -> tuple[list[float], str, str | None] | None:
    """Probabilities, model version and request id of a V2 or V1 response body."""
    if not isinstance(body, dict):
        return None
    version, request_id = str(body.get("model_version") or ""), body.get("id")
    if isinstance(body.get("outputs"), list):
        for out in body["outputs"]:
            if isinstance(out, dict) and out.get("name") == "arrest_probability":
                values = _flat(out.get("data"))
                return (values, version, request_id) if values is not None else None
        return None
    if isinstance(body.get("predictions"), list):
        return body["predictions"], version, request_id
    return None


def key_text(values: pd.Series) -> pd.Series:
    """A report key as text (``123`` and ``"123"`` alike), null where empty: how records are joined."""

    def one(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        text = str(v).strip()
        return text or None

    return values.map(one).astype("string")


def _served_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The common layout: every served column present, keys as text, ``date`` parsed, times UTC, no label."""
    out = frame.drop(columns=[LABEL], errors="ignore").copy()  # a label sent by a client is not the truth
    if DATE in out.columns:  # as the model reads it (the request log has it parsed, the events as text)
        out[DATE] = parse_timestamps(out[DATE]).values
    for name in SERVED_COLUMNS:
        if name not in out.columns:
            out[name] = pd.Series([None] * len(out), dtype=object, index=out.index)
    for name in RECORD_KEYS:
        out[name] = key_text(out[name])
    out["arrest_probability"] = pd.to_numeric(out["arrest_probability"], errors="coerce")
    out["model_version"] = out["model_version"].astype("string")
    out["role"] = out["role"].astype("string")
    out["request_id"] = out["request_id"].astype("string")
    out["logged_at"] = pd.to_datetime(out["logged_at"], utc=True, errors="coerce", format="ISO8601")
    return out.reset_index(drop=True)


def load_served(data_dir: Path, events_store: Any = None) -> ServedLog:
    """Every served record: the local request log under ``data_dir`` and the logger's objects in ``events_store``.

    Args:
        data_dir: The library's data directory (its ``serving/requests`` folder).
        events_store: The served bucket's store (None: the request log only). A store that cannot be listed
            is a problem, not an error.

    Raises:
        FileNotFoundError: When neither holds a served record.
    """
    folder = request_log_dir(data_dir)
    frames, problems = read_request_log(folder)
    sources = [f"request log {folder} ({len(frames)} file(s))"] if frames else []
    if events_store is not None:
        try:
            events, more = read_events(events_store)
        except Exception as exc:  # an unreachable bucket: report it, still use the local log
            events, more = (
                pd.DataFrame(),
                [f"logger objects at {events_store.uri(EVENTS_PREFIX)} not listed: {exc}"],
            )
        problems += more
        if len(events):
            frames.append(events)
            sources.append(
                f"KServe logger events {events_store.uri(EVENTS_PREFIX)} ({len(events):,} records)"
            )
    records = [_served_frame(f) for f in frames if len(f)]
    if not records:
        where = f"no request log under {folder}"
        if events_store is not None:
            where += f" and no KServe logger event under {events_store.uri(EVENTS_PREFIX)}"
        raise FileNotFoundError(
            f"no served records ({where}): serve with `make serve` (ARREST_SERVER_REQUEST_LOG on) and send "
            "requests; on the cluster the InferenceService's logger posts to the payload sink"
            + (f" ({'; '.join(problems)})" if problems else "")
        )
    frame = pd.concat(records, ignore_index=True) if len(records) > 1 else records[0]
    return ServedLog(frame, problems, sources)
