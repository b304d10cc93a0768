"""End-to-end: the server's limits and bearer-token auth over HTTP, V1 and V2 (one server for the module).

The server runs with a token and small limits: ``ARREST_SERVER_MAX_ROWS=50000``,
``ARREST_SERVER_MAX_BODY_BYTES`` 8 MiB, ``ARREST_SERVER_REQUEST_TIMEOUT_S=0.5`` (50,000 rows of the golden
model take over a second to score, one row a few milliseconds), and ``--workers 2`` (KServe's own worker
processes, as ``make serve`` runs them): every answer below comes from a worker process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.helpers import GOLDEN, MODEL, Server, start_server

pytestmark = pytest.mark.slow

TOKEN = "e2e-t0ken"
AUTH = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
MAX_ROWS = 50_000
MAX_BODY = 8 * 1024 * 1024
ROW = {"date": "2017-03-01T13:05:00.000", "primary_type": "THEFT", "iucr": "0820", "domestic": False}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("limits-e2e")
    srv = start_server(
        ["--model_dir", str(GOLDEN / "model"), "--workers", "2"],
        root / "server.log",
        ARREST_SERVER_MODEL_VERSION="golden-1",
        ARREST_DATA_DIR=str(root / "data"),
        ARREST_SERVER_API_TOKEN=TOKEN,
        ARREST_SERVER_MAX_ROWS=str(MAX_ROWS),
        ARREST_SERVER_MAX_BODY_BYTES=str(MAX_BODY),
        ARREST_SERVER_REQUEST_TIMEOUT_S="0.5",
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def golden_body() -> bytes:
    return (GOLDEN / "v2_request.json").read_bytes()


def v2_rows_claim(rows: int) -> dict[str, Any]:
    """A small V2 body whose inputs claim ``rows`` rows in their shape."""
    return {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": name, "shape": [rows], "datatype": "BYTES", "data": [value]}
            for name, value in (("date", ROW["date"]), ("primary_type", "THEFT"), ("iucr", "0820"))
        ],
    }


def v1_url(server: Server) -> str:
    return f"{server.url}/v1/models/{MODEL}:predict"


# -- auth -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", f"/v2/models/{MODEL}/infer"),
        ("post", f"/v1/models/{MODEL}:predict"),
        ("post", f"/v1/models/{MODEL}:explain"),
        ("get", f"/v2/models/{MODEL}"),
        ("get", "/v2"),
        ("get", "/v1/models"),
        ("get", "/openapi.json"),
    ],
)
def test_inference_explain_and_metadata_need_the_token(server: Server, method: str, path: str) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        r = requests.request(method, server.url + path, data=golden_body(), headers=headers, timeout=30)
        assert r.status_code == 401, (headers, r.text)
        assert "Authorization: Bearer" in r.json()["error"]
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_with_the_token_v1_and_v2_answer(server: Server) -> None:
    r = requests.post(server.infer_url, data=golden_body(), headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "golden-1"
    r = requests.post(v1_url(server), json={"instances": [ROW]}, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 1
    assert requests.get(f"{server.url}/v2/models/{MODEL}", headers=AUTH, timeout=30).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/metrics",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{MODEL}/ready",
        f"/v1/models/{MODEL}",
    ],
)
def test_health_and_metrics_stay_open(server: Server, path: str) -> None:
    assert requests.get(server.url + path, timeout=30).status_code == 200


def test_grpc_is_off_with_a_token(server: Server) -> None:
    assert "gRPC is off: ARREST_SERVER_API_TOKEN is set" in server.output()
    assert TOKEN not in server.output()


# -- size limits ----------------------------------------------------------------------------------------------


def test_too_many_rows_is_413_in_v2_and_v1(server: Server) -> None:
    for rows in (MAX_ROWS + 1, 10**12):
        r = requests.post(server.infer_url, json=v2_rows_claim(rows), headers=AUTH, timeout=30)
        assert r.status_code == 413, r.text
        assert f"request has {rows} rows; at most {MAX_ROWS}" in r.json()["error"]
    r = requests.post(v1_url(server), json={"instances": [{}] * (MAX_ROWS + 1)}, headers=AUTH, timeout=30)
    assert r.status_code == 413, r.text
    assert "ARREST_SERVER_MAX_ROWS" in r.json()["error"]


def test_a_body_over_the_limit_is_413_before_parsing(server: Server) -> None:
    big = b'{"instances": [' + b" " * MAX_BODY + b"]}"
    for url in (server.infer_url, v1_url(server)):
        r = requests.post(url, data=big, headers=AUTH, timeout=60)
        assert r.status_code == 413, r.text
        assert "ARREST_SERVER_MAX_BODY_BYTES" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no content-length: counted as it arrives
        yield b'{"instances": ['
        for _ in range(MAX_BODY // 65536 + 1):
            yield b" " * 65536
        yield b"]}"

    r = requests.post(v1_url(server), data=chunks(), headers=AUTH, timeout=60)
    assert r.status_code == 413, r.text


# -- time limit -----------------------------------------------------------------------------------------------


def test_a_request_over_the_time_limit_is_504_and_the_server_answers_afterwards(
    server: Server, tmp_path: Path
) -> None:
    body = json.dumps({"instances": [ROW] * MAX_ROWS}).encode()
    assert len(body) < MAX_BODY
    start = time.monotonic()
    r = requests.post(v1_url(server), data=body, headers={**AUTH, "x-request-id": "slow-e2e"}, timeout=60)
    assert r.status_code == 504, r.text[:300]
    assert "slow-e2e" in r.json()["error"]
    assert "ARREST_SERVER_REQUEST_TIMEOUT_S" in r.json()["error"]
    assert time.monotonic() - start < 30
    # The abandoned scoring finishes in its thread; the server keeps answering (504 at worst while it runs).
    statuses = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses.append(
            requests.post(server.infer_url, data=golden_body(), headers=AUTH, timeout=30).status_code
        )
        if statuses[-1] == 200:
            break
    assert statuses[-1] == 200, statuses
    assert set(statuses) <= {200, 504}, statuses
    r = requests.post(v1_url(server), json={"instances": [ROW] * 2}, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
