"""What KServe v0.20.0's agent posts to a logger URL, built in Python (see tests/data/kserve_logger/README.md).

:func:`agent_post` builds the headers and body of one CloudEvent as ``pkg/logger/worker.go`` at v0.20.0 sends
it through cloudevents sdk-go v2.16.2 in binary mode; ``tests/code/test_served_traffic.py`` checks it against
the fixture files, which are derived from the same upstream code.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "data" / "kserve_logger"
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
SOURCE = "arrest-predictor-predictor-00001-deployment-6d8f7c9b5-x2k4q"


def go_time(when: dt.datetime) -> str:
    """sdk-go ``types.FormatTime``: ``time.RFC3339Nano`` in UTC (trailing zeros of the fraction dropped)."""
    when = when.astimezone(dt.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{when.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def agent_post(
    kind: str,
    ce_id: str,
    body: bytes,
    *,
    when: dt.datetime,
    recorded: dt.datetime | None = None,
    source: str = SOURCE,
    content_type: str = "application/json",
) -> tuple[dict[str, str], bytes]:
    """Headers and body of one event (``kind``: :data:`REQUEST` or :data:`RESPONSE`), header names as Go writes them."""
    headers = {
        "Content-Length": str(len(body)),
        "Ce-Component": "predictor",
        "Ce-Endpoint": "",
        "Ce-Id": ce_id,
        "Ce-Inferenceservicename": "arrest-predictor",
        "Ce-Metadata": "{}",
        "Ce-Namespace": "models",
        "Ce-Recordedtime": go_time(recorded or when),
        "Ce-Source": source,
        "Ce-Specversion": "1.0",
        "Ce-Time": go_time(when),
        "Ce-Type": kind,
        "Content-Type": content_type,
    }
    return headers, body


def read_http(path: Path) -> tuple[str, str, dict[str, str], bytes]:
    """Method, path, headers and body of a raw HTTP/1.1 request file."""
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = first.split(" ")
    headers = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in lines)
    return method, target, headers, body
