"""The payload sink: where KServe's logger sends what the InferenceService served, written to the object store.

``python -m arrest_server.payload_sink`` (same image as the predictor; Deployment and Service ``payload-sink``
in ``manifests/platform/payload-sink.yaml``). The InferenceService's ``spec.predictor.logger`` (``mode: all``,
``url: http://payload-sink.models.svc.cluster.local/``) makes KServe's agent POST every request and response
as a CloudEvent in binary mode (KServe v0.20.0 ``pkg/logger/worker.go``: 5 workers, one POST per event, no
retry, no timeout). The sink answers at once (200) and keeps the event in memory; a writer thread writes what
arrived as one gzipped JSON Lines object (:mod:`chicago_arrest.monitoring.served_log`: the format and the key)
to the bucket :data:`chicago_arrest.core.names.SERVED_BUCKET` every ``flush_s`` seconds or ``flush_events``
events, and at shutdown (SIGTERM: uvicorn finishes the requests in flight, then the lifespan shutdown writes
the rest). A failed write keeps the events for the next one; beyond ``max_events`` the oldest are dropped and
counted in the log, so a store outage costs memory up to a bound, never the predictions (the agent does not
wait for a sink). ``make monitor SOURCE=serving`` on the cluster reads the objects.

Settings: ``ARREST_SINK_*`` (:class:`SinkSettings`); the store and its keys: ``ARREST_STORE_BACKEND``,
``ARREST_S3_*`` (the sink's own MinIO user, read-write on its bucket only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import logging
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chicago_arrest.monitoring.served_log import event_from_http, events_key, events_object

log = logging.getLogger("arrest_server.payload_sink")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class SinkSettings(BaseSettings):
    """The sink's knobs (environment variables with the prefix ``ARREST_SINK_``).

    Attributes:
        port: HTTP port.
        flush_s: Write what arrived at least this often.
        flush_events: Write as soon as this many events wait.
        max_events: Most events kept while the store cannot be written (the oldest go first).
        max_body_bytes: Largest event accepted (the predictor's own limit is 16 MiB).
    """

    model_config = SettingsConfigDict(env_prefix="ARREST_SINK_", extra="ignore")

    port: int = Field(default=8080, gt=0, lt=65536)
    flush_s: float = Field(default=10.0, gt=0)
    flush_events: int = Field(default=5_000, gt=0)
    max_events: int = Field(default=200_000, gt=0)
    max_body_bytes: int = Field(default=17 * 1024 * 1024, gt=0)


class PayloadSink:
    """ASGI app: CloudEvents in (binary mode), gzipped JSON Lines objects out (see the module).

    Args:
        store: The served bucket's object store.
        settings: Sink settings.
        writer: Name in the object keys (the pod's host name).
    """

    def __init__(self, store: Any, settings: SinkSettings | None = None, writer: str | None = None) -> None:
        self.store = store
        self.settings = settings or SinkSettings()
        self.writer = writer or socket.gethostname()
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seq = itertools.count()
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="payload-sink-writer", daemon=True)
        self._thread.start()

    # -- HTTP --------------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI: ``POST`` an event (200 at once, 400 not an event, 413 too large), ``GET`` answers ``ok``."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # readiness / liveness
            await _answer(send, 200, b"ok")
            return
        if scope["method"] != "POST":
            await _answer(send, 405, b"POST CloudEvents here")
            return
        body = await _read(receive, self.settings.max_body_bytes)
        if body is None:
            await _answer(send, 413, b"event larger than ARREST_SINK_MAX_BODY_BYTES")
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        event = event_from_http(headers, body)
        if not event.get("id") or not event.get("type"):
            await _answer(
                send, 400, b"not a CloudEvent in binary mode: ce-id and ce-type headers are required"
            )
            return
        with self._lock:
            self._events.append(event)
            full = len(self._events) >= self.settings.flush_events
        if full:
            self._wake.set()
        await _answer(send, 200, b"")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- writing -----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.flush_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()

    def flush(self) -> int:
        """Write every waiting event as one object; the number written (0 on failure: they wait for the next)."""
        with self._write_lock:
            with self._lock:
                events, self._events = self._events, []
            if not events:
                return 0
            now = dt.datetime.now(dt.UTC)
            key = events_key(now, self.writer, next(self._seq))
            try:
                self.store.put_bytes(key, events_object(events))
            except Exception as exc:
                with self._lock:
                    self._events[:0] = events
                    over = len(self._events) - self.settings.max_events
                    if over > 0:
                        del self._events[:over]
                        self.dropped += over
                log.error(
                    "could not write %d event(s) to %s (%s: %s); kept for the next write, %d dropped so far",
                    len(events),
                    self.store.uri(key),
                    type(exc).__name__,
                    exc,
                    self.dropped,
                )
                return 0
            self.written += len(events)
            log.info("wrote %d event(s) to %s", len(events), self.store.uri(key))
            return len(events)

    def close(self) -> None:
        """Stop the writer thread and write what is left (safe to repeat)."""
        if not self._stop.is_set():
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=max(self.settings.flush_s, 5.0))
        self.flush()


async def _read(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink until SIGTERM / SIGINT (then write what is left)."""
    import uvicorn

    from chicago_arrest.core.names import SERVED_BUCKET
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.core.store import make_store

    settings = SinkSettings()
    parser = argparse.ArgumentParser(
        prog="python -m arrest_server.payload_sink", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=settings.port, help="HTTP port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = make_store(Settings(), bucket=SERVED_BUCKET)
    app = PayloadSink(store, settings)
    log.info("payload sink on :%d, writing to %s every %g s", args.port, store.uri(), settings.flush_s)
    started = time.monotonic()
    uvicorn.run(app, host="0.0.0.0", port=args.port, lifespan="on", access_log=False, log_level="warning")
    log.info(
        "stopped after %.0f s: %d event(s) written, %d dropped",
        time.monotonic() - started,
        app.written,
        app.dropped,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
