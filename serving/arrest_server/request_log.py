"""The request log of the local model server: every scored record, rotating Parquet files, size-capped.

Each scored record is kept with its raw fields (as text), the report's ``id`` and ``case_number`` when the
request carried them (else null: such a record is profiled but never joined with its label),
``arrest_probability``, ``predicted_arrest`` (not ``arrest``, the label's name: monitoring would take the
model's own answer for the truth), ``model_version``, ``role`` (champion / challenger), ``request_id`` and
``logged_at``. A request only appends
a reference to its frame to an in-memory buffer (microseconds); a background thread writes the buffer to a
new file ``<dir>/requests-<pid>-<UTC time>-<n>.parquet`` every ``flush_s`` seconds or ``flush_rows`` rows,
and at shutdown; it converts the buffered records to typed frames a slice at a time in between, so no
request waits behind a large conversion. After each write the oldest files go until the folder is under
``max_bytes``: the log rotates by file and never grows without bound. Every worker process writes its own files.

``make monitor SOURCE=serving`` profiles the folder (``<data dir>/serving/requests``) and joins it with the
labels (:mod:`chicago_arrest.monitoring.realised`). On by default; ``ARREST_SERVER_REQUEST_LOG=false`` turns it
off. On a cluster, KServe's InferenceService ``logger`` sends every request and response as CloudEvents to the
payload sink (:mod:`arrest_server.payload_sink`) instead, and the monitor reads the same records from there.
"""

from __future__ import annotations

import atexit
import datetime as dt
import io
import itertools
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chicago_arrest.core.files import write_atomically
from chicago_arrest.core.schema import RECORD_KEYS

log = logging.getLogger(__name__)

FILE_GLOB = "requests-*.parquet"


class RequestLog:
    """Buffered, rotating Parquet log of scored records.

    Args:
        folder: Where the files go (created).
        max_bytes: Most bytes the folder's log files may take; the oldest are deleted beyond it.
        flush_rows: Write when this many records are buffered.
        flush_s: Write at least this often while records are buffered.
        convert_s: How often the writer converts what requests buffered (spreads the work; see ``_convert``).
        convert_slice: Most requests converted in one go.
    """

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        flush_rows: int = 5_000,
        flush_s: float = 10.0,
        convert_s: float = 0.2,
        convert_slice: int = 64,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes, self.flush_rows, self.flush_s = max_bytes, flush_rows, flush_s
        self.convert_s, self.convert_slice = convert_s, convert_slice
        self._buffer: list[tuple[Any, ...]] = []
        self._rows = 0
        self._converted: list[pd.DataFrame] = []
        self._converted_rows = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def append(
        self,
        records: pd.DataFrame | Mapping[str, Any],
        probabilities: np.ndarray,
        arrest: np.ndarray,
        *,
        model_version: str,
        role: str,
        request_id: str,
        keys: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Buffer the records of one request (never raises; a failure is logged and the records dropped).

        ``records`` is a frame, or the request's parsed columns (field → numpy array), which the writer joins
        column by column instead of frame by frame (see :func:`_joined_columns`). ``keys`` holds the report's
        ``id`` / ``case_number`` per record when the request carried them.
        """
        try:
            # References only (the records are the request's own parsed copy): the table is built by the writer.
            now = dt.datetime.now(dt.UTC)
            entry = (records, probabilities, arrest, model_version, role, request_id, now, keys)
            with self._lock:
                self._buffer.append(entry)
                self._rows += len(probabilities)
                full = self._rows >= self.flush_rows
            if full:
                self._wake.set()
        except Exception:  # the log must never fail a request
            log.exception("request log: could not buffer request %s", request_id)

    def _run(self) -> None:
        last_write = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.convert_s)
            self._wake.clear()
            with self._flush_lock:
                self._convert()
                if self._converted_rows >= self.flush_rows or time.monotonic() - last_write >= self.flush_s:
                    self._write()
                    last_write = time.monotonic()

    def _convert(self) -> None:
        """Turn what requests buffered since the last call into typed frames, a slice at a time.

        Converting holds the GIL (~28 µs a request joined by column, :func:`_joined_columns`, of which ~4 µs the
        report keys added in issue 26 (measured interleaved, 23.5 -> 27-29 µs CPU); 50–80 µs by
        ``pd.concat`` of one small frame per request). Done in one go at each write, 3,000 buffered records held
        the process for 150–240 ms every 10 s, and the requests waiting behind it set the server's p99
        (docs/benchmarks.md). Here it runs every ``convert_s`` on at most ``convert_slice`` requests at a time,
        yielding between slices.
        """
        with self._lock:
            batches, self._buffer, self._rows = self._buffer, [], 0
        for start in range(0, len(batches), self.convert_slice):
            part = batches[start : start + self.convert_slice]
            try:
                frame = self._frame(part)
            except Exception:
                log.exception("request log: could not convert %d records", sum(len(b[1]) for b in part))
                continue
            self._converted.append(frame)
            self._converted_rows += len(frame)
            time.sleep(0)  # let the request threads run between slices

    @staticmethod
    def _frame(batches: list[tuple[Any, ...]]) -> pd.DataFrame:
        frame = _joined_columns([b[0] for b in batches])
        if frame is None:
            frames = [b[0] if isinstance(b[0], pd.DataFrame) else pd.DataFrame(dict(b[0])) for b in batches]
            frame = pd.concat(frames, ignore_index=True)
        sizes = [len(b[1]) for b in batches]
        for name in RECORD_KEYS:  # always present (null when a request did not carry them): one table layout
            frame[name] = np.concatenate([_key(b[7], name, n) for b, n in zip(batches, sizes, strict=True)])
        frame["arrest_probability"] = np.concatenate([np.asarray(b[1], dtype=float) for b in batches])
        frame["predicted_arrest"] = np.concatenate([np.asarray(b[2], dtype=bool) for b in batches])
        for column, index in (("model_version", 3), ("role", 4), ("request_id", 5), ("logged_at", 6)):
            frame[column] = np.repeat(np.array([b[index] for b in batches], dtype=object), sizes)
        frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
        return frame

    def _write(self) -> Path | None:
        """Write the converted frames to a new file and rotate."""
        frames, self._converted, self._converted_rows = self._converted, [], 0
        if not frames:
            return None
        try:
            frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            raw = [c for c in frame.columns if frame[c].dtype == object]
            frame[raw] = frame[raw].astype("string")
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
            path = self.folder / f"requests-{os.getpid()}-{stamp}-{next(self._seq)}.parquet"
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            write_atomically(path, buffer.getvalue())
            self.rotate()
            return path
        except Exception:
            log.exception("request log: could not write %d records", sum(len(f) for f in frames))
            return None

    def flush(self) -> Path | None:
        """Write every buffered record to a new file now and rotate; the file, or None when nothing was buffered.

        Called by the writer thread's own schedule and at shutdown; not concurrently with itself.
        """
        with self._flush_lock:
            self._convert()
            return self._write()

    def rotate(self) -> list[Path]:
        """Delete the oldest log files until the folder is under ``max_bytes``; the files deleted."""
        files = sorted(self.folder.glob(FILE_GLOB), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        deleted = []
        while files and total > self.max_bytes:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)
            deleted.append(oldest)
        return deleted

    def close(self) -> None:
        """Stop the writer and write what is buffered."""
        if not self._stop.is_set():
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=5)
            self.flush()


def _key(keys: Mapping[str, np.ndarray] | None, name: str, rows: int) -> np.ndarray:
    """One request's values of a report key, or ``None`` per record when it did not carry it."""
    if keys is not None and name in keys:
        return np.asarray(keys[name], dtype=object)
    return np.full(rows, None, dtype=object)


def _joined_columns(requests: list[pd.DataFrame | Mapping[str, Any]]) -> pd.DataFrame | None:
    """The requests' columns joined array by array; ``None`` unless all have the same fields and dtypes.

    Every request must carry its columns as numpy arrays of the same fields and dtypes; otherwise the caller
    concatenates frames. One ``pd.concat`` over one-row frames cost ~110 µs a request, and while the
    writer thread held the GIL for it the event loop waited: a 10 ms slice delayed requests by up to ~300 ms
    at 350 requests/s (docs/benchmarks.md). ``np.concatenate`` per column builds the same table for a
    fraction of that.
    """
    first = requests[0]
    names = list(first)
    for columns in requests:
        if isinstance(columns, pd.DataFrame) or list(columns) != names:
            return None
        for name in names:
            values = columns[name]
            if not isinstance(values, np.ndarray) or values.dtype != first[name].dtype:
                return None
    joined = {name: np.concatenate([c[name] for c in requests]) for name in names}
    return pd.DataFrame(joined)


def open_request_log(settings: Any, data_dir: Path) -> RequestLog | None:
    """The request log of one server process under ``<data_dir>/serving/requests``, or ``None`` when it is off.

    Each process (the server and every ``--workers`` process) opens its own: the predictor that serves in the
    process owns it and closes it when it stops.

    Args:
        settings: Server settings (``request_log``, ``request_log_max_mb``, ``request_log_flush_s``).
        data_dir: The library's data directory.
    """
    if not settings.request_log:
        return None
    return RequestLog(
        Path(data_dir) / "serving" / "requests",
        max_bytes=int(settings.request_log_max_mb * 1024 * 1024),
        flush_s=float(settings.request_log_flush_s),
    )
