"""CPU time of the payload sink's own code per event (issue 26): taking a KServe logger event, and writing it.

Run: ``.venv/bin/python -m bench.bench_payload_sink [--events 10000]``. The two POSTs of
``tests/data/kserve_logger`` (a 2-record V2 request and its response, as KServe v0.20.0's agent sends them) are
replayed through the ASGI app in process, each with its own ``Ce-Id`` (uvicorn's HTTP parsing, which comes on
top, is not measured); then one write of all of them to a local store (JSON Lines, gzip). CPU time
(``time.process_time``), so the figure holds on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from typing import Any

from arrest_server.payload_sink import PayloadSink, SinkSettings

from chicago_arrest.core.store import LocalStore
from tests.kserve_logger import FIXTURES, read_http


def _receiver(body: bytes) -> Any:
    """An ASGI ``receive`` that hands over ``body`` in one message."""
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> Any:
        return next(messages)

    return receive


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure and print µs of CPU per event to receive and to write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="events (half requests, half responses)")
    args = parser.parse_args(argv)
    posts = [read_http(FIXTURES / name)[2:] for name in ("request.http", "response.http")]
    with tempfile.TemporaryDirectory() as folder:
        big = 10**9
        sink = PayloadSink(
            LocalStore(folder), SinkSettings(flush_s=3600, flush_events=big, max_events=big), "b"
        )

        async def send(message: Any) -> None:
            return None

        async def replay(n: int) -> None:
            for i in range(n):
                headers, body = posts[i % 2]
                scope = {
                    "type": "http",
                    "method": "POST",
                    "path": "/",
                    "headers": [
                        (k.lower().encode(), v.encode())
                        for k, v in {**headers, "Ce-Id": f"e{i // 2}"}.items()
                    ],
                }
                await sink(scope, _receiver(body), send)

        started = time.process_time()
        asyncio.run(replay(args.events))
        received = time.process_time() - started
        started = time.process_time()
        written = sink.flush()
        write = time.process_time() - started
        sink.close()
    result = {"receive_us": received / args.events * 1e6, "write_us": write / max(written, 1) * 1e6}
    print(
        f"{args.events:,} events: {result['receive_us']:.1f} µs CPU to take one, {result['write_us']:.1f} µs "
        "to write it (JSON Lines, gzip)"
    )
    return result


if __name__ == "__main__":
    main()
