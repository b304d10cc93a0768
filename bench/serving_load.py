"""A lean open-loop HTTP load generator for the serving benchmarks (asyncio streams, keep-alive connections).

Open loop: request ``i`` is sent at ``start + i / rate`` whether or not earlier ones were answered, and its
latency counts from that scheduled time, so a server that falls behind is charged for its queue. Requests go
over ``connections`` keep-alive connections opened up front and used in turn (like that many clients; one more
is opened whenever all are busy): a server with several worker processes gets the connections spread over its
workers by the kernel, as it would from many clients. The client
is one asyncio loop writing prebuilt HTTP/1.1 requests (no HTTP library on the hot path): on 2 shared cores
it costs a few percent of one core at 500 requests/s, little next to the servers it measures.

The client's own garbage collector is kept out of the measurement (:func:`no_gc_pauses`): with pandas and
MLflow imported it tracks ~280,000 objects, and a full collection, which the tasks of a step trigger every
few steps, paused it for up to ~170 ms; every request scheduled meanwhile counted as late, and one such pause
in a 10 s step decided its p99 for the server under test.

Used by :mod:`bench.bench_serving_capacity` and :mod:`bench.soak_serving`; nothing here is a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np


def build_request(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """One raw HTTP/1.1 POST (keep-alive) to ``url`` with a JSON ``body``."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Outcome:
    """What one open-loop run saw.

    Attributes:
        rate: Scheduled requests per second.
        seconds: Scheduled duration.
        sent: Requests scheduled and written.
        latencies: Seconds from scheduled send to the end of the response, per answered request.
        scheduled: Seconds from the start of the schedule to each answered request's send, in the order of
            ``latencies`` (where in the run a slow answer was).
        statuses: HTTP status → count (``0``: no answer: connection error or client time-out).
        headers: Values of ``watch_header`` in the answers → count.
        elapsed: Wall time of the run, until the last answer.
    """

    rate: float
    seconds: float
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    scheduled: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    headers: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def errors(self) -> int:
        """Requests not answered 200 (including those not answered at all)."""
        return self.sent - self.statuses.get(200, 0)

    @property
    def dropped(self) -> int:
        """Requests that got no HTTP answer at all."""
        return self.statuses.get(0, 0)

    def summary(self) -> dict[str, Any]:
        """Rate, counts and latency percentiles (ms)."""
        lat = np.asarray(self.latencies) * 1000 if self.latencies else np.asarray([np.nan])
        return {
            "rate_rps": self.rate,
            "seconds": self.seconds,
            "sent": self.sent,
            "errors": self.errors,
            "dropped": self.dropped,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "achieved_rps": round(self.sent / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p90_ms": round(float(np.percentile(lat, 90)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(np.max(lat)), 2),
            **({"model_versions": dict(self.headers)} if self.headers else {}),
        }


class _Pool:
    """Idle keep-alive connections to one host, used in turn (first in, first out)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()

    async def open(self, n: int) -> None:
        """Open ``n`` connections now (one after the other: the server's workers share them out)."""
        for _ in range(n):
            self.idle.append(await asyncio.open_connection(self.host, self.port))
            await asyncio.sleep(0.005)

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            reader, writer = self.idle.popleft()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
        return await asyncio.open_connection(self.host, self.port)

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.append(conn)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _exchange(pool: _Pool, raw: bytes, watch_header: bytes | None) -> tuple[int, str | None, bytes]:
    """Send one prebuilt request; return (status, watched header value, body)."""
    reader, writer = await pool.get()
    try:
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length, close, watched = 0, False, None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
            elif watch_header is not None and key == watch_header:
                watched = value.strip().decode()
        body = await reader.readexactly(length)
    except BaseException:
        writer.close()
        raise
    if close:
        writer.close()
    else:
        pool.put((reader, writer))
    return status, watched, body


async def _run(
    url: str,
    requests: Sequence[bytes],
    rate: float,
    seconds: float,
    timeout: float,
    watch_header: str | None,
    tick: Callable[[float], None] | None,
    connections: int,
) -> Outcome:
    parts = urlsplit(url)
    pool = _Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    await pool.open(connections)
    out = Outcome(rate, seconds)
    watch = watch_header.lower().encode() if watch_header else None

    async def one(scheduled: float, raw: bytes) -> None:
        try:
            status, watched, _ = await asyncio.wait_for(_exchange(pool, raw, watch), timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            out.statuses[0] += 1
            return
        out.statuses[status] += 1
        out.latencies.append(time.perf_counter() - scheduled)
        out.scheduled.append(scheduled - start)
        if watched is not None:
            out.headers[watched] += 1

    n = int(rate * seconds)
    tasks = []
    start = time.perf_counter() + 0.05
    next_tick = 1.0
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, requests[i % len(requests)])))
        out.sent += 1
        if tick is not None and i / rate >= next_tick:
            tick(i / rate)
            next_tick += 1.0
    await asyncio.gather(*tasks)
    out.elapsed = time.perf_counter() - start
    pool.close()
    return out


def open_loop(
    url: str,
    requests: Sequence[bytes],
    rate: float,
    seconds: float,
    *,
    timeout: float = 10.0,
    watch_header: str | None = None,
    tick: Callable[[float], None] | None = None,
    connections: int = 64,
    quiet_gc: bool = True,
) -> Outcome:
    """Send ``rate`` requests per second for ``seconds`` (cycling through ``requests``, prebuilt raw HTTP).

    Args:
        url: Where the requests go (scheme http, host, port; the path is in the raw requests).
        requests: Raw HTTP requests from :func:`build_request`.
        rate: Requests per second.
        seconds: Duration of the schedule.
        timeout: A request not answered within this many seconds counts as dropped.
        watch_header: Count the values of this response header (e.g. ``x-model-version``).
        tick: Called about once a second of schedule with the seconds elapsed (soak: memory samples).
        connections: Keep-alive connections opened up front and used in turn.
        quiet_gc: Keep this process's garbage collector from pausing the run (:func:`no_gc_pauses`); ``False``
            only to show what its pauses did to the figures (``bench.serving_probe --steady ... --client-gc``).

    Returns:
        The outcome.
    """
    with no_gc_pauses() if quiet_gc else contextlib.nullcontext():
        return asyncio.run(_run(url, requests, rate, seconds, timeout, watch_header, tick, connections))


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """No garbage-collector pause in this process while the block runs.

    What is alive on entry is collected once and frozen (never walked again), and the collector is off until
    the block ends: the block's own cycles (a step's tasks) wait for the collection after it.
    """
    gc.collect()
    gc.freeze()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()


def sequential(url: str, requests: Sequence[bytes], n: int) -> list[float]:
    """``n`` requests back to back on one connection (cycling through ``requests``); seconds each.

    Raises:
        RuntimeError: On any answer but 200.
    """

    async def run() -> list[float]:
        parts = urlsplit(url)
        pool = _Pool(parts.hostname or "127.0.0.1", parts.port or 80)
        out = []
        for i in range(n):
            start = time.perf_counter()
            status, _, body = await _exchange(pool, requests[i % len(requests)], None)
            out.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
        pool.close()
        return out

    with no_gc_pauses():
        return asyncio.run(run())
